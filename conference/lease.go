package conference

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors of host leases. Callers test them with errors.Is.
var (
	// ErrHostedElsewhere: another front end of the pool holds the
	// meeting's lease, so it hosts the live meeting. The error is a
	// *HostedError carrying the holder's lease (HostOf).
	ErrHostedElsewhere = errors.New("conference: meeting hosted by another front end")
	// ErrLeaseLost: a lease to renew is no longer held with its token: it
	// lapsed and may have been granted anew, or it was released.
	ErrLeaseLost = errors.New("conference: host lease lost")
	// ErrFenced: a fenced write carried a token older than the meeting's
	// newest lease: a front end that has since lost the meeting tried to
	// change it. Nothing was changed.
	ErrFenced = errors.New("conference: write fenced off by a newer host lease")
)

// DefaultLeaseTTL is a host lease's lifetime when FocusConfig.LeaseTTL is
// zero. The Focus renews it every third of it, so a host that dies frees
// its meetings within the TTL.
const DefaultLeaseTTL = 10 * time.Second

// Lease says which front end (Host) hosts a live meeting until Expires.
// Token is a fencing token: each grant of the meeting's lease (Acquire)
// has a larger one than every grant before it, after expiry and release
// too, so a store can refuse the writes of a host that lost the lease
// (FencedMeetingStore) however long it was paused, as Kleppmann's fencing
// tokens do for a lock service; a renewal keeps the token.
type Lease struct {
	Meeting MeetingID `json:"meeting"`
	Host    string    `json:"host"`
	Token   uint64    `json:"token"`
	// Expires is when the lease lapses unless renewed, by the clock of
	// the process that asked, taken before the request was sent, so it
	// errs early.
	Expires time.Time `json:"expires"`
}

// HostedError is ErrHostedElsewhere with the lease of the front end that
// hosts the meeting.
type HostedError struct{ Holder Lease }

// Error implements error.
func (e *HostedError) Error() string {
	return fmt.Sprintf("%v: %s hosts %s (lease %d)", ErrHostedElsewhere, e.Holder.Host, e.Holder.Meeting, e.Holder.Token)
}

// Unwrap makes errors.Is(err, ErrHostedElsewhere) true.
func (e *HostedError) Unwrap() error { return ErrHostedElsewhere }

// HostOf returns the holder's lease carried by an error wrapping a
// *HostedError, and whether there is one.
func HostOf(err error) (Lease, bool) {
	var h *HostedError
	if errors.As(err, &h) {
		return h.Holder, true
	}
	return Lease{}, false
}

// HostLeases grants the front ends of a pool leases on live meetings, so
// that exactly one hosts each. Implementations are atomic against every
// front end sharing the store: of concurrent Acquires of a free meeting
// exactly one succeeds. Package store provides Redis and bbolt ones;
// MemoryMeetings.HostLeases is the in-memory one.
type HostLeases interface {
	// Acquire grants host the meeting's lease for ttl with a new token,
	// if nobody holds it or host itself does; if another front end holds
	// it, it returns a *HostedError (ErrHostedElsewhere) naming it.
	Acquire(ctx context.Context, meeting MeetingID, host string, ttl time.Duration) (Lease, error)
	// Renew extends l, still held with its token, for ttl from now; if
	// it lapsed or was released meanwhile it returns ErrLeaseLost, even
	// if nobody took it since.
	Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// Release gives l up if it is still held with its token; otherwise
	// it does nothing.
	Release(ctx context.Context, l Lease) error
	// Holder returns the meeting's current lease, or an error wrapping
	// ErrNotFound if nobody holds it.
	Holder(ctx context.Context, meeting MeetingID) (Lease, error)
}

// FencedMeetingStore is a MeetingStore whose updates a host lease's token
// guards. A Focus with HostLeases updates meetings through it.
type FencedMeetingStore interface {
	MeetingStore
	// UpdateFenced is Update, refused with ErrFenced (nothing changed)
	// if a lease on the meeting newer than token has been granted.
	UpdateFenced(ctx context.Context, id MeetingID, token uint64, fn func(*Meeting) error) (*Meeting, error)
}

// ValidLease checks the arguments of HostLeases.Acquire and Renew, for
// implementations: a meeting, a host and a positive TTL.
func ValidLease(meeting MeetingID, host string, ttl time.Duration) error {
	switch {
	case meeting == "":
		return errors.New("conference: a host lease needs a meeting")
	case host == "":
		return errors.New("conference: a host lease needs a host")
	case ttl <= 0:
		return fmt.Errorf("conference: host lease TTL %v is not positive", ttl)
	}
	return nil
}

// memoryLease is a granted lease in MemoryHostLeases.
type memoryLease struct {
	host    string
	token   uint64
	expires time.Time
}

// MemoryHostLeases is the in-memory HostLeases of a MemoryMeetings: one
// process, so one front end, but it fences the MemoryMeetings's
// UpdateFenced as a shared store does.
type MemoryHostLeases struct{ s *MemoryMeetings }

// HostLeases returns the leases that guard this store's UpdateFenced.
func (s *MemoryMeetings) HostLeases() *MemoryHostLeases { return &MemoryHostLeases{s} }

// heldLocked returns the unexpired lease on meeting.
func (s *MemoryMeetings) heldLocked(meeting MeetingID, now time.Time) (memoryLease, bool) {
	l, ok := s.leases[meeting]
	if !ok || !now.Before(l.expires) {
		return memoryLease{}, false
	}
	return l, true
}

// Acquire implements HostLeases.
func (h *MemoryHostLeases) Acquire(_ context.Context, meeting MeetingID, host string, ttl time.Duration) (Lease, error) {
	if err := ValidLease(meeting, host, ttl); err != nil {
		return Lease{}, err
	}
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if l, ok := s.heldLocked(meeting, now); ok && l.host != host {
		return Lease{}, &HostedError{Holder: Lease{Meeting: meeting, Host: l.host, Token: l.token, Expires: l.expires}}
	}
	s.tokens[meeting]++
	l := memoryLease{host: host, token: s.tokens[meeting], expires: now.Add(ttl)}
	s.leases[meeting] = l
	return Lease{Meeting: meeting, Host: host, Token: l.token, Expires: l.expires}, nil
}

// Renew implements HostLeases.
func (h *MemoryHostLeases) Renew(_ context.Context, l Lease, ttl time.Duration) (Lease, error) {
	if err := ValidLease(l.Meeting, l.Host, ttl); err != nil {
		return Lease{}, err
	}
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	cur, ok := s.heldLocked(l.Meeting, now)
	if !ok || cur.token != l.Token || cur.host != l.Host {
		return Lease{}, fmt.Errorf("%w: %s, token %d", ErrLeaseLost, l.Meeting, l.Token)
	}
	cur.expires = now.Add(ttl)
	s.leases[l.Meeting] = cur
	l.Expires = cur.expires
	return l, nil
}

// Release implements HostLeases.
func (h *MemoryHostLeases) Release(_ context.Context, l Lease) error {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.leases[l.Meeting]; ok && cur.token == l.Token && cur.host == l.Host {
		delete(s.leases, l.Meeting)
	}
	return nil
}

// Holder implements HostLeases.
func (h *MemoryHostLeases) Holder(_ context.Context, meeting MeetingID) (Lease, error) {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.heldLocked(meeting, time.Now())
	if !ok {
		return Lease{}, fmt.Errorf("%w: no host holds %s", ErrNotFound, meeting)
	}
	return Lease{Meeting: meeting, Host: l.host, Token: l.token, Expires: l.expires}, nil
}

// UpdateFenced implements FencedMeetingStore against the leases of
// HostLeases.
func (s *MemoryMeetings) UpdateFenced(_ context.Context, id MeetingID, token uint64, fn func(*Meeting) error) (*Meeting, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if newest := s.tokens[id]; token < newest {
		return nil, fmt.Errorf("%w: %s, token %d < %d", ErrFenced, id, token, newest)
	}
	return s.updateLocked(id, fn)
}
