package conference

import (
	"context"
	"fmt"

	"github.com/parleyuc/parley/auth"
)

// actorLocked returns the joined participant actor, or an error.
func (c *conf) actorLocked(actor ParticipantID) (*participant, error) {
	a := c.parts[actor]
	if a == nil || a.State != Joined {
		return nil, fmt.Errorf("%w: the requester is not in the meeting", ErrForbidden)
	}
	return a, nil
}

// control runs op for actor on meeting id with the lock held.
func (f *Focus) control(ctx context.Context, id MeetingID, actor ParticipantID, op func(c *conf, a *participant) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := f.existing(id)
	if err != nil {
		return fmt.Errorf("%w: the requester is not in the meeting", ErrForbidden)
	}
	a, err := c.actorLocked(actor)
	if err == nil {
		err = op(c, a)
	}
	c.mu.Unlock()
	f.release(c)
	return err
}

func (c *conf) target(pid ParticipantID) (*participant, error) {
	if p := c.parts[pid]; p != nil {
		return p, nil
	}
	return nil, ErrNoParticipant
}

// RecordedName returns the name participant pid recorded when it dialed
// in (a WAV file), for actor, a leader of meeting id.
func (f *Focus) RecordedName(ctx context.Context, id MeetingID, actor, pid ParticipantID) ([]byte, error) {
	var out []byte
	err := f.control(ctx, id, actor, func(c *conf, a *participant) error {
		if !a.Role.Leader() {
			return fmt.Errorf("%w: only presenters hear recorded names", ErrForbidden)
		}
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		if len(p.recordedName) == 0 {
			return fmt.Errorf("%w: %s recorded no name", ErrNoParticipant, pid)
		}
		out = p.recordedName
		return nil
	})
	return out, err
}

// Promote makes the joined attendee pid a presenter. Any presenter may.
// Anonymous and federated users can be promoted once they have joined.
func (f *Focus) Promote(ctx context.Context, id MeetingID, actor, pid ParticipantID) error {
	return f.control(ctx, id, actor, func(c *conf, a *participant) error {
		if !a.Role.Leader() {
			return fmt.Errorf("%w: only presenters promote", ErrForbidden)
		}
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		if p.State != Joined || p.Role != Attendee {
			return fmt.Errorf("%w: %s is not a joined attendee", ErrWrongState, pid)
		}
		if err := f.keepRoleLocked(ctx, c, p, Presenter); err != nil {
			return err
		}
		p.Role = Presenter
		c.muteLocked(p)
		f.emitLocked(c, Event{Kind: EventRole, Participant: p.Participant, By: a.ID}, true)
		return nil
	})
}

// Demote makes presenter pid an attendee. Only the organizer decides who
// else presents; the organizer cannot be demoted.
func (f *Focus) Demote(ctx context.Context, id MeetingID, actor, pid ParticipantID) error {
	return f.control(ctx, id, actor, func(c *conf, a *participant) error {
		if a.Role != Organizer {
			return fmt.Errorf("%w: only the organizer demotes", ErrForbidden)
		}
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		if p.State != Joined || p.Role != Presenter {
			return fmt.Errorf("%w: %s is not a presenter", ErrWrongState, pid)
		}
		if err := f.keepRoleLocked(ctx, c, p, Attendee); err != nil {
			return err
		}
		p.Role = Attendee
		c.muteLocked(p)
		f.emitLocked(c, Event{Kind: EventRole, Participant: p.Participant, By: a.ID}, true)
		return nil
	})
}

// Eject removes joined participant pid. The organizer may eject anyone
// but an organizer; a presenter, attendees only.
func (f *Focus) Eject(ctx context.Context, id MeetingID, actor, pid ParticipantID) error {
	return f.control(ctx, id, actor, func(c *conf, a *participant) error {
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		switch {
		case !a.Role.Leader():
			return fmt.Errorf("%w: attendees eject nobody", ErrForbidden)
		case p.Role == Organizer:
			return fmt.Errorf("%w: the organizer cannot be ejected", ErrForbidden)
		case a.Role != Organizer && p.Role != Attendee:
			return fmt.Errorf("%w: only the organizer ejects presenters", ErrForbidden)
		case p.State != Joined:
			return fmt.Errorf("%w: %s has not joined (reject it from the lobby)", ErrWrongState, pid)
		}
		f.removeLocked(c, p, EventEjected, a.ID, ErrLeft)
		return nil
	})
}

// Lock sends every newcomer but the organizer to the lobby while the
// meeting runs (locked), or stops doing so. Organizer only.
func (f *Focus) Lock(ctx context.Context, id MeetingID, actor ParticipantID, locked bool) error {
	return f.control(ctx, id, actor, func(c *conf, a *participant) error {
		if a.Role != Organizer {
			return fmt.Errorf("%w: only the organizer locks the meeting", ErrForbidden)
		}
		if c.locked != locked {
			err := f.persistLiveLocked(ctx, c, func(l *LiveState) {
				l.Locked = locked
				if locked {
					// Those in now are no newcomers if they must rejoin.
					for _, p := range c.parts {
						if p.State == Joined && p.cand.authenticated() {
							l.admit(p.cand.AOR)
						}
					}
				}
			})
			if err != nil {
				return err
			}
			c.locked = locked
			f.emitLocked(c, Event{Kind: EventPolicy, By: a.ID}, true)
		}
		return nil
	})
}

// MuteAll mutes the audience (muted) or lets it speak again: while it is
// muted, the media server forwards no attendee's audio, newcomers'
// included; presenters and the organizer are heard. Any leader may. Each
// attendee's Muted changes, with an EventRole; then an EventPolicy.
func (f *Focus) MuteAll(ctx context.Context, id MeetingID, actor ParticipantID, muted bool) error {
	return f.control(ctx, id, actor, func(c *conf, a *participant) error {
		if !a.Role.Leader() {
			return fmt.Errorf("%w: only presenters mute the audience", ErrForbidden)
		}
		if c.muted == muted {
			return nil
		}
		if err := f.persistLiveLocked(ctx, c, func(l *LiveState) { l.Muted = muted }); err != nil {
			return err
		}
		c.muted = muted
		for _, p := range c.sorted() {
			if p.State == Joined && c.muteLocked(p) {
				f.emitLocked(c, Event{Kind: EventRole, Participant: p.Participant, By: a.ID}, true)
			}
		}
		f.emitLocked(c, Event{Kind: EventPolicy, By: a.ID}, true)
		return nil
	})
}

// keepRoleLocked stores the role a leader gives the authenticated
// participant p during the meeting (LiveState.Roles), before it is given,
// so the next host gives it too. An anonymous participant's role is not
// kept: it has no identity to rejoin with.
func (f *Focus) keepRoleLocked(ctx context.Context, c *conf, p *participant, r Role) error {
	if !p.cand.authenticated() {
		return nil
	}
	return f.persistLiveLocked(ctx, c, func(l *LiveState) {
		if l.Roles == nil {
			l.Roles = map[string]Role{}
		}
		l.Roles[p.cand.AOR] = r
	})
}

// muteLocked sets whether p is muted: an attendee while the audience is.
// It reports whether that changed.
func (c *conf) muteLocked(p *participant) bool {
	muted := c.muted && !p.Role.Leader()
	changed := p.Muted != muted
	p.Muted = muted
	return changed
}

// SetAccess changes the meeting's access policy and dial-in option, in the
// store too. Organizer only; it applies to those who join from now on.
func (f *Focus) SetAccess(ctx context.Context, id MeetingID, actor ParticipantID, access AccessPolicy, dialInLobby bool) error {
	if _, ok := accessNames[access]; !ok {
		return fmt.Errorf("%w: access policy %d", ErrInvalid, access)
	}
	return f.control(ctx, id, actor, func(c *conf, a *participant) error {
		if a.Role != Organizer {
			return fmt.Errorf("%w: only the organizer changes the access policy", ErrForbidden)
		}
		return f.updateLocked(ctx, c, a, func(m *Meeting) error {
			m.Access, m.DialInLobby = access, dialInLobby
			return nil
		})
	})
}

// SetPresenters changes the meeting's presenter policy (and chosen
// presenters), in the store too. Organizer only; it applies to those who
// join from now on.
func (f *Focus) SetPresenters(ctx context.Context, id MeetingID, actor ParticipantID, policy PresenterPolicy, chosen []string) error {
	if _, ok := presenterNames[policy]; !ok {
		return fmt.Errorf("%w: presenter policy %d", ErrInvalid, policy)
	}
	var list []string
	for _, s := range chosen {
		aor, err := auth.CanonicalAOR(s)
		if err != nil {
			return fmt.Errorf("%w: presenter %q: %w", ErrInvalid, s, err)
		}
		list = append(list, aor)
	}
	return f.control(ctx, id, actor, func(c *conf, a *participant) error {
		if a.Role != Organizer {
			return fmt.Errorf("%w: only the organizer changes the presenter policy", ErrForbidden)
		}
		return f.updateLocked(ctx, c, a, func(m *Meeting) error {
			m.Presenter, m.Presenters = policy, list
			return nil
		})
	})
}

func (f *Focus) updateLocked(ctx context.Context, c *conf, a *participant, fn func(*Meeting) error) error {
	ctx, cancel := context.WithTimeout(ctx, defaultStoreTimeout)
	defer cancel()
	var m *Meeting
	var err error
	if fenced, ok := f.cfg.Meetings.(FencedMeetingStore); ok && c.leased {
		// Refused if another front end has since been granted the
		// meeting: this one lost it (the renewer ends it here).
		m, err = fenced.UpdateFenced(ctx, c.meeting.ID, c.lease.Token, fn)
	} else {
		m, err = f.cfg.Meetings.Update(ctx, c.meeting.ID, fn)
	}
	if err != nil {
		return err
	}
	c.meeting = m
	f.emitLocked(c, Event{Kind: EventPolicy, By: a.ID}, true)
	return nil
}
