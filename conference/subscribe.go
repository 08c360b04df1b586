package conference

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// viewClass is who sees what of a meeting: leaders see the lobby, joined
// attendees the roster, a lobby participant only itself.
type viewClass int

const (
	viewLeader viewClass = iota + 1
	viewAttendee
)

// cacheKey names a rendered document: the full view of a class, or the
// changes a class may see since a version.
type cacheKey struct {
	class   viewClass
	partial bool
	since   uint64
}

// change is one entry of a meeting's change log, from which partial
// notifications are made.
type change struct {
	version uint64
	pid     ParticipantID // empty for a change of the conference itself
	uri     string
	// attendees says joined attendees may see the change: the participant
	// was in the meeting before or after it (not only in the lobby).
	attendees bool
}

// maxChangeLog bounds the change log: a subscriber further behind gets
// the full state again.
const maxChangeLog = 1024

// recordLocked logs the change ev made.
func (c *conf) recordLocked(ev Event, attendees bool) {
	c.log = append(c.log, change{version: c.version, pid: ev.Participant.ID, uri: ev.Participant.URI, attendees: attendees})
	if len(c.log) > maxChangeLog {
		c.log = slices.Clone(c.log[len(c.log)-maxChangeLog/2:])
	}
}

// covers reports whether the log holds every change after version since.
func (c *conf) covers(since uint64) bool {
	return since == c.version || len(c.log) > 0 && c.log[0].version <= since+1
}

// viewOf returns the class of what participant p may see; 0 for a lobby
// participant, whose view is its own.
func viewOf(p *participant) viewClass {
	switch {
	case p.State != Joined:
		return 0
	case p.Role.Leader():
		return viewLeader
	}
	return viewAttendee
}

// sees reports whether a viewer of class sees participant p.
func sees(class viewClass, viewer, p *participant) bool {
	switch class {
	case viewLeader:
		return true
	case viewAttendee:
		return p.State == Joined
	}
	return p == viewer
}

// confState is the conference-state element.
func (c *conf) confState() *ConfState {
	joined := uint32(0)
	for _, p := range c.parts {
		if p.State == Joined {
			joined++
		}
	}
	active, locked := joined > 0, c.locked
	return &ConfState{UserCount: &joined, Active: &active, Locked: &locked}
}

// endpointOf is p's endpoint element.
func endpointOf(p *participant) Endpoint {
	status := "connected"
	if p.State == InLobby {
		status = "pending"
	}
	return Endpoint{Entity: participantURN + string(p.ID), Status: status, JoiningMethod: "dialed-in",
		JoiningInfo: &JoiningInfo{When: p.Since.UTC().Format(time.RFC3339)}, HandRaised: p.HandRaised}
}

// userOf starts the user element of uri from its visible participants,
// with the highest of their roles.
func userOf(uri string, visible []*participant) *User {
	u := &User{Entity: uri, Roles: &Roles{}}
	best := Role(0)
	for _, p := range visible {
		u.DisplayText, u.Type = p.DisplayName, p.Type.String()
		best = max(best, p.Role)
	}
	u.Roles.Entry = []string{best.String()}
	return u
}

// renderLocked returns the full conference-info document viewer may see,
// with version 0 (withVersion sets each subscriber's). Leader and attendee
// views are rendered once per change, whatever the number of subscribers.
func (c *conf) renderLocked(viewer *participant) []byte {
	class := viewOf(viewer)
	key := cacheKey{class: class}
	if class != 0 {
		if body, ok := c.cache[key]; ok {
			return body
		}
	}
	m := c.meeting
	byURI := map[string][]*participant{}
	var order []string
	for _, p := range c.sorted() {
		if !sees(class, viewer, p) {
			continue
		}
		if byURI[p.URI] == nil {
			order = append(order, p.URI)
		}
		byURI[p.URI] = append(byURI[p.URI], p)
	}
	ci := &ConferenceInfo{
		Entity: m.Focus(), State: "full",
		Description: &Description{DisplayText: m.Subject, Subject: m.Subject,
			ConfURIs:    &URIs{Entry: []URIEntry{{URI: m.Focus(), Purpose: "participation"}}},
			ServiceURIs: &URIs{Entry: []URIEntry{{URI: m.JoinURL, Purpose: "web-page"}}}},
		ConfState: c.confState(),
		Users:     &Users{},
	}
	for _, uri := range order {
		u := userOf(uri, byURI[uri])
		for _, p := range byURI[uri] {
			u.Endpoints = append(u.Endpoints, endpointOf(p))
		}
		ci.Users.User = append(ci.Users.User, *u)
	}
	body := ci.Marshal()
	if class != 0 {
		c.cache[key] = body
	}
	return body
}

// renderPartialLocked returns a partial conference-info document (RFC 4575
// section 4.6) with what a viewer of class (leader or attendee) may see of
// the changes after version since: the changed endpoints, endpoints and
// users that are gone as deleted, and the conference state. It returns
// nil if nothing the class sees has changed.
func (c *conf) renderPartialLocked(class viewClass, since uint64) []byte {
	key := cacheKey{class: class, partial: true, since: since}
	if body, ok := c.cache[key]; ok {
		return body
	}
	changed := map[ParticipantID]bool{}
	var uris []string
	urisSeen := map[string]bool{}
	conference := false
	for i := len(c.log) - 1; i >= 0 && c.log[i].version > since; i-- {
		ch := c.log[i]
		switch {
		case ch.pid == "":
			conference = true
		case class == viewLeader || ch.attendees:
			changed[ch.pid] = true
			if !urisSeen[ch.uri] {
				urisSeen[ch.uri] = true
				uris = append(uris, ch.uri)
			}
		}
	}
	var body []byte
	if len(changed) > 0 || conference {
		ci := &ConferenceInfo{Entity: c.meeting.Focus(), State: "partial", ConfState: c.confState(), Users: &Users{State: "partial"}}
		slices.Reverse(uris) // oldest change first
		for _, uri := range uris {
			var visible []*participant
			for _, p := range c.sorted() {
				if p.URI == uri && sees(class, nil, p) {
					visible = append(visible, p)
				}
			}
			if len(visible) == 0 {
				ci.Users.User = append(ci.Users.User, User{Entity: uri, State: "deleted"})
				continue
			}
			u := userOf(uri, visible)
			u.State = "partial"
			for pid := range changed {
				if p := c.parts[pid]; p != nil && p.URI == uri && sees(class, nil, p) {
					u.Endpoints = append(u.Endpoints, endpointOf(p))
				} else if p == nil || p.URI == uri {
					// Gone, or no longer visible to this class: deleted.
					if c.uriOf(pid) == uri {
						u.Endpoints = append(u.Endpoints, Endpoint{Entity: participantURN + string(pid), State: "deleted"})
					}
				}
			}
			slices.SortFunc(u.Endpoints, func(a, b Endpoint) int { return strings.Compare(a.Entity, b.Entity) })
			ci.Users.User = append(ci.Users.User, *u)
		}
		body = ci.Marshal()
	}
	c.cache[key] = body
	return body
}

// uriOf returns the identity URI of a participant, present or in the log.
func (c *conf) uriOf(pid ParticipantID) string {
	if p := c.parts[pid]; p != nil {
		return p.URI
	}
	for i := len(c.log) - 1; i >= 0; i-- {
		if c.log[i].pid == pid {
			return c.log[i].uri
		}
	}
	return ""
}

// Update is a conference-info document for one subscriber, or the end of
// the subscription.
type Update struct {
	// Doc is a conference-info document with the subscriber's own version
	// count: the full state the subscriber may see first, then partial
	// documents with what changed (ConferenceInfo.Apply merges them).
	Doc []byte
	// Ended says the subscription is over: the participant left, was
	// ejected or rejected, or the Focus closed. Doc is nil then.
	Ended bool
}

// subscriber is one subscription to a meeting's state.
type subscriber struct {
	f       *Focus
	c       *conf
	pid     ParticipantID
	deliver func(Update)
	// Guarded by c.mu.
	version uint32    // of the last document sent
	seen    uint64    // the meeting's version it reflects
	class   viewClass // the view it was rendered for
	full    bool      // a full document was sent
	dirty   bool
	running bool
	ended   bool
}

// Subscribe sends fn the conference-info document participant pid of
// meeting id may see: at once, then after every change, until cancel is
// called or the participant is gone. Leaders see the lobby; attendees the
// joined roster; a lobby participant only itself (so it learns when it is
// admitted). fn is called from one goroutine at a time and may block;
// changes made meanwhile are coalesced into the next document. The last
// call has Ended set.
func (f *Focus) Subscribe(id MeetingID, pid ParticipantID, fn func(Update)) (cancel func(), err error) {
	s, err := f.subscribe(id, pid, fn)
	if err != nil {
		return nil, err
	}
	return s.cancel, nil
}

// MaxSubscriptions bounds the subscriptions one participant holds.
const MaxSubscriptions = 4

func (f *Focus) subscribe(id MeetingID, pid ParticipantID, fn func(Update)) (*subscriber, error) {
	c, err := f.existing(id)
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if c.parts[pid] == nil {
		return nil, ErrNoParticipant
	}
	n := 0
	for s := range c.subs {
		if s.pid == pid && !s.ended {
			n++
		}
	}
	if n >= MaxSubscriptions {
		return nil, fmt.Errorf("%w: %d subscriptions for one participant", ErrFull, n)
	}
	s := &subscriber{f: f, c: c, pid: pid, deliver: fn}
	c.subs[s] = struct{}{}
	f.kickLocked(c, s)
	return s, nil
}

// cancel ends the subscription: its last update has Ended set.
func (s *subscriber) cancel() {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if !s.ended {
		s.ended = true
		s.f.kickLocked(s.c, s)
	}
}

// resend makes the subscriber get the full state again (a refresh).
func (s *subscriber) resend() {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if !s.ended {
		s.full = false
		s.f.kickLocked(s.c, s)
	}
}

// kickLocked makes s deliver the current state, starting its delivery
// goroutine if it is not running.
func (f *Focus) kickLocked(c *conf, s *subscriber) {
	s.dirty = true
	if s.running {
		return
	}
	s.running = f.goRun(func() { f.deliverLoop(s) })
}

// deliverLoop sends s the latest state until nothing changed since the
// last delivery, then exits; the next change starts it again.
func (f *Focus) deliverLoop(s *subscriber) {
	c := s.c
	for {
		c.mu.Lock()
		p := c.parts[s.pid]
		if f.ctx.Err() != nil || p == nil {
			s.ended = true
		}
		if !s.dirty && !s.ended {
			s.running = false
			c.mu.Unlock()
			return
		}
		s.dirty = false
		var u Update
		if s.ended {
			delete(c.subs, s)
			u.Ended = true
		} else {
			// The full state first and whenever the subscriber's view
			// changes class or it fell behind the log; else the changes.
			class := viewOf(p)
			var body []byte
			if !s.full || class != s.class || class == 0 || !c.covers(s.seen) {
				body = c.renderLocked(p)
			} else if body = c.renderPartialLocked(class, s.seen); body == nil {
				s.seen = c.version // nothing this subscriber sees changed
				c.mu.Unlock()
				continue
			}
			s.full, s.class, s.seen = true, class, c.version
			s.version++
			u.Doc = withVersion(body, s.version)
		}
		c.mu.Unlock()
		s.deliver(u)
		if u.Ended {
			f.release(c)
			return
		}
	}
}

// ConferenceInfo returns the document participant pid of meeting id may
// see now (version 0).
func (f *Focus) ConferenceInfo(_ context.Context, id MeetingID, pid ParticipantID) ([]byte, error) {
	c, err := f.existing(id)
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	p := c.parts[pid]
	if p == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoParticipant, pid)
	}
	return c.renderLocked(p), nil
}
