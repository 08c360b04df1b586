package conference

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// viewClass is who sees what of a meeting: leaders see the lobby, joined
// attendees the roster, a lobby participant only itself.
type viewClass int

const (
	viewLeader viewClass = iota + 1
	viewAttendee
)

type cached struct {
	body []byte
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

// renderLocked returns the conference-info document viewer may see, with
// version 0 (withVersion sets each subscriber's). Leader and attendee
// views are rendered once per change, whatever the number of subscribers.
func (c *conf) renderLocked(viewer *participant) []byte {
	class := viewOf(viewer)
	if class != 0 {
		if v, ok := c.cache[class]; ok {
			return v.body
		}
	}
	m := c.meeting
	joined := uint32(0)
	users := map[string]*User{}
	var order []string
	for _, p := range c.sorted() {
		if p.State == Joined {
			joined++
		}
		switch {
		case class == viewLeader:
		case class == viewAttendee && p.State == Joined:
		case class == 0 && p == viewer:
		default:
			continue
		}
		u := users[p.URI]
		if u == nil {
			u = &User{Entity: p.URI, DisplayText: p.DisplayName, Type: p.Type.String(), Roles: &Roles{}}
			users[p.URI] = u
			order = append(order, p.URI)
		}
		status := "connected"
		if p.State == InLobby {
			status = "pending"
		}
		if len(u.Roles.Entry) == 0 || roleRank(u.Roles.Entry[0]) < int(p.Role) {
			u.Roles.Entry = []string{p.Role.String()}
		}
		u.Endpoints = append(u.Endpoints, Endpoint{Entity: participantURN + p.ID, DisplayText: p.DisplayName,
			Status: status, JoiningMethod: "dialed-in", JoiningInfo: &JoiningInfo{When: p.Since.UTC().Format(time.RFC3339)}})
	}
	active := joined > 0
	ci := &ConferenceInfo{
		Entity: m.Focus(), State: "full",
		Description: &Description{DisplayText: m.Subject, Subject: m.Subject,
			ConfURIs:    &URIs{Entry: []URIEntry{{URI: m.Focus(), Purpose: "participation"}}},
			ServiceURIs: &URIs{Entry: []URIEntry{{URI: m.JoinURL, Purpose: "web-page"}}}},
		ConfState: &ConfState{UserCount: &joined, Active: &active, Locked: &c.locked},
		Users:     &Users{},
	}
	for _, uri := range order {
		ci.Users.User = append(ci.Users.User, *users[uri])
	}
	body := ci.Marshal()
	if class != 0 {
		c.cache[class] = cached{body: body}
	}
	return body
}

func roleRank(name string) int {
	for r, n := range roleNames {
		if n == name {
			return int(r)
		}
	}
	return 0
}

// Update is a conference-info document for one subscriber, or the end of
// the subscription.
type Update struct {
	// Doc is the full conference-info document the subscriber may see,
	// with its own version count.
	Doc []byte
	// Ended says the subscription is over: the participant left, was
	// ejected or rejected, or the Focus closed. Doc is nil then.
	Ended bool
}

// subscriber is one subscription to a meeting's state.
type subscriber struct {
	c       *conf
	pid     string
	deliver func(Update)
	// Guarded by c.mu.
	version uint32
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
func (f *Focus) Subscribe(id, pid string, fn func(Update)) (cancel func(), err error) {
	c, err := f.existing(id)
	if err != nil {
		return nil, err
	}
	if c.parts[pid] == nil {
		c.mu.Unlock()
		return nil, ErrNoParticipant
	}
	s := &subscriber{c: c, pid: pid, deliver: fn}
	c.subs[s] = struct{}{}
	f.kickLocked(c, s)
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			s.ended = true
			f.kickLocked(c, s)
			c.mu.Unlock()
		})
	}, nil
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
			s.version++
			u.Doc = withVersion(c.renderLocked(p), s.version)
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
func (f *Focus) ConferenceInfo(_ context.Context, id, pid string) ([]byte, error) {
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
