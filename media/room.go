package media

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyuc/parley/conference"
)

// room is one meeting's media session: its participants' sessions and
// the tracks they publish. Its goroutine (run) applies the focus's
// events; it ends when its last participant leaves, when the meeting
// ends, or when the bridge closes.
type room struct {
	b  *Bridge
	id conference.MeetingID

	mu       sync.Mutex
	sessions map[conference.ParticipantID]*Session
	calls    map[conference.ParticipantID]*Call
	tracks   []*forward
	ended    bool

	events   chan conference.Event
	lost     chan struct{} // closed when events overflowed
	lostOnce sync.Once
	done     chan struct{} // closed by end
	// mix mixes for the calls while the meeting has some. Written under
	// mu; forwards read it for each packet without the lock.
	mix       atomic.Pointer[mixer]
	endOnce   sync.Once
	stopWatch func()
	ends      *time.Timer
}

// run applies the focus's events until the room ends.
func (r *room) run() {
	defer r.b.wg.Done()
	tick := time.NewTicker(allocInterval)
	defer tick.Stop()
	last := time.Now()
	var sc allocScratch
	for {
		select {
		case now := <-tick.C:
			r.allocate(now.Sub(last), &sc)
			last = now
		case ev := <-r.events:
			r.apply(ev)
		case <-r.lost:
			r.end("the bridge fell behind the focus's events")
		case <-r.done:
			return
		}
	}
}

// overflow is called by the focus's watch when events is full. It must
// not block or call the focus.
func (r *room) overflow() { r.lostOnce.Do(func() { close(r.lost) }) }

// apply carries out one change of the meeting.
func (r *room) apply(ev conference.Event) {
	pid := ev.Participant.ID
	switch ev.Kind {
	case conference.EventEjected:
		r.remove(pid, "ejected")
	case conference.EventLeft:
		r.remove(pid, "left")
	case conference.EventRejected:
		r.remove(pid, "rejected from the lobby")
	case conference.EventLobbyTimeout:
		r.remove(pid, "gave up waiting in the lobby")
	case conference.EventJoined:
		r.mu.Lock()
		s := r.sessions[pid]
		r.mu.Unlock()
		if s != nil {
			r.admitted(s, ev.Participant)
		}
	case conference.EventRole:
		r.mu.Lock()
		if c := r.calls[pid]; c != nil {
			c.muted.Store(ev.Participant.Muted)
		}
		s := r.sessions[pid]
		var gone []*forward
		if s != nil {
			s.muted.Store(ev.Participant.Muted)
			s.mu.Lock() // onTrack reads the role under the session's lock
			s.role = ev.Participant.Role
			s.mu.Unlock()
			if !ev.Participant.Role.Leader() { // only presenters share their screen
				for _, f := range r.tracks {
					if f.owner == s && f.kind == KindScreen {
						gone = append(gone, f)
					}
				}
			}
		}
		r.mu.Unlock()
		for _, f := range gone {
			f.stop()
		}
	}
}

// join adds participant p's session, answering its offer.
func (r *room) join(p conference.Participant, req JoinRequest) (*Session, error) {
	r.mu.Lock()
	switch {
	case r.ended:
		r.mu.Unlock()
		return nil, ErrClosed
	case r.sessions[p.ID] != nil, r.calls[p.ID] != nil:
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %s already has media in this meeting", ErrRefused, p.ID)
	}
	s := newSession(r, p)
	r.sessions[p.ID] = s // reserved: a second join of the same participant is refused
	r.mu.Unlock()
	if err := s.start(req.Offer); err != nil {
		r.remove(p.ID, "its offer failed")
		return nil, err
	}
	// The focus's events about p since it was looked up were applied
	// before its session was there to see them: look again.
	now, err := r.b.cfg.Meetings.Participant(r.id, p.ID)
	switch {
	case err != nil || now.State == conference.Gone:
		r.remove(p.ID, "left while joining")
		return nil, fmt.Errorf("%w: %s left meeting %s", ErrRefused, p.ID, r.id)
	case now.State == conference.Joined:
		r.admitted(s, now) // if it was in the lobby
	}
	r.offerPublished(s)
	return s, nil
}

// offerPublished offers s everything already published that it does not
// receive yet (nothing while it is in the lobby).
func (r *room) offerPublished(s *Session) {
	r.mu.Lock()
	tracks := append([]*forward(nil), r.tracks...)
	r.mu.Unlock()
	offer := false
	for _, f := range tracks {
		offer = s.subscribe(f) || offer
	}
	if offer {
		s.negotiate()
	}
}

// admitted moves s from the lobby into the meeting: its held tracks are
// forwarded to the others, and the others' tracks offered to it.
func (r *room) admitted(s *Session, p conference.Participant) {
	s.muted.Store(p.Muted)
	held, ok := s.admit(p.Role)
	if !ok {
		return
	}
	r.b.log.Info("media: admitted from the lobby", "meeting", r.id, "participant", s.pid)
	for _, f := range held { // never a screen share: an attendee's is refused
		r.publish(f)
	}
	r.offerPublished(s)
}

// publish makes f available to every other participant.
func (r *room) publish(f *forward) bool {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return false
	}
	r.tracks = append(r.tracks, f)
	f.live.Store(true)
	others := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		if s != f.owner {
			others = append(others, s)
		}
	}
	r.mu.Unlock()
	for _, s := range others {
		if s.subscribe(f) {
			s.negotiate()
		}
	}
	return true
}

// unpublish takes f away from every participant.
func (r *room) unpublish(f *forward) {
	r.mu.Lock()
	for i, t := range r.tracks {
		if t == f {
			r.tracks = append(r.tracks[:i], r.tracks[i+1:]...)
			break
		}
	}
	f.live.Store(false)
	if m := r.mix.Load(); m != nil {
		m.drop(f)
	}
	others := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		others = append(others, s)
	}
	r.mu.Unlock()
	for _, s := range others {
		if s.unsubscribe(f) {
			s.negotiate()
		}
	}
}

// remove ends participant pid's session or call, and the room with its
// last.
func (r *room) remove(pid conference.ParticipantID, why string) {
	r.mu.Lock()
	s, c := r.sessions[pid], r.calls[pid]
	delete(r.sessions, pid)
	delete(r.calls, pid)
	var idle *mixer
	if m := r.mix.Load(); c != nil && m != nil {
		m.removeCall(c)
		if len(r.calls) == 0 {
			idle = r.mix.Swap(nil)
		}
	}
	empty := len(r.sessions) == 0 && len(r.calls) == 0
	r.mu.Unlock()
	if s != nil {
		r.b.log.Info("media session ended", "meeting", r.id, "participant", pid, "reason", why)
		s.close()
	}
	if c != nil {
		r.b.log.Info("media call ended", "meeting", r.id, "participant", pid, "reason", why)
		c.close()
	}
	if idle != nil {
		close(idle.stop)
		if idle.out != nil {
			r.unpublish(idle.out)
		}
	}
	if empty {
		r.end("its last participant left")
	}
}

// addCall adds call c of participant pid, starting the meeting's mixer
// with its first call.
func (r *room) addCall(c *Call, pid conference.ParticipantID) error {
	r.mu.Lock()
	switch {
	case r.ended:
		r.mu.Unlock()
		return ErrClosed
	case r.sessions[pid] != nil, r.calls[pid] != nil:
		r.mu.Unlock()
		return fmt.Errorf("%w: %s already has media in this meeting", ErrRefused, pid)
	}
	c.mu.Lock()
	c.room, c.pid = r, pid
	c.mu.Unlock()
	r.calls[pid] = c
	m := r.mix.Load()
	start := m == nil
	if start {
		m = newMixer(r)
		r.mix.Store(m)
	}
	m.add(c)
	r.mu.Unlock()
	r.b.log.Info("media: call joined", "meeting", r.id, "participant", pid)
	if start {
		r.b.wg.Go(m.run)
		if m.out != nil {
			r.publish(m.out)
		}
	}
	return nil
}

// releaseIfEmpty ends a room a failed join left empty.
func (r *room) releaseIfEmpty() {
	r.mu.Lock()
	empty := len(r.sessions) == 0 && len(r.calls) == 0
	r.mu.Unlock()
	if empty {
		r.end("no participant")
	}
}

// end closes every session and stops following the focus.
func (r *room) end(why string) {
	r.endOnce.Do(func() {
		r.b.forget(r)
		r.mu.Lock()
		r.ended = true
		sessions := make([]*Session, 0, len(r.sessions))
		for _, s := range r.sessions {
			sessions = append(sessions, s)
		}
		clear(r.sessions)
		calls := make([]*Call, 0, len(r.calls))
		for _, c := range r.calls {
			calls = append(calls, c)
		}
		clear(r.calls)
		r.mix.Store(nil)
		r.mu.Unlock()
		for _, c := range calls {
			r.b.log.Info("media call ended", "meeting", r.id, "participant", c.pid, "reason", why)
			c.close()
		}
		r.ends.Stop()
		r.stopWatch()
		close(r.done)
		for _, s := range sessions {
			r.b.log.Info("media session ended", "meeting", r.id, "participant", s.pid, "reason", why)
			s.close()
		}
	})
}
