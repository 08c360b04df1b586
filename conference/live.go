package conference

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"
)

// ErrUnavailable: the store that holds the meetings or the host leases
// could not be reached or failed; nothing was decided. It is temporary:
// SIP answers 503 with Retry-After, HTTPS 503.
var ErrUnavailable = errors.New("conference: meeting store unavailable")

// unavailable wraps a store's error in ErrUnavailable, unless it says the
// meeting does not exist or is hosted elsewhere, which are answers.
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrHostedElsewhere) || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// StoreRetryAfter is the Retry-After of a join answered 503 because the
// store was unavailable (ErrUnavailable).
const StoreRetryAfter = 5 * time.Second

// answerUnavailable answers req 503 with Retry-After (StoreRetryAfter)
// if err wraps ErrUnavailable, and reports whether it did.
func answerUnavailable(req *sip.Request, tx sip.ServerTransaction, err error) bool {
	if !errors.Is(err, ErrUnavailable) {
		return false
	}
	res := sip.NewResponseFromRequest(req, 503, "Meeting store unavailable", nil)
	res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(int(StoreRetryAfter/time.Second))))
	_ = tx.Respond(res)
	return true
}

// LiveState is what a live meeting's host keeps in the store besides the
// scheduled settings, so that the front end that hosts the meeting next,
// after the host died (its lease lapsed), rebuilds it: the lock and the
// audience's mute, who a leader admitted from the lobby, and the roles
// granted or taken during the meeting. The host writes it fenced by its
// lease's token (FencedMeetingStore.UpdateFenced), so a host that lost
// the meeting cannot overwrite it; it is written only in a pool
// (FocusConfig.Leases) and cleared when the live meeting ends because
// everyone left.
//
// Users are known by their canonical address of record. Anonymous users
// (guests with the conference key, dial-in callers without a PIN) have no
// identity that outlives their connection: neither their display name
// nor the conference key they hold, which every guest shares, says who
// they are. So a guest admitted before a failover waits in the lobby
// again on rejoining, and a role granted to a guest is not kept.
type LiveState struct {
	// Token is the lease token of the host that wrote it last.
	Token uint64 `json:"token"`
	// Locked: the organizer locked the meeting (Focus.Lock).
	Locked bool `json:"locked,omitempty"`
	// Muted: a leader muted the audience (Focus.MuteAll).
	Muted bool `json:"muted,omitempty"`
	// Admitted are the users a leader admitted from the lobby, and those
	// in the meeting when it was locked: on rejoining they enter
	// directly, lock or access policy notwithstanding.
	Admitted []string `json:"admitted,omitempty"`
	// Roles are the roles leaders gave users during the meeting
	// (Promote, Demote), which replace those of the presenter policy.
	Roles map[string]Role `json:"roles,omitempty"`
}

// clone returns a deep copy; nil stays nil.
func (l *LiveState) clone() *LiveState {
	if l == nil {
		return nil
	}
	c := *l
	c.Admitted = slices.Clone(l.Admitted)
	c.Roles = maps.Clone(l.Roles)
	return &c
}

// admitted reports whether the authenticated candidate c was admitted
// during the live meeting.
func (l *LiveState) admitted(c Candidate) bool {
	return l != nil && c.authenticated() && slices.Contains(l.Admitted, c.AOR)
}

// role returns the role given to the authenticated candidate c during
// the live meeting, if one was.
func (l *LiveState) role(c Candidate) (Role, bool) {
	if l == nil || !c.authenticated() {
		return 0, false
	}
	r, ok := l.Roles[c.AOR]
	return r, ok
}

// admit adds aor to Admitted, once.
func (l *LiveState) admit(aor string) {
	if aor != "" && !slices.Contains(l.Admitted, aor) {
		l.Admitted = append(l.Admitted, aor)
	}
}

// rebuildLocked sets c's live state from its meeting as stored: what the
// previous host of the meeting left (LiveState).
func (c *conf) rebuildLocked() {
	if l := c.meeting.Live; l != nil {
		c.locked, c.muted = l.Locked, l.Muted
	}
}

// persistLiveLocked applies fn to meeting c's LiveState in the store,
// fenced by c's lease, before the change it records is made here: if the
// store refuses (ErrFenced: another front end hosts the meeting now) or
// fails, it returns the error and the change must not be made. Without a
// lease (no pool) nothing is stored.
func (f *Focus) persistLiveLocked(ctx context.Context, c *conf, fn func(*LiveState)) error {
	if !c.leased {
		return nil
	}
	fenced := f.cfg.Meetings.(FencedMeetingStore) // validHosting checked it
	token := c.lease.Token
	ctx, cancel := context.WithTimeout(ctx, f.storeTimeout())
	defer cancel()
	m, err := fenced.UpdateFenced(ctx, c.meeting.ID, token, func(m *Meeting) error {
		if m.Live == nil {
			m.Live = &LiveState{}
		}
		fn(m.Live)
		m.Live.Token = token
		return nil
	})
	if err != nil {
		return fmt.Errorf("the live state of %s not stored: %w", c.meeting.ID, unavailable(err))
	}
	c.meeting = m
	return nil
}

// forgetLive clears the stored LiveState of c, a live meeting that ended
// because everyone left, fenced by its lease: the next time the meeting
// starts, it starts afresh. A failure is only logged; the next host then
// finds the old state.
func (f *Focus) forgetLive(c *conf) {
	c.mu.Lock()
	leased, token, id, live := c.leased, c.lease.Token, c.meeting.ID, c.meeting.Live != nil
	c.mu.Unlock()
	if !leased || !live {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.storeTimeout())
	defer cancel()
	_, err := f.cfg.Meetings.(FencedMeetingStore).UpdateFenced(ctx, id, token, func(m *Meeting) error {
		m.Live = nil
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		f.cfg.Logger.Warn("the live state of an ended meeting not cleared", "meeting", id, "err", err)
	}
}

// EndDeleted ends the live meetings of this front end that are no longer
// in the store: in a pool, an admin's End through another front end
// deletes the meeting there, and this one, which may host it, is told
// to look (examples/server announces it on the pool's admin feed). Those
// in the lobby are rejected, the others ejected, as End does. It returns
// how many it ended; a meeting the store cannot be asked about stays,
// and the first such error is returned.
func (f *Focus) EndDeleted(ctx context.Context) (int, error) {
	f.mu.Lock()
	ids := make([]MeetingID, 0, len(f.confs))
	for id := range f.confs {
		ids = append(ids, id)
	}
	f.mu.Unlock()
	n := 0
	var first error
	for _, id := range ids {
		_, err := f.cfg.Meetings.Get(ctx, id)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrNotFound) {
			first = cmp.Or(first, fmt.Errorf("meeting %s: %w", id, unavailable(err)))
			continue
		}
		c, err := f.existing(id)
		if err != nil {
			continue // ended meanwhile
		}
		f.endLocked(c)
		f.cfg.Logger.Info("meeting ended: deleted through another front end", "meeting", id)
		n++
	}
	return n, first
}
