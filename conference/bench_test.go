package conference

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// BenchmarkJoin measures joins per second: an internal user joining a
// meeting directly (directory lookup, policy, roster change) and leaving.
func BenchmarkJoin(b *testing.B) {
	e := newFocusEnv(b)
	m := e.schedule(MeetingOptions{Access: AccessOrganization})
	e.join(m, internal("alice")) // keeps the meeting live
	ctx := context.Background()
	id := internal("bob")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := e.focus.Join(ctx, m.ID, JoinRequest{Identity: id})
		if err != nil {
			b.Fatal(err)
		}
		_ = e.focus.Leave(m.ID, p.ID)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
}

// BenchmarkLobbyJoinAdmit measures an anonymous user entering the lobby
// and being admitted by a leader.
func BenchmarkLobbyJoinAdmit(b *testing.B) {
	e := newFocusEnv(b)
	m := e.schedule(MeetingOptions{Access: AccessCompany})
	org := e.join(m, internal("alice"))
	ctx := context.Background()
	id := anonymous(m.ID, "Guest")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := e.focus.Join(ctx, m.ID, JoinRequest{Identity: id})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.focus.Lobby().Admit(context.Background(), m.ID, org.ID, p.ID); err != nil {
			b.Fatal(err)
		}
		_ = e.focus.Leave(m.ID, p.ID)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
}

// BenchmarkRosterFanout measures one roster change (a participant is
// promoted) delivered to every subscriber of a meeting: the
// conference-info document each may see, rendered and handed to its
// subscriber. The roster and the subscribers are the same 1,000
// participants (half leaders). SIP transport of the NOTIFYs is not
// included.
func BenchmarkRosterFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			e := newFocusEnv(b, func(c *FocusConfig) { c.MaxParticipants = n + 1 })
			m := e.schedule(MeetingOptions{Access: AccessAnyone, Presenter: PresentersOrganizer})
			org := e.join(m, internal("alice"))
			var wg sync.WaitGroup
			var bytes int64
			var mu sync.Mutex
			var target *Participant
			var counting atomic.Bool
			for i := range n {
				p := e.join(m, anonymous(m.ID, fmt.Sprintf("guest %d", i)))
				if i%2 == 0 {
					_ = e.focus.Promote(context.Background(), m.ID, org.ID, p.ID)
				} else {
					target = p
				}
				_, err := e.focus.Subscribe(m.ID, p.ID, func(u Update) {
					if counting.Load() && u.Doc != nil {
						mu.Lock()
						bytes += int64(len(u.Doc))
						mu.Unlock()
						wg.Done()
					}
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			// Let the first documents go out.
			waitSettled(e.focus)
			counting.Store(true)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				wg.Add(n)
				var err error
				if i%2 == 0 {
					err = e.focus.Promote(context.Background(), m.ID, org.ID, target.ID)
				} else {
					err = e.focus.Demote(context.Background(), m.ID, org.ID, target.ID)
				}
				if err != nil {
					b.Fatal(err)
				}
				wg.Wait()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "notifications/s")
			b.ReportMetric(float64(bytes)/float64(b.N*n), "bytes/notification")
		})
	}
}

// waitSettled waits until no subscriber has a delivery running.
func waitSettled(f *Focus) {
	for {
		busy := false
		f.mu.Lock()
		for _, c := range f.confs {
			c.mu.Lock()
			for s := range c.subs {
				busy = busy || s.running
			}
			c.mu.Unlock()
		}
		f.mu.Unlock()
		if !busy {
			return
		}
	}
}

// BenchmarkJoinOverSIP measures whole joins over SIP/TLS on loopback:
// INVITE to the focus, 200, ACK, then BYE, from 8 devices at once, each on
// its own signed-in TLS connection. Server and clients share the 2 cores.
func BenchmarkJoinOverSIP(b *testing.B) {
	e := newSIPEnv(b)
	m := e.schedule(MeetingOptions{Access: AccessOrganization})
	const devices = 8
	members := make(chan *member, devices)
	for range devices {
		u := e.user("alice")
		u.mustJoin(m) // signs the connection in
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if res, err := u.do(ctx, u.inDialog(sip.BYE)); err != nil || res.StatusCode != 200 {
			b.Fatal(res, err)
		}
		cancel()
		members <- u
	}
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range devices {
		wg.Go(func() {
			u := <-members
			for next.Add(1) <= int64(b.N) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				res, err := u.join(ctx, m)
				if err != nil || res.StatusCode != 200 {
					b.Error(res, err)
				} else if res, err := u.do(ctx, u.inDialog(sip.BYE)); err != nil || res.StatusCode != 200 {
					b.Error(res, err)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
}
