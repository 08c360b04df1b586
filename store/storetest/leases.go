package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyuc/parley/conference"
)

// HostLeases tests a conference.HostLeases with the FencedMeetingStore
// its tokens guard; open returns both, empty and sharing their state.
// Lapses are real time: TTLs of a few hundred milliseconds.
func HostLeases(t *testing.T, open func(t *testing.T) (conference.HostLeases, conference.FencedMeetingStore)) {
	const ttl = 400 * time.Millisecond
	liveFailover(t, open)
	t.Run("AcquireHolderRelease", func(t *testing.T) {
		l, _ := open(t)
		a, err := l.Acquire(ctx, "m1", "a.example:1", ttl)
		if err != nil || a.Host != "a.example:1" || a.Meeting != "m1" || a.Token == 0 || time.Until(a.Expires) > ttl {
			t.Fatalf("Acquire = %+v, %v", a, err)
		}
		if h, err := l.Holder(ctx, "m1"); err != nil || h.Host != a.Host || h.Token != a.Token {
			t.Fatalf("Holder = %+v, %v; want %+v", h, err, a)
		}
		_, err = l.Acquire(ctx, "m1", "b.example:1", ttl)
		h, ok := conference.HostOf(err)
		if !errors.Is(err, conference.ErrHostedElsewhere) || !ok || h.Host != a.Host || h.Token != a.Token {
			t.Fatalf("Acquire by another host = %v (holder %+v); want ErrHostedElsewhere naming %s", err, h, a.Host)
		}
		if _, err := l.Holder(ctx, "m2"); !errors.Is(err, conference.ErrNotFound) {
			t.Fatalf("Holder of a meeting nobody hosts: %v, want ErrNotFound", err)
		}
		if err := l.Release(ctx, a); err != nil {
			t.Fatal(err)
		}
		if h, err := l.Holder(ctx, "m1"); !errors.Is(err, conference.ErrNotFound) {
			t.Fatalf("Holder after Release = %+v, %v; want ErrNotFound", h, err)
		}
		b, err := l.Acquire(ctx, "m1", "b.example:1", ttl)
		if err != nil || b.Token <= a.Token {
			t.Fatalf("Acquire after Release = %+v, %v; want a token above %d", b, err, a.Token)
		}
		if _, err := l.Renew(ctx, a, ttl); !errors.Is(err, conference.ErrLeaseLost) {
			t.Fatalf("Renew of a released lease: %v, want ErrLeaseLost", err)
		}
	})
	t.Run("TokensStrictlyIncrease", func(t *testing.T) {
		l, _ := open(t)
		var last uint64
		for i := range 6 {
			host := fmt.Sprintf("h%d.example:1", i%2)
			got, err := l.Acquire(ctx, "m1", host, ttl)
			if err != nil {
				t.Fatal(err)
			}
			if got.Token <= last {
				t.Fatalf("grant %d: token %d after %d", i, got.Token, last)
			}
			last = got.Token
			if i%3 == 0 {
				again, err := l.Acquire(ctx, "m1", host, ttl) // the same host again: a new grant
				if err != nil || again.Token <= last {
					t.Fatalf("re-Acquire by the holder = %+v, %v; want a token above %d", again, err, last)
				}
				last = again.Token
				got = again
			}
			if err := l.Release(ctx, got); err != nil {
				t.Fatal(err)
			}
		}
		other, err := l.Acquire(ctx, "m2", "h0.example:1", ttl)
		if err != nil || other.Token == 0 {
			t.Fatalf("another meeting's lease = %+v, %v", other, err)
		}
	})
	t.Run("ConcurrentAcquirersOneWins", func(t *testing.T) {
		l, _ := open(t)
		const n = 16
		var wg sync.WaitGroup
		leases := make([]conference.Lease, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { leases[i], errs[i] = l.Acquire(ctx, "m1", fmt.Sprintf("h%d.example:1", i), 5*time.Second) })
		}
		wg.Wait()
		var winner *conference.Lease
		for i, err := range errs {
			if err == nil {
				if winner != nil {
					t.Fatalf("two front ends hold the lease: %+v and %+v", *winner, leases[i])
				}
				winner = &leases[i]
			}
		}
		if winner == nil {
			t.Fatalf("nobody won: %v", errs)
		}
		for i, err := range errs {
			if err == nil {
				continue
			}
			if h, ok := conference.HostOf(err); !ok || h.Host != winner.Host || h.Token != winner.Token {
				t.Errorf("loser %d: %v; want ErrHostedElsewhere naming %+v", i, err, *winner)
			}
		}
	})
	t.Run("RenewKeepsIt", func(t *testing.T) {
		l, _ := open(t)
		a, err := l.Acquire(ctx, "m1", "a.example:1", ttl)
		if err != nil {
			t.Fatal(err)
		}
		for range 4 { // 4 × ttl/2: twice the TTL, held throughout
			time.Sleep(ttl / 2)
			r, err := l.Renew(ctx, a, ttl)
			if err != nil || r.Token != a.Token || !r.Expires.After(a.Expires) {
				t.Fatalf("Renew = %+v, %v", r, err)
			}
			a = r
		}
		if _, err := l.Acquire(ctx, "m1", "b.example:1", ttl); !errors.Is(err, conference.ErrHostedElsewhere) {
			t.Fatalf("Acquire of a renewed lease by another: %v", err)
		}
	})
	t.Run("RenewAfterLapseAndTakeoverFails", func(t *testing.T) {
		l, ms := open(t)
		if err := ms.Create(ctx, meeting("m1", "111", "sip:alice@example.test", time.Now())); err != nil {
			t.Fatal(err)
		}
		a, err := l.Acquire(ctx, "m1", "a.example:1", 150*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ms.UpdateFenced(ctx, "m1", a.Token, func(m *conference.Meeting) error { m.Subject = "by A"; return nil }); err != nil {
			t.Fatalf("UpdateFenced by the holder: %v", err)
		}
		time.Sleep(400 * time.Millisecond) // A pauses past its TTL
		b, err := l.Acquire(ctx, "m1", "b.example:1", ttl)
		if err != nil || b.Token <= a.Token {
			t.Fatalf("Acquire after the lapse = %+v, %v", b, err)
		}
		if r, err := l.Renew(ctx, a, ttl); !errors.Is(err, conference.ErrLeaseLost) {
			t.Fatalf("A's Renew after B took over = %+v, %v; want ErrLeaseLost", r, err)
		}
		if err := l.Release(ctx, a); err != nil {
			t.Fatal(err)
		}
		if h, err := l.Holder(ctx, "m1"); err != nil || h.Host != b.Host || h.Token != b.Token {
			t.Fatalf("Holder after A's stale Release = %+v, %v; want B's", h, err)
		}
		before, _ := ms.Get(ctx, "m1")
		_, err = ms.UpdateFenced(ctx, "m1", a.Token, func(m *conference.Meeting) error { m.Subject = "stale A"; return nil })
		if !errors.Is(err, conference.ErrFenced) {
			t.Fatalf("UpdateFenced with A's stale token: %v, want ErrFenced", err)
		}
		if after, _ := ms.Get(ctx, "m1"); !same(after, before) {
			t.Fatalf("a fenced update changed the meeting: %+v", after)
		}
		got, err := ms.UpdateFenced(ctx, "m1", b.Token, func(m *conference.Meeting) error { m.Subject = "by B"; return nil })
		if err != nil || got.Subject != "by B" || got.Revision != before.Revision+1 {
			t.Fatalf("UpdateFenced by B = %+v, %v", got, err)
		}
	})
	t.Run("LapsedLeaseFencesNothingNewer", func(t *testing.T) {
		// A lease that lapsed with nobody taking over still writes: no
		// newer host exists.
		l, ms := open(t)
		if err := ms.Create(ctx, meeting("m1", "111", "sip:alice@example.test", time.Now())); err != nil {
			t.Fatal(err)
		}
		a, err := l.Acquire(ctx, "m1", "a.example:1", 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
		if _, err := l.Renew(ctx, a, ttl); !errors.Is(err, conference.ErrLeaseLost) {
			t.Fatalf("Renew after the lapse: %v, want ErrLeaseLost", err)
		}
		if _, err := ms.UpdateFenced(ctx, "m1", a.Token, func(m *conference.Meeting) error { return nil }); err != nil {
			t.Fatalf("UpdateFenced with the newest token: %v", err)
		}
		if _, err := ms.UpdateFenced(ctx, "nope", a.Token, func(m *conference.Meeting) error { return nil }); !errors.Is(err, conference.ErrNotFound) {
			t.Fatalf("UpdateFenced of a missing meeting: %v", err)
		}
	})
}
