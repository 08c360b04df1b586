package conference

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// LobbyConfig configures a Lobby. Every field is optional; zero values
// get the defaults named on each field.
type LobbyConfig struct {
	// Rule decides whether a newcomer enters directly, waits in the lobby
	// or is refused. Default AccessRule{}: the meeting's access policy, as
	// the security model states it. The Lobby applies its invariants
	// around any rule (see Lobby).
	Rule AdmissionRule
	// Timeout is how long one waits in the lobby before the wait fails
	// with ErrLobbyTimeout. Default DefaultLobbyTimeout (15 minutes).
	Timeout time.Duration
	// Max bounds how many wait in one meeting's lobby; beyond it a join
	// fails with ErrFull. Default DefaultMaxLobby (500).
	Max int
}

// Lobby is where people wait to enter a meeting until a leader admits or
// rejects them or the wait times out. It carries the admission decision:
// for each join it asks its AdmissionRule, then applies the invariants no
// rule can lift:
//
//   - an anonymous user holding the key of another meeting is refused,
//     before the rule is asked;
//   - the organizer enters directly, before the rule is asked;
//   - while the organizer has locked the meeting, everyone else waits;
//   - an unauthenticated participant (anonymous, or a dial-in caller
//     without a PIN) whom the rule lets in directly waits until a leader
//     or an authenticated user has joined, and enters then.
//
// Leaders hear of arrivals and departures through the Focus's events
// (EventLobby, EventJoined with By set, EventRejected,
// EventLobbyTimeout) and its conference-state subscriptions.
//
// A Lobby serves one Focus: make it with NewLobby, hand it to NewFocus in
// FocusConfig.Lobby (or let the Focus make the default one), and admit,
// reject and wait through it. Its methods are safe for concurrent use.
type Lobby struct {
	rule    AdmissionRule
	timeout time.Duration
	max     int
	focus   atomic.Pointer[Focus]
}

// Lobby returns the Focus's Lobby: admit, reject and wait through it.
func (f *Focus) Lobby() *Lobby { return f.lobby }

// NewLobby returns a Lobby, or an error naming the invalid field.
func NewLobby(cfg LobbyConfig) (*Lobby, error) {
	switch {
	case cfg.Timeout < 0:
		return nil, errors.New("conference: LobbyConfig.Timeout must not be negative")
	case cfg.Max < 0:
		return nil, errors.New("conference: LobbyConfig.Max must not be negative")
	}
	l := &Lobby{rule: cfg.Rule, timeout: cfg.Timeout, max: cfg.Max}
	if l.rule == nil {
		l.rule = AccessRule{}
	}
	if l.timeout == 0 {
		l.timeout = DefaultLobbyTimeout
	}
	if l.max == 0 {
		l.max = DefaultMaxLobby
	}
	return l, nil
}

// attach binds l to f; a Lobby serves one Focus.
func (l *Lobby) attach(f *Focus) error {
	if !l.focus.CompareAndSwap(nil, f) {
		return errors.New("conference: FocusConfig.Lobby already serves another Focus")
	}
	return nil
}

// owner returns the Focus l serves, or ErrClosed before it serves one.
func (l *Lobby) owner() (*Focus, error) {
	if f := l.focus.Load(); f != nil {
		return f, nil
	}
	return nil, fmt.Errorf("%w: the Lobby serves no Focus", ErrClosed)
}

// decision is what the Lobby decided for a newcomer before it is placed.
type decision struct {
	admission Admission
	// onLeader: the rule let an unauthenticated newcomer in directly; it
	// waits only until a leader or an authenticated user has joined.
	onLeader bool
}

// decide asks the rule about c, inside the invariants that come before
// it. It runs without the meeting's lock: a rule may do I/O.
func (l *Lobby) decide(ctx context.Context, m *Meeting, c Candidate) (decision, error) {
	if c.Type == Anonymous && c.Meeting != m.ID {
		return decision{admission: Refused}, nil // a key for another meeting
	}
	if c.isOrganizer(m) {
		return decision{admission: Direct}, nil
	}
	a, err := l.rule.Admission(ctx, m, c)
	if err != nil {
		return decision{}, fmt.Errorf("conference: admission rule: %w", err)
	}
	switch a {
	case Direct:
		return decision{admission: Direct, onLeader: !c.authenticated()}, nil
	case WaitInLobby, Refused:
		return decision{admission: a}, nil
	}
	return decision{}, fmt.Errorf("conference: admission rule returned %v", a)
}

// placeLocked applies the invariants that depend on the meeting's state
// now: a locked meeting sends everyone but the organizer to the lobby,
// and unauthenticated newcomers wait for a leader or an authenticated
// user.
//
// A user a leader admitted during the live meeting (LiveState.Admitted)
// is no newcomer: rejoining, after a failover too, it enters directly.
func (d decision) placeLocked(c *conf, cand Candidate) Admission {
	switch {
	case d.admission == Refused || cand.isOrganizer(c.meeting):
		return d.admission
	case c.meeting.Live.admitted(cand):
		return Direct
	case d.admission != Direct:
		return d.admission
	case c.locked:
		return WaitInLobby
	case d.onLeader && !c.leaderOrAuthenticatedIn():
		return WaitInLobby
	}
	return Direct
}

// waitLocked puts p in c's lobby, starts its timer and tells leaders.
func (l *Lobby) waitLocked(f *Focus, c *conf, p *participant) {
	p.State = InLobby
	p.decided = make(chan struct{})
	id, pid := c.meeting.ID, p.ID
	p.timer = time.AfterFunc(l.timeout, func() { l.timedOut(f, id, pid) })
	f.emitLocked(c, Event{Kind: EventLobby, Participant: p.Participant}, false)
	f.cfg.Logger.Info("participant waits in the lobby", "meeting", id, "participant", pid, "type", p.Type, "uri", p.URI)
}

// fullLocked reports whether c's lobby holds as many as it may.
func (l *Lobby) fullLocked(c *conf) bool {
	n := 0
	for _, q := range c.parts {
		if q.State == InLobby {
			n++
		}
	}
	return n >= l.max
}

// leaderArrivedLocked lets in those who waited only for a leader or an
// authenticated user, in the order they arrived, unless the meeting is
// locked.
func (l *Lobby) leaderArrivedLocked(f *Focus, c *conf) {
	if c.locked {
		return
	}
	for _, q := range c.sorted() {
		if q.State == InLobby && q.onLeader {
			f.enterLocked(c, q, "")
		}
	}
}

// decide ends p's lobby wait with outcome (nil: admitted), once.
func (p *participant) decide(outcome error) {
	if p.decided == nil || p.finished {
		return
	}
	p.finished = true
	p.timer.Stop()
	p.outcome = outcome
	close(p.decided)
}

// Wait blocks until p, as Focus.Join returned it, is out of the lobby:
// nil once admitted (or if it never waited), else ErrRejected,
// ErrLobbyTimeout, ErrLeft, ErrClosed or ctx's error.
func (l *Lobby) Wait(ctx context.Context, p *Participant) error {
	if p.w == nil || p.w.decided == nil {
		return nil
	}
	select {
	case <-p.w.decided:
		return p.w.outcome // written before decided was closed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Waiting returns who waits in meeting id's lobby, in the order they
// arrived.
func (l *Lobby) Waiting(id MeetingID) []Participant {
	f, err := l.owner()
	if err != nil {
		return nil
	}
	var out []Participant
	for _, p := range f.Participants(id) {
		if p.State == InLobby {
			out = append(out, p)
		}
	}
	return out
}

func (l *Lobby) timedOut(f *Focus, id MeetingID, pid ParticipantID) {
	c, err := f.existing(id)
	if err != nil {
		return
	}
	if p := c.parts[pid]; p != nil && p.State == InLobby {
		f.removeLocked(c, p, EventLobbyTimeout, "", ErrLobbyTimeout)
	}
	c.mu.Unlock()
	f.release(c)
}

// Admit lets participant pid in from meeting id's lobby, on the request
// of by, a joined leader of the meeting. It fails with ErrForbidden if by
// is not one, ErrNoParticipant or ErrWrongState if pid does not wait.
func (l *Lobby) Admit(ctx context.Context, id MeetingID, by, pid ParticipantID) error {
	return l.leaderOp(ctx, id, by, pid, "admit", func(f *Focus, c *conf, a, p *participant) error {
		if p.cand.authenticated() {
			// Kept first, so that the user rejoins directly after a
			// failover: no admission the next host would not know.
			if err := f.persistLiveLocked(ctx, c, func(l *LiveState) { l.admit(p.cand.AOR) }); err != nil {
				return err
			}
		}
		f.enterLocked(c, p, a.ID)
		return nil
	})
}

// Reject turns participant pid away from meeting id's lobby, on the
// request of by, a joined leader of the meeting: its wait ends with
// ErrRejected. Errors as for Admit.
func (l *Lobby) Reject(ctx context.Context, id MeetingID, by, pid ParticipantID) error {
	return l.leaderOp(ctx, id, by, pid, "reject", func(f *Focus, c *conf, a, p *participant) error {
		f.removeLocked(c, p, EventRejected, a.ID, ErrRejected)
		return nil
	})
}

func (l *Lobby) leaderOp(ctx context.Context, id MeetingID, by, pid ParticipantID, verb string, op func(f *Focus, c *conf, a, p *participant) error) error {
	f, err := l.owner()
	if err != nil {
		return err
	}
	return f.control(ctx, id, by, func(c *conf, a *participant) error {
		if !a.Role.Leader() {
			return fmt.Errorf("%w: only presenters %s from the lobby", ErrForbidden, verb)
		}
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		if p.State != InLobby {
			return fmt.Errorf("%w: %s is not in the lobby", ErrWrongState, pid)
		}
		return op(f, c, a, p)
	})
}
