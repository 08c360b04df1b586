package storetest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
)

// crashable is HostLeases of a front end that dies outright: once dead,
// its renewals and releases never reach the store, so its leases lapse.
// Once paused, its renewals do not reach the store either, but it
// believes them done, as a front end paused past its TTL believes on
// waking that it still hosts.
type crashable struct {
	conference.HostLeases
	dead, paused atomic.Bool
}

var errDead = errors.New("storetest: the front end died")

func (c *crashable) Renew(ctx context.Context, l conference.Lease, ttl time.Duration) (conference.Lease, error) {
	switch {
	case c.dead.Load():
		return conference.Lease{}, errDead
	case c.paused.Load():
		l.Expires = time.Now().Add(ttl)
		return l, nil
	}
	return c.HostLeases.Renew(ctx, l, ttl)
}

func (c *crashable) Release(ctx context.Context, l conference.Lease) error {
	if c.dead.Load() {
		return errDead
	}
	return c.HostLeases.Release(ctx, l)
}

// failoverDirectory has tenant example.test: alice (licensed organizer)
// and bob of Example Corp, vic of another company.
func failoverDirectory(t *testing.T) auth.Directory {
	dir := auth.NewMemoryDirectory()
	if err := dir.PutTenant(auth.Tenant{Domain: "example.test", Name: "Example"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []auth.User{
		{URI: "sip:alice@example.test", Enabled: true, MeetingLicense: true, Company: "Example Corp"},
		{URI: "sip:bob@example.test", Enabled: true, Company: "Example Corp"},
		{URI: "sip:vic@example.test", Enabled: true, Company: "Vendor Ltd"},
	} {
		u.Tenant = "example.test"
		if err := dir.PutUser(u); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func user(name string) conference.JoinRequest {
	return conference.JoinRequest{Identity: &auth.Identity{URI: "sip:" + name + "@example.test", Tenant: "example.test",
		Kind: auth.Internal, Method: auth.MethodDigest}}
}

// frontEnd returns a Focus hosting meetings of ms as host through l.
func frontEnd(t *testing.T, ms conference.FencedMeetingStore, l conference.HostLeases, host string, ttl time.Duration) *conference.Focus {
	tokens, err := conference.NewTokenIssuer(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := conference.NewFocus(conference.FocusConfig{Meetings: ms, Directory: failoverDirectory(t), Tokens: tokens,
		Leases: l, Host: host, LeaseTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// liveFailover tests, through two Focuses on the store, that the live
// state a host keeps (conference.LiveState) survives its death and that a
// stale host cannot write it.
func liveFailover(t *testing.T, open func(t *testing.T) (conference.HostLeases, conference.FencedMeetingStore)) {
	const ttl = 300 * time.Millisecond
	const id = "aaaaaaaaaaaaaaaaaaaaaaaaaa" // the form of a meeting ID
	setup := func(t *testing.T) (a, b *conference.Focus, dying *crashable, ms conference.FencedMeetingStore, alice *conference.Participant) {
		l, ms := open(t)
		m := meeting(id, "123", "sip:alice@example.test", time.Now())
		m.OrganizerCompany, m.Access, m.Presenter, m.Presenters = "Example Corp", conference.AccessOrganizer, conference.PresentersOrganizer, nil
		if err := ms.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
		dying = &crashable{HostLeases: l}
		a, b = frontEnd(t, ms, dying, "a.example:1", ttl), frontEnd(t, ms, l, "b.example:1", ttl)
		alice, err := a.Join(ctx, id, user("alice"))
		if err != nil {
			t.Fatal(err)
		}
		return a, b, dying, ms, alice
	}
	enter := func(t *testing.T, f *conference.Focus, by *conference.Participant, name string) *conference.Participant {
		p, err := f.Join(ctx, id, user(name))
		if err != nil || p.State != conference.InLobby {
			t.Fatalf("%s joins: %+v, %v; want the lobby", name, p, err)
		}
		if err := f.Lobby().Admit(ctx, id, by.ID, p.ID); err != nil {
			t.Fatalf("admitting %s: %v", name, err)
		}
		return p
	}
	takeOver := func(t *testing.T, f *conference.Focus, name string) *conference.Participant {
		deadline := time.Now().Add(5 * time.Second)
		for {
			p, err := f.Join(ctx, id, user(name))
			if err == nil {
				return p
			}
			if !errors.Is(err, conference.ErrHostedElsewhere) || time.Now().After(deadline) {
				t.Fatalf("%s joins through the next host: %v", name, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Run("FailoverRebuildsLiveState", func(t *testing.T) {
		a, b, dying, _, alice := setup(t)
		enter(t, a, alice, "bob")
		vic := enter(t, a, alice, "vic")
		if err := a.Promote(ctx, id, alice.ID, vic.ID); err != nil {
			t.Fatal(err)
		}
		dying.dead.Store(true)
		if p := takeOver(t, b, "alice"); p.Role != conference.Organizer {
			t.Fatalf("alice through the next host: %v", p.Role)
		}
		bob, err := b.Join(ctx, id, user("bob"))
		if err != nil || bob.State != conference.Joined {
			t.Fatalf("bob, admitted before the failover, rejoins: %+v, %v; want joined, not the lobby", bob, err)
		}
		vic, err = b.Join(ctx, id, user("vic"))
		if err != nil || vic.State != conference.Joined || vic.Role != conference.Presenter {
			t.Fatalf("vic, promoted before the failover, rejoins: %+v, %v; want a joined presenter", vic, err)
		}
	})
	t.Run("StaleHostLiveWriteFenced", func(t *testing.T) {
		a, b, dying, ms, alice := setup(t)
		bob, err := a.Join(ctx, id, user("bob"))
		if err != nil {
			t.Fatal(err)
		}
		// a is paused: its lease lapses and b takes the meeting; a, which
		// believes it still hosts, admits bob.
		dying.paused.Store(true)
		takeOver(t, b, "alice")
		before, err := ms.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Lobby().Admit(ctx, id, alice.ID, bob.ID); !errors.Is(err, conference.ErrFenced) {
			t.Fatalf("admission through the stale host: %v; want ErrFenced", err)
		}
		if err := a.Lock(ctx, id, alice.ID, true); !errors.Is(err, conference.ErrFenced) {
			t.Fatalf("lock through the stale host: %v; want ErrFenced", err)
		}
		after, _ := ms.Get(ctx, id)
		if after.Revision != before.Revision || after.Live != nil {
			t.Fatalf("the stale host changed the live state: %+v", after.Live)
		}
	})
}
