package conference

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/time/rate"
)

// Raised hands: a participant in the meeting (not in its lobby) raises its
// hand to ask to speak and lowers it again; a leader may lower anyone's.
// The hand is participant state, like Muted: Watch sees an EventHand,
// the browser signaling's roster carries it, and conference-state
// subscribers see it on the participant's endpoint (Parley's extension
// element hand-raised). SIP participants raise theirs with the control
// request <hand raised="true"/>.

// A participant's own hand changes, per participant: a burst, then one
// every two seconds. Every change is sent to everyone in the meeting, so
// one participant must not flood them.
const (
	handBurst = 6
	handRate  = rate.Limit(0.5)
)

// ErrTooFast is what a participant gets for changing its hand faster than
// the meeting allows; it may try again in a moment.
var ErrTooFast = errors.New("conference: too many requests; wait a moment")

// SetHand raises (raised) or lowers the hand of participant pid of meeting
// id, for actor. A joined participant raises and lowers its own hand
// (pid == actor), bounded in rate (ErrTooFast); a leader lowers anyone's.
// Nobody raises another's hand, and a participant in the lobby has none
// (ErrForbidden); the target must have joined (ErrWrongState). A change
// is an EventHand, By the leader when it lowered another's hand.
func (f *Focus) SetHand(ctx context.Context, id MeetingID, actor, pid ParticipantID, raised bool) error {
	return f.control(ctx, id, actor, func(c *conf, a *participant) error {
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		by := ParticipantID("")
		switch {
		case p == a:
			if a.hands == nil {
				a.hands = rate.NewLimiter(handRate, handBurst)
			}
			if !a.hands.Allow() {
				return ErrTooFast
			}
		case raised:
			return fmt.Errorf("%w: only %s raises its hand", ErrForbidden, pid)
		case !a.Role.Leader():
			return fmt.Errorf("%w: only presenters lower others' hands", ErrForbidden)
		default:
			by = a.ID
		}
		if p.State != Joined {
			return fmt.Errorf("%w: %s is not in the meeting", ErrWrongState, pid)
		}
		if p.HandRaised == raised {
			return nil
		}
		p.HandRaised = raised
		f.emitLocked(c, Event{Kind: EventHand, Participant: p.Participant, By: by}, true)
		return nil
	})
}
