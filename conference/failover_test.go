package conference

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// crashable is HostLeases of a front end that can die outright: once
// dead, its renewals fail as a store out of reach does and its releases
// never arrive, so its leases lapse in the store as a killed process's do.
type crashable struct {
	HostLeases
	dead atomic.Bool
}

var errUnreachable = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}

func (c *crashable) Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	if c.dead.Load() {
		return Lease{}, errUnreachable
	}
	return c.HostLeases.Renew(ctx, l, ttl)
}

func (c *crashable) Release(ctx context.Context, l Lease) error {
	if c.dead.Load() {
		return errUnreachable
	}
	return c.HostLeases.Release(ctx, l)
}

// takeOver joins id through e as who until e hosts the meeting (the
// previous host's lease lapsed), and returns the participant.
func takeOver(t *testing.T, e *focusEnv, m *Meeting, who JoinRequest) *Participant {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := e.focus.Join(context.Background(), m.ID, who)
		if err == nil {
			return p
		}
		if !errors.Is(err, ErrHostedElsewhere) || time.Now().After(deadline) {
			t.Fatalf("%s joins through the next host: %v", who.Identity.URI, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFailoverRebuildsLiveMeeting: a hosts a meeting whose access policy
// sends everyone but the organizer to the lobby. Alice (organizer) admits
// bob, vic (of another company) and a guest, promotes vic, mutes the audience and locks
// the meeting; then a dies. Rejoining through b, which hosts the meeting
// next: alice is organizer, vic presenter, bob enters directly (no lobby
// again) and muted, the guest (no identity to know it by) and dave (never
// admitted) wait in the lobby, and the meeting is still locked. Once
// everyone has left, the kept state is cleared: bob waits again.
func TestFailoverRebuildsLiveMeeting(t *testing.T) {
	const ttl = 150 * time.Millisecond
	var dying *crashable
	a, b := pool(t, ttl, func(l HostLeases) HostLeases { dying = &crashable{HostLeases: l}; return dying })
	ctx := context.Background()
	m := a.schedule(MeetingOptions{Access: AccessOrganizer, Presenter: PresentersOrganizer})
	alice := a.join(m, internal("alice"))
	guestID := anonymous(m.ID, "Visitor")
	var waiting []*Participant
	for _, id := range []JoinRequest{{Identity: internal("bob")}, {Identity: internal("vic")}, {Identity: guestID}} {
		p, err := a.focus.Join(ctx, m.ID, id)
		if err != nil || p.State != InLobby {
			t.Fatalf("%s joins through a: %+v, %v; want the lobby", id.Identity.URI, p, err)
		}
		if err := a.focus.Lobby().Admit(ctx, m.ID, alice.ID, p.ID); err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, p)
	}
	carol := waiting[1]
	if err := a.focus.Promote(ctx, m.ID, alice.ID, carol.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.focus.MuteAll(ctx, m.ID, alice.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := a.focus.Lock(ctx, m.ID, alice.ID, true); err != nil {
		t.Fatal(err)
	}
	stale, _ := a.focus.Host(ctx, m.ID)
	dying.dead.Store(true) // a dies: its lease lapses within ttl

	alice2 := takeOver(t, b, m, JoinRequest{Identity: internal("alice")})
	if h, err := b.focus.Host(ctx, m.ID); err != nil || h.Host != "b" || h.Token <= stale.Token {
		t.Fatalf("host after the failover: %+v, %v; want b with a token above %d", h, err, stale.Token)
	}
	if alice2.State != Joined || alice2.Role != Organizer {
		t.Fatalf("alice through b: %v %v; want joined organizer", alice2.State, alice2.Role)
	}
	bob := b.join(m, internal("bob"))
	carol2 := b.join(m, internal("vic"))
	guest := b.join(m, anonymous(m.ID, "Visitor"))
	dave := b.join(m, internal("dave"))
	for _, c := range []struct {
		who   string
		p     *Participant
		state State
		role  Role
		muted bool
	}{
		{"bob (admitted before)", bob, Joined, Attendee, true},
		{"vic (promoted before)", carol2, Joined, Presenter, false},
		{"the guest (admitted before, but anonymous)", guest, InLobby, Attendee, false},
		{"dave (never admitted; the meeting is locked)", dave, InLobby, Attendee, false},
	} {
		if c.p.State != c.state || c.p.Role != c.role || c.p.Muted != c.muted {
			t.Errorf("%s rejoins through b: %v %v muted %v; want %v %v muted %v", c.who, c.p.State, c.p.Role, c.p.Muted, c.state, c.role, c.muted)
		}
	}
	// Still locked: unlocking is a change.
	events := make(chan Event, 8)
	stop, err := b.focus.Watch(ctx, m.ID, func(ev Event) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	if err := b.focus.Lock(ctx, m.ID, alice2.ID, false); err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("unlocking after the failover made %d events; want 1 (it was locked)", len(events))
	}
	stop()

	for _, p := range []*Participant{alice2, bob, carol2, guest, dave} {
		if err := b.focus.Leave(m.ID, p.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := b.store.Get(ctx, m.ID); got.Live != nil {
		t.Fatalf("live state kept after everyone left: %+v", got.Live)
	}
	b.join(m, internal("alice"))
	if again := b.join(m, internal("bob")); again.State != InLobby {
		t.Fatalf("bob in the next live meeting: %v; want the lobby", again.State)
	}
}

// TestStaleHostCannotWriteLiveState: a front end paused past its lease
// (it believes it still hosts) can neither admit, promote nor lock once
// another front end hosts the meeting: the store refuses (ErrFenced) and
// the kept live state stays the new host's.
func TestStaleHostCannotWriteLiveState(t *testing.T) {
	const ttl = 90 * time.Millisecond
	a, b := pool(t, ttl, func(l HostLeases) HostLeases { return believing{l} })
	ctx := context.Background()
	m := a.schedule(MeetingOptions{Access: AccessOrganizer})
	alice := a.join(m, internal("alice"))
	bob, err := a.focus.Join(ctx, m.ID, JoinRequest{Identity: internal("bob")})
	if err != nil {
		t.Fatal(err)
	}
	carol, err := a.focus.Join(ctx, m.ID, JoinRequest{Identity: internal("vic")})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.focus.Lobby().Admit(ctx, m.ID, alice.ID, carol.ID); err != nil {
		t.Fatal(err)
	}
	takeOver(t, b, m, JoinRequest{Identity: internal("alice")})
	before, _ := a.store.Get(ctx, m.ID)
	wantErr(t, "admit through the stale host", a.focus.Lobby().Admit(ctx, m.ID, alice.ID, bob.ID), ErrFenced)
	wantErr(t, "promote through the stale host", a.focus.Promote(ctx, m.ID, alice.ID, carol.ID), ErrFenced)
	wantErr(t, "lock through the stale host", a.focus.Lock(ctx, m.ID, alice.ID, true), ErrFenced)
	after, _ := a.store.Get(ctx, m.ID)
	if after.Revision != before.Revision || after.Live.Locked || len(after.Live.Admitted) != 1 || len(after.Live.Roles) != 0 {
		t.Fatalf("the stale host changed the live state: %+v", after.Live)
	}
	if st, _ := a.state(m, bob); st != InLobby {
		t.Fatalf("bob after a refused admission: %v; want still in the lobby", st)
	}
	if _, r := a.state(m, carol); r != Attendee {
		t.Fatalf("carol after a refused promotion: %v; want attendee", r)
	}
}

// failingLeases is HostLeases whose store cannot be reached.
type failingLeases struct{ HostLeases }

func (failingLeases) Acquire(context.Context, MeetingID, string, time.Duration) (Lease, error) {
	return Lease{}, errUnreachable
}

// TestJoinStoreUnavailable503: a join whose lease cannot be acquired, the
// store being out of reach, is answered 503 with Retry-After over SIP
// (TLS on loopback), not 500; through the Go API it is ErrUnavailable.
func TestJoinStoreUnavailable503(t *testing.T) {
	e := newSIPEnv(t, func(c *FocusConfig) {
		c.Leases, c.Host = failingLeases{c.Meetings.(*MemoryMeetings).HostLeases()}, "a"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := e.schedule(MeetingOptions{Access: AccessAnyone})
	_, err := e.focus.Join(ctx, m.ID, JoinRequest{Identity: internal("bob")})
	wantErr(t, "Join with the leases out of reach", err, ErrUnavailable)
	res, err := e.user("bob").join(ctx, m)
	if err != nil || res.StatusCode != 503 {
		t.Fatalf("INVITE with the leases out of reach: %v %v; want 503", res, err)
	}
	ra := res.GetHeader("Retry-After")
	if n, _ := strconv.Atoi(valueOf(ra)); n <= 0 {
		t.Fatalf("503 without a positive Retry-After: %v", res)
	}
}

// valueOf returns a header's value, "" if it is absent.
func valueOf(h interface{ Value() string }) string {
	if h == nil {
		return ""
	}
	return h.Value()
}

// TestEndThroughAnotherFrontEnd: an End through a front end that does not
// host the meeting deletes it from the store; the host, told to look
// (EndDeleted), ends its live meeting there: alice is ejected and the
// lease released. A meeting still in the store stays.
func TestEndThroughAnotherFrontEnd(t *testing.T) {
	a, b := pool(t, time.Minute, nil)
	ctx := context.Background()
	m := a.schedule(MeetingOptions{Access: AccessAnyone})
	other := a.schedule(MeetingOptions{Access: AccessAnyone})
	a.join(m, internal("alice"))
	a.join(other, internal("bob"))
	if err := b.focus.End(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(a.focus.Participants(m.ID)); n != 1 {
		t.Fatalf("%d participants on a before it looked; want 1", n)
	}
	n, err := a.focus.EndDeleted(ctx)
	if err != nil || n != 1 {
		t.Fatalf("EndDeleted = %d, %v; want 1", n, err)
	}
	if got := a.focus.Participants(m.ID); len(got) != 0 {
		t.Fatalf("still in the ended meeting on a: %+v", got)
	}
	if _, err := a.focus.Host(ctx, m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the ended meeting's lease: %v; want released", err)
	}
	if got := a.focus.Participants(other.ID); len(got) != 1 {
		t.Fatalf("the other meeting on a: %+v; want bob still in it", got)
	}
}
