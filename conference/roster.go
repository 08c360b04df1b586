package conference

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parleyuc/parley/auth"
)

// State is where a participant is.
type State int

// The participant states.
const (
	InLobby State = iota + 1
	Joined
	Gone
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case InLobby:
		return "lobby"
	case Joined:
		return "joined"
	case Gone:
		return "gone"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Participant is one device's presence in a meeting, as a snapshot.
type Participant struct {
	// ID is unique per join, 128 random bits.
	ID      ParticipantID
	Meeting MeetingID
	// URI is the identity URI (per security association for anonymous
	// users); AOR the canonical address of authenticated users.
	URI, AOR    string
	DisplayName string
	Type        ParticipantType
	Role        Role
	State       State
	// Muted says the media server holds back the participant's audio: an
	// attendee while a leader has muted the audience (MuteAll).
	Muted bool
	// HandRaised says the participant has raised its hand (SetHand).
	HandRaised bool
	// NameRecorded says the participant (an anonymous dial-in caller)
	// recorded its name: leaders hear it with RecordedName.
	NameRecorded bool
	// Since is when the participant entered the lobby or the meeting.
	Since time.Time

	w *participant // for Wait
}

// EventKind says what changed in a meeting.
type EventKind int

// The events a Watch sees.
const (
	EventLobby        EventKind = iota + 1 // entered the lobby
	EventJoined                            // joined, directly or admitted
	EventRejected                          // rejected from the lobby
	EventLobbyTimeout                      // gave up waiting in the lobby
	EventLeft                              // left
	EventEjected                           // ejected by a leader
	EventRole                              // role changed
	EventPolicy                            // access or presenter policy, or lock, changed
	EventHand                              // hand raised or lowered (SetHand)
)

// Event is a change in a meeting. Participant is the participant after
// the change (zero for EventPolicy); By the participant ID of the leader
// who made it, if one did.
type Event struct {
	Kind        EventKind
	Meeting     MeetingID
	Participant Participant
	By          ParticipantID
}

// JoinRequest is someone asking to join a meeting.
type JoinRequest struct {
	// Identity is who asks, as the Authenticator established it. A dial-in
	// caller without a PIN has an anonymous identity for the meeting whose
	// conference ID it entered; with a PIN, the user's identity.
	Identity *auth.Identity
	// DialIn says the request came through a trusted PSTN gateway.
	DialIn bool
	// DisplayName overrides the identity's display name (an anonymous
	// user's chosen name, a dial-in caller's recorded name's label).
	DisplayName string
	// RecordedName is an anonymous dial-in caller's recording of its name
	// (a WAV file), which identifies it to the meeting's leaders.
	RecordedName []byte
}

// candidate describes who asks, for the policies.
func (f *Focus) candidate(ctx context.Context, m *Meeting, r JoinRequest) (Candidate, error) {
	id := r.Identity
	c := Candidate{Type: TypeOf(id, r.DialIn), Meeting: MeetingID(id.Meeting)}
	if id.Kind == auth.Anonymous {
		return c, nil
	}
	c.AOR, c.Tenant = canonical(id.URI), id.Tenant
	if id.Kind == auth.Federated {
		// A partner's user cannot pass for one of the tenant's.
		if _, host, _ := strings.Cut(c.AOR, "@"); strings.EqualFold(host, m.Tenant) {
			return c, fmt.Errorf("%w: a federated user with the tenant's domain", ErrRefused)
		}
		c.Tenant = ""
		return c, nil
	}
	if c.Tenant == m.Tenant {
		u, err := f.cfg.Directory.User(ctx, c.AOR)
		switch {
		case err == nil:
			c.Company = u.Company
		case errors.Is(err, auth.ErrUnknownUser):
			c.Tenant = "" // no longer in the directory: not a user of the tenant
		default:
			return c, err
		}
	}
	return c, nil
}

// Join asks for r's entry into meeting id; the Lobby decides (see Lobby
// and AdmissionRule). It returns the participant in the meeting (Joined)
// or in the lobby (InLobby: Lobby.Wait for the outcome), or an error:
// ErrNotFound, ErrRefused, ErrFull, or the admission rule's.
func (f *Focus) Join(ctx context.Context, id MeetingID, r JoinRequest) (*Participant, error) {
	if r.Identity == nil {
		return nil, errors.New("conference: JoinRequest.Identity is required")
	}
	// The meeting as stored now: expired or deleted meetings take nobody
	// in, and policy changes made elsewhere apply.
	m, err := f.Meeting(ctx, id)
	if err != nil {
		return nil, unavailable(err)
	}
	cand, err := f.candidate(ctx, m, r)
	if err != nil {
		return nil, err
	}
	d, err := f.lobby.decide(ctx, m, cand)
	if err != nil {
		return nil, err
	}
	if d.admission == Refused {
		return nil, fmt.Errorf("%w: %s may not join %s", ErrRefused, cand.Type, m.ID)
	}
	c, err := f.conf(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.Revision > c.meeting.Revision {
		c.meeting = m
	}
	p, err := f.joinLocked(c, cand, d, r)
	c.mu.Unlock()
	if err != nil {
		f.release(c)
		return nil, err
	}
	return p, nil
}

func (f *Focus) joinLocked(c *conf, cand Candidate, d decision, r JoinRequest) (*Participant, error) {
	m := c.meeting
	a := d.placeLocked(c, cand)
	if !cand.isOrganizer(m) && (len(c.parts) >= f.cfg.MaxParticipants || a == WaitInLobby && f.lobby.fullLocked(c)) {
		return nil, ErrFull
	}
	name := r.DisplayName
	if name == "" {
		name = r.Identity.DisplayName
	}
	p := &participant{
		Participant: Participant{ID: ParticipantID(randomToken()), Meeting: m.ID, URI: r.Identity.URI, AOR: cand.AOR,
			DisplayName: name, Type: cand.Type, Role: Attendee, Since: f.cfg.Now(), NameRecorded: len(r.RecordedName) > 0},
		identity: r.Identity, cand: cand, recordedName: r.RecordedName, onLeader: d.onLeader,
	}
	p.w = p
	c.arrivals++
	p.seq = c.arrivals
	c.parts[p.ID] = p
	if a == Direct {
		f.enterLocked(c, p, "")
	} else {
		f.lobby.waitLocked(f, c, p)
	}
	out := p.Participant
	return &out, nil
}

// enterLocked puts p in the meeting with the role its presenter policy
// gives, and lets in anonymous users who were waiting only for a leader or
// an authenticated user.
func (f *Focus) enterLocked(c *conf, p *participant, by ParticipantID) {
	wasIn := c.leaderOrAuthenticatedIn()
	p.State, p.Role, p.Since = Joined, InitialRole(c.meeting, p.cand), f.cfg.Now()
	if r, ok := c.meeting.Live.role(p.cand); ok && p.Role != Organizer {
		p.Role = r // given during the meeting, before a failover or a rejoin
	}
	c.muteLocked(p)
	p.decide(nil)
	f.emitLocked(c, Event{Kind: EventJoined, Participant: p.Participant, By: by}, true)
	f.cfg.Logger.Info("participant joined", "meeting", c.meeting.ID, "participant", p.ID, "type", p.Type, "role", p.Role, "by", by)
	if !wasIn && c.leaderOrAuthenticatedIn() {
		f.lobby.leaderArrivedLocked(f, c)
	}
}

// leaderOrAuthenticatedIn reports whether a leader or an authenticated
// user has joined.
func (c *conf) leaderOrAuthenticatedIn() bool {
	for _, p := range c.parts {
		if p.State == Joined && (p.Role.Leader() || p.cand.authenticated()) {
			return true
		}
	}
	return false
}

// sorted returns the participants in the order they arrived.
func (c *conf) sorted() []*participant {
	out := make([]*participant, 0, len(c.parts))
	for _, p := range c.parts {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *participant) int { return int(a.seq - b.seq) })
	return out
}

// removeLocked takes p out of the meeting; a lobby wait ends with why.
func (f *Focus) removeLocked(c *conf, p *participant, kind EventKind, by ParticipantID, why error) {
	if p.State == InLobby {
		p.decide(why)
	}
	wasIn := p.State == Joined
	p.State = Gone
	delete(c.parts, p.ID)
	f.emitLocked(c, Event{Kind: kind, Participant: p.Participant, By: by}, wasIn)
	f.cfg.Logger.Info("participant out", "meeting", c.meeting.ID, "participant", p.ID, "why", kind, "by", by)
}

// Leave takes participant pid out of meeting id (hang-up, cancel).
func (f *Focus) Leave(id MeetingID, pid ParticipantID) error {
	c, err := f.existing(id)
	if err != nil {
		return err
	}
	p := c.parts[pid]
	if p != nil {
		f.removeLocked(c, p, EventLeft, "", ErrLeft)
	}
	c.mu.Unlock()
	f.release(c)
	if p == nil {
		return ErrNoParticipant
	}
	return nil
}

// End ends meeting id for everyone, as a tenant admin does: the meeting is
// deleted from the store, so its link and conference key open nothing
// more, then everyone in it is taken out (those in the lobby rejected,
// the others ejected, which ends their SIP dialogs and media) and its
// subscribers hear no more. If the store fails, nothing changes.
func (f *Focus) End(ctx context.Context, id MeetingID) error {
	c, err := f.existing(id)
	if err != nil {
		return f.cfg.Meetings.Delete(ctx, id) // nobody in it
	}
	if err := f.cfg.Meetings.Delete(ctx, id); err != nil {
		c.mu.Unlock()
		return err
	}
	f.endLocked(c) // a join now finds no meeting in the store
	f.cfg.Logger.Info("meeting ended", "meeting", id)
	return nil
}

// endLocked ends the live meeting c, whose lock it releases: those in
// the lobby are rejected, the others ejected (their SIP dialogs and media
// end), and it is forgotten, its lease released.
func (f *Focus) endLocked(c *conf) {
	for _, p := range c.sorted() {
		if p.State == InLobby {
			f.removeLocked(c, p, EventRejected, "", ErrRejected)
		} else {
			f.removeLocked(c, p, EventEjected, "", ErrLeft)
		}
	}
	c.dead = true
	c.mu.Unlock()
	f.mu.Lock()
	if f.confs[c.meeting.ID] == c {
		delete(f.confs, c.meeting.ID)
	}
	f.mu.Unlock()
	f.releaseLease(c)
}

// Participants returns the meeting's participants, lobby included, in the
// order they arrived.
func (f *Focus) Participants(id MeetingID) []Participant {
	c, err := f.existing(id)
	if err != nil {
		return nil
	}
	defer c.mu.Unlock()
	var out []Participant
	for _, p := range c.sorted() {
		out = append(out, p.Participant)
	}
	return out
}

// Participant returns one participant.
func (f *Focus) Participant(id MeetingID, pid ParticipantID) (Participant, error) {
	c, err := f.existing(id)
	if err != nil {
		return Participant{}, err
	}
	defer c.mu.Unlock()
	p := c.parts[pid]
	if p == nil {
		return Participant{}, ErrNoParticipant
	}
	return p.Participant, nil
}

// Watch calls fn with every change of meeting id until stop is called.
// fn runs with the meeting locked, in the order of the changes: it must
// not block or call the Focus (hand the event to a goroutine of yours).
// The media server watches to drop ejected participants and to switch a
// lobby participant's media from music to the meeting.
func (f *Focus) Watch(ctx context.Context, id MeetingID, fn func(Event)) (stop func(), err error) {
	c, err := f.conf(ctx, id)
	if err != nil {
		return nil, err
	}
	n := c.nextID
	c.nextID++
	c.watchers[n] = fn
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.watchers, n)
			c.mu.Unlock()
			f.release(c)
		})
	}, nil
}

// emitLocked records a change: watchers see it, subscribers are sent the
// new state. attendees says whether joined attendees see the change.
func (f *Focus) emitLocked(c *conf, ev Event, attendees bool) {
	ev.Meeting = c.meeting.ID
	c.version++
	c.recordLocked(ev, attendees)
	clear(c.cache)
	for _, fn := range c.watchers {
		fn(ev)
	}
	for s := range c.subs {
		f.kickLocked(c, s)
	}
	if ev.Kind == EventEjected || ev.Kind == EventLeft {
		f.participantGone(c.meeting.ID, ev.Participant.ID)
	}
}
