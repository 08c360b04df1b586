package conference

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// pool returns two Focuses, front ends "a" and "b" of one pool: one
// store and its leases, with the lease TTL given.
func pool(t *testing.T, ttl time.Duration, leases func(HostLeases) HostLeases) (a, b *focusEnv) {
	t.Helper()
	store := NewMemoryMeetings()
	l := HostLeases(store.HostLeases())
	a = newFocusEnv(t, func(c *FocusConfig) {
		c.Meetings, c.Host, c.LeaseTTL, c.Leases = store, "a", ttl, l
		if leases != nil {
			c.Leases = leases(l)
		}
	})
	b = newFocusEnv(t, func(c *FocusConfig) { c.Meetings, c.Host, c.LeaseTTL, c.Leases = store, "b", ttl, l })
	a.store, b.store = store, store
	return a, b
}

func TestHostedElsewhereRefusesJoin(t *testing.T) {
	a, b := pool(t, time.Minute, nil)
	ctx := context.Background()
	m := a.schedule(MeetingOptions{Access: AccessAnyone})
	alice := a.join(m, internal("alice"))
	held, err := a.focus.Host(ctx, m.ID)
	if err != nil || held.Host != "a" || held.Token == 0 {
		t.Fatalf("Host after the first join through a = %+v, %v", held, err)
	}
	if got, _ := b.focus.Host(ctx, m.ID); got.Host != "a" || got.Token != held.Token {
		t.Fatalf("b sees host %+v, want a's lease %+v", got, held)
	}
	_, err = b.focus.Join(ctx, m.ID, JoinRequest{Identity: internal("bob")})
	holder, ok := HostOf(err)
	if !errors.Is(err, ErrHostedElsewhere) || !ok || holder.Host != "a" || holder.Token != held.Token {
		t.Fatalf("bob joins through b: %v (holder %+v); want ErrHostedElsewhere naming a", err, holder)
	}
	if n := len(b.focus.Participants(m.ID)); n != 0 {
		t.Fatalf("b has %d participants in a's meeting", n)
	}
	if a.focus.Metrics().Hosted != 1 || b.focus.Metrics().Hosted != 0 {
		t.Fatalf("hosted: a %d, b %d; want 1, 0", a.focus.Metrics().Hosted, b.focus.Metrics().Hosted)
	}
	// The meeting ends on a when alice leaves: its lease is released, and
	// b hosts the next live meeting, with a newer token.
	if err := a.focus.Leave(m.ID, alice.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := a.focus.Host(ctx, m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Host after the meeting ended = %+v, %v; want ErrNotFound", got, err)
	}
	b.join(m, internal("bob"))
	if got, err := b.focus.Host(ctx, m.ID); err != nil || got.Host != "b" || got.Token <= held.Token {
		t.Fatalf("Host after bob joined through b = %+v, %v; want b with a token above %d", got, err, held.Token)
	}
}

func TestLeaseLostEndsMeeting(t *testing.T) {
	const ttl = 300 * time.Millisecond
	a, _ := pool(t, ttl, nil)
	ctx := context.Background()
	m := a.schedule(MeetingOptions{Access: AccessAnyone})
	events := make(chan Event, 16)
	alice := a.join(m, internal("alice"))
	stop, err := a.focus.Watch(ctx, m.ID, func(ev Event) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	time.Sleep(2 * ttl) // renewed meanwhile: still hosted
	held, err := a.focus.Host(ctx, m.ID)
	if err != nil || held.Host != "a" {
		t.Fatalf("Host after 2 TTLs = %+v, %v; want a (renewed)", held, err)
	}
	// Another front end takes the meeting over (as after a pause of a's).
	leases := a.store.HostLeases()
	if err := leases.Release(ctx, held); err != nil {
		t.Fatal(err)
	}
	if _, err := leases.Acquire(ctx, m.ID, "b", time.Minute); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * ttl) // a renews every ttl/3
	for {
		select {
		case ev := <-events:
			if ev.Kind != EventEjected || ev.Participant.ID != alice.ID {
				continue
			}
			if n := len(a.focus.Participants(m.ID)); n != 0 {
				t.Fatalf("%d participants left on a", n)
			}
			if h := a.focus.Metrics().Hosted; h != 0 {
				t.Fatalf("a still counts %d hosted", h)
			}
			if got, _ := leases.Holder(ctx, m.ID); got.Host != "b" {
				t.Fatalf("a's end released b's lease: holder %+v", got)
			}
			return
		case <-deadline:
			t.Fatalf("alice still in a's meeting %v after its lease was taken: %+v", 10*ttl, a.focus.Participants(m.ID))
		}
	}
}

// believing is HostLeases whose Renew succeeds without asking the store,
// as a front end paused past its TTL believes on waking that it still
// holds its lease.
type believing struct{ HostLeases }

func (b believing) Renew(_ context.Context, l Lease, ttl time.Duration) (Lease, error) {
	l.Expires = time.Now().Add(ttl)
	return l, nil
}

func TestStaleHostWriteFenced(t *testing.T) {
	const ttl = 90 * time.Millisecond
	a, b := pool(t, ttl, func(l HostLeases) HostLeases { return believing{l} })
	ctx := context.Background()
	m := a.schedule(MeetingOptions{Access: AccessAnyone})
	alice := a.join(m, internal("alice"))
	stale, _ := a.focus.Host(ctx, m.ID)
	deadline := time.Now().Add(5 * time.Second)
	for { // a's lease lapses in the store: b hosts
		if _, err := b.focus.Join(ctx, m.ID, JoinRequest{Identity: internal("bob")}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never took the lapsed meeting over")
		}
		time.Sleep(ttl / 3)
	}
	before, _ := a.store.Get(ctx, m.ID)
	err := a.focus.SetAccess(ctx, m.ID, alice.ID, AccessOrganizer, false)
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("SetAccess through a, whose lease b has since taken (token %d): %v; want ErrFenced", stale.Token, err)
	}
	if after, _ := a.store.Get(ctx, m.ID); after.Revision != before.Revision || after.Access != before.Access {
		t.Fatalf("a fenced write changed the meeting: %+v", after)
	}
}

func TestNoLeasesSingleFrontEnd(t *testing.T) {
	// Without FocusConfig.Leases nothing is leased: two Focuses on one
	// store each host the meeting, as before pools had leases.
	store := NewMemoryMeetings()
	a := newFocusEnv(t, func(c *FocusConfig) { c.Meetings = store })
	b := newFocusEnv(t, func(c *FocusConfig) { c.Meetings = store })
	a.store, b.store = store, store
	m := a.schedule(MeetingOptions{Access: AccessAnyone})
	a.join(m, internal("alice"))
	b.join(m, internal("bob"))
	if _, err := a.focus.Host(context.Background(), m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Host without leases: %v, want ErrNotFound", err)
	}
	if len(store.leases) != 0 || a.focus.Metrics().Hosted != 0 {
		t.Fatalf("leases taken without FocusConfig.Leases: %v", store.leases)
	}
}

// unfenced is a MeetingStore without UpdateFenced.
type unfenced struct{ MeetingStore }

func TestFocusConfigHosting(t *testing.T) {
	store := NewMemoryMeetings()
	tokens, _ := NewTokenIssuer(nil, nil)
	base := FocusConfig{Meetings: store, Directory: testDirectory(t), Tokens: tokens}
	for _, tc := range []struct {
		name  string
		set   func(*FocusConfig)
		field string
	}{
		{"host without leases", func(c *FocusConfig) { c.Host = "a" }, "FocusConfig.Host"},
		{"TTL without leases", func(c *FocusConfig) { c.LeaseTTL = time.Second }, "FocusConfig.LeaseTTL"},
		{"leases without host", func(c *FocusConfig) { c.Leases = store.HostLeases() }, "FocusConfig.Host"},
		{"negative TTL", func(c *FocusConfig) { c.Leases, c.Host, c.LeaseTTL = store.HostLeases(), "a", -time.Second }, "FocusConfig.LeaseTTL"},
		{"unfenced store", func(c *FocusConfig) { c.Leases, c.Host, c.Meetings = store.HostLeases(), "a", unfenced{store} }, "FencedMeetingStore"},
	} {
		cfg := base
		tc.set(&cfg)
		if _, err := NewFocus(cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: NewFocus = %v; want an error naming %s", tc.name, err, tc.field)
		}
	}
}

// TestInviteRedirectedToTheHost: an INVITE to a meeting another front end
// hosts is answered 302 to the meeting at that front end's SIP-TLS
// address, or 503 with Retry-After if the address is unknown; once the
// lease is free, an INVITE to the meeting at this front end's own address
// (where a 302 sends it) joins.
func TestInviteRedirectedToTheHost(t *testing.T) {
	var known atomic.Bool
	known.Store(true)
	var leases *MemoryHostLeases
	e := newSIPEnv(t, func(c *FocusConfig) {
		leases = c.Meetings.(*MemoryMeetings).HostLeases()
		c.Leases, c.Host = leases, "b"
		c.HostAddress = func(_ context.Context, host string) (string, error) {
			if host != "a" || !known.Load() {
				return "", nil
			}
			return "a.example.test:5061", nil
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := e.schedule(MeetingOptions{Access: AccessAnyone})
	held, err := leases.Acquire(ctx, m.ID, "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	bob := e.user("bob")
	res, err := bob.join(ctx, m)
	if err != nil || res.StatusCode != 302 || res.Contact() == nil {
		t.Fatalf("INVITE to a meeting a hosts: %v %v; want 302", res, err)
	}
	if got := res.Contact().Address.String(); got != "sip:"+string(m.ID)+"@a.example.test:5061;transport=tls" {
		t.Fatalf("302 Contact %s", got)
	}
	known.Store(false)
	res, err = bob.join(ctx, m)
	if err != nil || res.StatusCode != 503 {
		t.Fatalf("INVITE with the host's address unknown: %v %v; want 503", res, err)
	}
	if ra := res.GetHeader("Retry-After"); ra == nil || ra.Value() == "" || ra.Value() == "0" {
		t.Fatalf("503 without a Retry-After: %v", res)
	}
	if n := len(e.focus.Participants(m.ID)); n != 0 {
		t.Fatalf("%d participants here in a's meeting", n)
	}
	if err := leases.Release(ctx, held); err != nil {
		t.Fatal(err)
	}
	req := bob.request(sip.INVITE, "sip:"+string(m.ID)+"@"+e.addr+";transport=tls")
	if res, err := bob.do(ctx, req); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE to the meeting at this front end's address: %v %v; want 200", res, err)
	}
	if h, err := leases.Holder(ctx, m.ID); err != nil || h.Host != "b" || h.Token <= held.Token {
		t.Fatalf("holder after the join here: %+v %v", h, err)
	}
}
