// Command relayload is an open-loop load generator for TURN relays (RFC
// 8656) over UDP. It makes -allocations allocations on -server, binds a
// channel on each to a UDP echo peer it runs itself, and sends -size-byte
// datagrams on each channel at -rate per second for -duration, on a
// schedule fixed from the start whatever comes back (a slow relay is seen
// as loss and latency, not as a slower generator). The peers echo every
// datagram back through the relay.
//
// It reports datagrams sent, datagrams the peers received (relayed
// client to peer), echoes received (relayed peer to client: round trips),
// loss, round-trip time percentiles (from each datagram's send), how far
// the senders fell behind their schedule, and the generator's own CPU,
// then a line starting "RESULT" with the same figures as key=value
// pairs for scripts (bench/relay.sh).
//
// Credentials are a fixed user (-user, -password) or, with -secret,
// TURN REST API ones made from a shared secret (coturn's
// --use-auth-secret).
//
// The echo peers run in the generator's process: the load each side puts
// on the machine is the generator's either way, and the relay cannot
// tell; their datagrams count in the generator's CPU figure.
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// Bounds of the flags: the generator is for one machine's loopback.
const (
	maxAllocations = 64
	maxTotalRate   = 1_000_000
	maxDuration    = 2 * time.Minute
	maxSize        = 1400
	maxRTTSamples  = 4 << 20 // per run, spread over the flows
)

type config struct {
	server, realm, user, password, secret, peerHost string
	allocations                                     int
	rate                                            float64
	size                                            int
	duration, tick, drain                           time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.server, "server", "127.0.0.1:3478", "the relay's UDP `address`")
	flag.StringVar(&c.realm, "realm", "", "the `realm` the relay must announce (empty: whatever it announces)")
	flag.StringVar(&c.user, "user", "load", "the user `name`")
	flag.StringVar(&c.password, "password", "", "the user's `password` (long-term credential)")
	flag.StringVar(&c.secret, "secret", "", "a shared `secret` to make TURN REST API credentials with, instead of -password")
	flag.StringVar(&c.peerHost, "peer-host", "127.0.0.1", "the `address` the echo peers listen on")
	flag.IntVar(&c.allocations, "allocations", 4, "how many allocations (each with its own peer)")
	flag.Float64Var(&c.rate, "rate", 1000, "datagrams per `second` per allocation")
	flag.IntVar(&c.size, "size", 160, "datagram payload `bytes`")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "how long to send")
	flag.DurationVar(&c.tick, "tick", time.Millisecond, "the senders' shortest sleep: what is due is sent in bursts this far apart")
	flag.DurationVar(&c.drain, "drain", time.Second, "how long to wait for late echoes after the last send")
	flag.Parse()
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "relayload:", err)
		os.Exit(2)
	}
	s, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relayload:", err)
		os.Exit(1)
	}
	s.print()
}

// validate returns an error naming the first flag out of bounds.
func (c *config) validate() error {
	switch {
	case c.allocations < 1 || c.allocations > maxAllocations:
		return fmt.Errorf("-allocations %d: must be 1 to %d", c.allocations, maxAllocations)
	case !(c.rate > 0) || c.rate*float64(c.allocations) > maxTotalRate:
		return fmt.Errorf("-rate %g: must be positive, and -rate × -allocations at most %d", c.rate, maxTotalRate)
	case c.size < minPayload || c.size > maxSize:
		return fmt.Errorf("-size %d: must be %d to %d", c.size, minPayload, maxSize)
	case c.duration <= 0 || c.duration > maxDuration:
		return fmt.Errorf("-duration %v: must be positive, at most %v", c.duration, maxDuration)
	case c.tick <= 0 || c.tick > time.Second:
		return fmt.Errorf("-tick %v: must be positive, at most 1s", c.tick)
	case c.drain < 0 || c.drain > time.Minute:
		return fmt.Errorf("-drain %v: must be 0 to 1m", c.drain)
	case c.password == "" && c.secret == "":
		return errors.New("-password or -secret is required")
	case c.password != "" && c.secret != "":
		return errors.New("-password and -secret exclude each other")
	}
	return nil
}

// summary is what a run measured.
type summary struct {
	c                            config
	realm                        string // the relay's
	sent, toPeers, echoes, stray int64
	late, sendEnd, cpu           time.Duration
	rtts                         []time.Duration // sorted
}

// run makes the allocations, runs the load and releases them.
func run(c config) (*summary, error) {
	cred := credential{username: c.user, password: c.password}
	if c.secret != "" {
		cred = restCredential(c.secret, c.user, time.Hour)
	}
	total := int64(c.rate * c.duration.Seconds())
	flows := make([]*flow, c.allocations)
	defer func() {
		for _, f := range flows {
			if f != nil {
				_ = f.peer.conn.Close()
			}
		}
	}()
	for i := range flows {
		peer, err := newEchoPeer(c.peerHost)
		if err != nil {
			return nil, err
		}
		go peer.run()
		a, err := allocate(c.server, cred, peer.addr(), firstChannel)
		if err != nil {
			_ = peer.conn.Close()
			return nil, fmt.Errorf("allocation %d: %w", i, err)
		}
		if c.realm != "" && a.realm.String() != c.realm {
			_ = a.release()
			_ = peer.conn.Close()
			return nil, fmt.Errorf("the relay's realm is %q, not %q", a.realm, c.realm)
		}
		_ = a.conn.SetReadBuffer(socketBuffer)
		_ = a.conn.SetWriteBuffer(socketBuffer)
		flows[i] = &flow{index: i, a: a, peer: peer, rtts: make([]time.Duration, 0, min(total, maxRTTSamples/int64(c.allocations)))}
	}
	cpuBefore := selfCPU()
	start := time.Now()
	var senders, receivers sync.WaitGroup
	errs := make(chan error, len(flows))
	for _, f := range flows {
		receivers.Go(func() { f.receive(start, total) })
		senders.Go(func() {
			if err := f.send(start, c.rate, total, c.size, c.tick); err != nil {
				errs <- err
			}
		})
	}
	senders.Wait()
	sendEnd := time.Since(start)
	for _, f := range flows {
		_ = f.a.conn.SetReadDeadline(time.Now().Add(c.drain))
	}
	receivers.Wait()
	cpu := selfCPU() - cpuBefore
	close(errs)
	for err := range errs {
		return nil, err
	}
	for _, f := range flows {
		_ = f.a.conn.SetReadDeadline(time.Time{})
		if err := f.a.release(); err != nil {
			fmt.Fprintf(os.Stderr, "relayload: releasing allocation %d: %v\n", f.index, err)
		}
	}
	s := summarize(c, flows, sendEnd, cpu)
	s.realm = flows[0].a.realm.String()
	return s, nil
}

// summarize adds up the flows' figures.
func summarize(c config, flows []*flow, sendEnd, cpu time.Duration) *summary {
	s := &summary{c: c, sendEnd: sendEnd, cpu: cpu}
	for _, f := range flows {
		s.sent += f.sent
		s.toPeers += f.peer.received.Load()
		s.echoes += f.received.Load()
		s.stray += f.stray.Load()
		s.late = max(s.late, f.lateMax)
		s.rtts = append(s.rtts, f.rtts...)
	}
	slices.SortFunc(s.rtts, cmp.Compare)
	return s
}

// percentile is the round trip time below which a fraction p of the
// echoes came back.
func (s *summary) percentile(p float64) time.Duration {
	if len(s.rtts) == 0 {
		return 0
	}
	return s.rtts[min(len(s.rtts)-1, int(p*float64(len(s.rtts))))]
}

// loss is the percentage of datagrams sent whose echo did not come back.
func (s *summary) loss() float64 {
	if s.sent == 0 {
		return 0
	}
	return 100 * float64(s.sent-s.echoes) / float64(s.sent)
}

// print writes the figures, then the RESULT line.
func (s *summary) print() {
	secs := s.c.duration.Seconds()
	pct := s.percentile
	fmt.Printf("%d allocations on %s (realm %q), each with a channel to its echo peer; %g datagrams/s each of %d bytes for %v\n",
		s.c.allocations, s.c.server, s.realm, s.c.rate, s.c.size, s.c.duration)
	fmt.Printf("sent %d datagrams in %v (%.0f/s offered, senders at worst %v behind schedule)\n",
		s.sent, s.sendEnd.Round(time.Millisecond), float64(s.sent)/secs, s.late.Round(time.Microsecond))
	fmt.Printf("relayed to the peers %d, echoes back %d: %.0f round trips/s, %.2f %% lost\n",
		s.toPeers, s.echoes, float64(s.echoes)/secs, s.loss())
	fmt.Printf("round trip p50 %v, p90 %v, p99 %v, max %v\n", pct(0.5), pct(0.9), pct(0.99), pct(1))
	fmt.Printf("generator CPU %v (%.1f µs per datagram relayed)\n", s.cpu.Round(time.Millisecond), perPacket(s.cpu, s.toPeers+s.echoes))
	if s.stray > 0 {
		fmt.Printf("stray datagrams: %d\n", s.stray)
	}
	fmt.Printf("RESULT sent=%d to_peers=%d echoes=%d rtps=%.0f loss_pct=%.2f p50_us=%d p99_us=%d late_ms=%.1f gen_cpu_ms=%d stray=%d\n",
		s.sent, s.toPeers, s.echoes, float64(s.echoes)/secs, s.loss(), pct(0.5).Microseconds(), pct(0.99).Microseconds(),
		float64(s.late)/float64(time.Millisecond), s.cpu.Milliseconds(), s.stray)
}

func perPacket(cpu time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(n)
}
