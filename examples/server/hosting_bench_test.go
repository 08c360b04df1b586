package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// cpuTicks is the CPU time (user and system, in clock ticks of 10 ms)
// process pid has used, from /proc/<pid>/stat.
func cpuTicks(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's parenthesis: state is the 3rd field
	// of the line, utime and stime the 14th and 15th.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// BenchmarkMeetingJoin measures joins of a live meeting in a pool of two
// front ends, each its own process, on one redis-server: alice's join
// through A keeps the meeting live there; bob then joins and leaves it
// b.N times (INVITE, 200, ACK, BYE), through A itself ("host") or through
// B, which passes every request of the join on to A ("forwarded"). Sequential
// joins give the latency of the INVITE's answer (median, p99); "parallel"
// runs 8 of bob's connections through B at once, for the joins per second
// and the requests B passes on per second (INVITE, ACK and BYE: 3 a join).
// cpu-us/join is both processes' CPU per join, from /proc.
//
//	go test -run '^$' -bench BenchmarkMeetingJoin -benchtime 300x ./examples/server
func BenchmarkMeetingJoin(b *testing.B) {
	limits := b.TempDir() + "/limits.json" // every join from one address: no throttling
	if err := os.WriteFile(limits, []byte(`{"limits": {"throttle": {"per_address": {"rate": 100000, "burst": 100000},
		"per_subnet": {"rate": 100000, "burst": 100000}}}}`), 0o600); err != nil {
		b.Fatal(err)
	}
	_, pool, _ := startPool(b, 2, "-config", limits)
	a, fe := pool[0], pool[1]
	m := a.schedule(b, "alice", `{"access":"organization"}`)
	contact := sip.NewHeader("Contact", "<sip:dev@127.0.0.1;transport=tls>")
	host := a.sipUser(b, "alice", a.passwords["sip:alice@example.test"], "localhost")
	if res, err := host.do(host.request(sip.INVITE, m.Focus, contact)); err != nil || res.StatusCode != 200 {
		b.Fatalf("alice joins through A: %v %v", res, err)
	}
	// join is one of bob's joins through s, on connection u: the time to
	// the INVITE's 200.
	join := func(u *sipUser) time.Duration {
		req := u.request(sip.INVITE, m.Focus, contact)
		start := time.Now()
		res, err := u.do(req)
		took := time.Since(start)
		if err != nil || res.StatusCode != 200 {
			b.Fatalf("bob's join: %v %v", res, err)
		}
		if err := u.client.WriteRequest(inMeetingDialog(u, req, res, sip.ACK)); err != nil {
			b.Fatal(err)
		}
		if res, err := u.do(inMeetingDialog(u, req, res, sip.BYE)); err != nil || res.StatusCode != 200 {
			b.Fatalf("bob's BYE: %v %v", res, err)
		}
		return took
	}
	cpu := func() int64 { return cpuTicks(b, a.pid) + cpuTicks(b, fe.pid) }
	for _, c := range []struct {
		name string
		via  *server
	}{{"host", a}, {"forwarded", fe}} {
		b.Run(c.name, func(b *testing.B) {
			u := c.via.sipUser(b, "bob", a.passwords["sip:bob@example.test"], "localhost")
			join(u) // signs the connection in
			took := make([]time.Duration, 0, b.N)
			ticks := cpu()
			b.ResetTimer()
			for range b.N {
				took = append(took, join(u))
			}
			b.StopTimer()
			slices.Sort(took)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(took[len(took)/2]), "median-ms")
			b.ReportMetric(ms(took[min(len(took)-1, len(took)*99/100)]), "p99-ms")
			b.ReportMetric(float64(cpu()-ticks)*1e4/float64(b.N), "cpu-us/join")
		})
	}
	b.Run("parallel", func(b *testing.B) {
		const conns = 8
		users := make([]*sipUser, conns)
		for i := range users {
			users[i] = fe.sipUser(b, "bob", a.passwords["sip:bob@example.test"], "localhost")
			join(users[i])
		}
		ticks := cpu()
		start := time.Now()
		b.ResetTimer()
		var wg sync.WaitGroup
		for i, u := range users {
			n := b.N / conns
			if i < b.N%conns {
				n++
			}
			wg.Go(func() {
				for range n {
					join(u)
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		secs := time.Since(start).Seconds()
		b.ReportMetric(float64(b.N)/secs, "joins/s")
		b.ReportMetric(3*float64(b.N)/secs, "forwarded/s")
		b.ReportMetric(float64(cpu()-ticks)*1e4/float64(b.N), "cpu-us/join")
	})
}
