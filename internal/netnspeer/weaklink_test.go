//go:build linux

package netnspeer

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parleyuc/parley/bench/mediasynth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/internal/netnspeer/synth"
	"github.com/parleyuc/parley/internal/netnstest"
	"github.com/parleyuc/parley/media"
)

// envDuration is the duration in the environment variable name, or def.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q is not a positive duration", name, v)
	}
	return d
}

// Issue 28's network: a publisher (alice: three-layer VP8 simulcast of
// about 150, 300 and 550 kbit/s with camera-sized keyframes, and Opus)
// and three subscribers, each a process in a network namespace of its
// own, joined to the bridge by a veth pair; bob and carol unconstrained,
// dave behind a link of 300 kbit/s each way that loses 3 % of the UDP
// datagrams each way. After a warm-up (PARLEY_NETNS_WARMUP, 8 s) and
// over a window (PARLEY_NETNS_WINDOW, 10 s): dave decodes alice's low
// layer at 10 frames a second or more with no freeze over 2 s, bob and
// carol decode the high layer at 25 frames a second or more (of the 30
// alice sends: of fewer if she sent fewer), and everyone's audio arrives
// with no gap over 300 ms and no more than 300 ms of it lost in a row. A
// gap a process's stall made, seen by its stall meter, is allowed for:
// the machine was busy, not the link. bench/weaklink.sh runs it with a
// longer window and prints the figures.
//
// It measures frame rates and freezes, so it runs only with
// PARLEY_WEAK_LINK=1 (as root): .ci/run runs it alone after the suite.
// Before the bridge probed a switch up (media/probe.go), one run in two
// failed: dave's estimate, rising while he was sent the low layer alone,
// passed the middle layer's need, and the try cost him a freeze of 2 to
// 3 s.
func TestWeakSubscriberInNetns(t *testing.T) {
	if os.Getenv("PARLEY_WEAK_LINK") == "" {
		t.Skip("measures frame rates: run it alone with PARLEY_WEAK_LINK=1 (as root, with iproute2 and nftables), as .ci/run does")
	}
	stalls := synth.NewStallMeter()
	defer stalls.Close()
	sw := netnstest.NewSwitch(t)
	wide := netnstest.Link{}
	weak := netnstest.Shape{Rate: "300kbit", Loss: 3}
	warmup := envDuration(t, "PARLEY_NETNS_WARMUP", 8*time.Second)
	window := envDuration(t, "PARLEY_NETNS_WINDOW", 10*time.Second)
	// The bridge: in this process, or bench/bridgeserver in its own
	// (PARLEY_BRIDGESERVER, the binary), as LiveKit is.
	var m *meeting
	if bin := os.Getenv("PARLEY_BRIDGESERVER"); bin != "" {
		m = newRemoteMeeting(t, bin, sw.IP)
	} else {
		m = newMeeting(t, sw.IP)
	}
	server := mediasynth.Proc(m.pid)
	idle := rss(t, server)

	alice := m.join(sw.Add(t, wide), "alice", Config{Role: RolePublisher, LayerBytes: [Layers]int{270, 600, 1100},
		KeyframeBytes: [Layers]int{20 * 2 * 270, 20 * 2 * 600, 20 * 2 * 1100}, AudioBytes: 60})
	time.Sleep(time.Second)
	withPublisher := rss(t, server)
	subs := []*peer{
		m.join(sw.Add(t, wide), "bob", Config{Role: RoleSubscriber}),
		m.join(sw.Add(t, wide), "carol", Config{Role: RoleSubscriber}),
		m.join(sw.Add(t, netnstest.Link{Down: weak, Up: weak}), "dave", Config{Role: RoleSubscriber}),
	}
	dave := subs[2]

	time.Sleep(warmup)
	cpu0 := cpuOf(t, server)
	samples := make([]sampled, len(subs))
	var peak int64
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for i, p := range subs {
			if p.sess != nil { // the bridge is in this process
				samples[i].add(p, alice.id)
			}
		}
		peak = max(peak, rss(t, server))
	}
	cpu := cpuOf(t, server) - cpu0
	// On a busy machine a process may stall: a gap every subscriber
	// sees that no link made. Each check allows the longest stall of
	// the publisher, the bridge (this process) and the subscriber.
	sent := alice.report(t, window)
	bridgeStall := stalls.Longest(time.Now().Add(-window))
	t.Logf("figures: alice sent %.1f frames/s of each layer, %d audio packets; stalls: alice %d ms, bridge %v",
		sent.FPS, sent.AudioPackets, sent.LongestStallMS, bridgeStall.Round(time.Millisecond))
	// The frame rates asked for are of the 30 a second alice sends; if
	// she sent fewer (her process starved), of those she sent.
	rate := func(fps float64) float64 { return fps * min(sent.FPS, 30) / 30 }
	forwarded := 0
	for i, p := range subs {
		r := p.report(t, window)
		forwarded += r.VideoPackets + r.AudioPackets
		stall := int(max(bridgeStall/time.Millisecond, time.Duration(max(sent.LongestStallMS, r.LongestStallMS))))
		t.Logf("figures: %-5s %s; %s", p.name, &r, &samples[i])
		if len(r.FreezesAt) > 0 {
			t.Logf("figures: %-5s freezes (ms into the window, length): %v", p.name, r.FreezesAt)
		}
		secs := window.Seconds()
		if p == dave {
			if low := float64(r.FramesByLayer[RIDs[0]]) / secs; low < rate(10) {
				t.Errorf("%s, behind the weak link, decoded %.1f frames a second of the low layer, want at least %.1f", p.name, low, rate(10))
			}
			if r.LongestFreezeMS > 2000+stall {
				t.Errorf("%s, behind the weak link, decoded no frame for %d ms, want at most 2 s (and %d ms the processes stalled)", p.name, r.LongestFreezeMS, stall)
			}
		} else if high := float64(r.FramesByLayer[RIDs[2]]) / secs; high < rate(25) {
			t.Errorf("%s decoded %.1f frames a second of the high layer, want at least %.1f", p.name, high, rate(25))
		}
		if r.LongestAudioGapMS > 300+stall {
			t.Errorf("%s received no audio for %d ms, want at most 300 (and %d ms the processes stalled)", p.name, r.LongestAudioGapMS, stall)
		}
		if r.LongestAudioLossMS > 300 {
			t.Errorf("%s lost %d ms of audio in a row, want at most 300", p.name, r.LongestAudioLossMS)
		}
		if want := sent.AudioPackets * 9 / 10; r.AudioPackets < want {
			t.Errorf("%s received %d audio packets, want at least %d (nine tenths of the %d sent)", p.name, r.AudioPackets, want, sent.AudioPackets)
		}
	}
	// The bridge's process (this one, or bridgeserver's; the peers are
	// processes of their own): what it spent over the window, per packet
	// the subscribers received, is an upper bound of the bridge's CPU per
	// forwarded packet, and its memory an upper bound of the bridge's.
	name := "bridge (the test's)"
	if m.remote != "" {
		name = "bridgeserver"
	}
	t.Log("figures: " + synth.ServerFigures(name, cpu, window, forwarded, idle, withPublisher, peak, len(subs)))
}

// rss is the process's resident set size.
func rss(t *testing.T, p mediasynth.Proc) int64 {
	t.Helper()
	n, err := p.RSS()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sampled is what the bridge said of a subscriber every 100 ms over the
// window: the layer it sent (or none: paused) and its downlink estimate.
type sampled struct {
	from                 time.Time // the window's start
	n                    int
	layers               [Layers + 1]int // samples per layer; the last: none sent
	estMin, estMax, last int
	// changes are when the layer sent changed: milliseconds into the
	// window, the layer's RID ("-": none), the estimate then (kbit/s)
	changes []string
	prev    string
}

func (s *sampled) add(p *peer, publisher conference.ParticipantID) {
	if s.n == 0 {
		s.from = time.Now()
	}
	l, ok := p.sess.SentLayer(publisher, media.KindVideo)
	rid := "-"
	switch {
	case !ok:
		s.layers[Layers]++
	case l >= 0 && int(l) < Layers:
		s.layers[l]++
		rid = RIDs[l]
	}
	est := p.sess.DownlinkEstimate()
	if rid != s.prev && s.n > 0 {
		s.changes = append(s.changes, fmt.Sprintf("%d ms %s→%s at %d kbit/s", time.Since(s.from)/time.Millisecond, s.prev, rid, est/1000))
	}
	s.prev = rid
	if s.n == 0 || est < s.estMin {
		s.estMin = est
	}
	s.estMax, s.last = max(s.estMax, est), est
	s.n++
}

// String gives the share of the samples on each layer, and the
// estimates; none when the bridge is in a process of its own.
func (s *sampled) String() string {
	if s.n == 0 {
		return "(the bridge's own figures: not sampled, it runs in a process of its own)"
	}
	var b strings.Builder
	b.WriteString("bridge sent")
	for i, n := range s.layers {
		if n == 0 {
			continue
		}
		name := "nothing"
		if i < Layers {
			name = RIDs[i]
		}
		fmt.Fprintf(&b, " %s %d%%", name, n*100/max(s.n, 1))
	}
	fmt.Fprintf(&b, ", estimate %d to %d kbit/s (last %d)", s.estMin/1000, s.estMax/1000, s.last/1000)
	if len(s.changes) > 0 {
		fmt.Fprintf(&b, "; layer changes %s", strings.Join(s.changes, ", "))
	}
	return b.String()
}

// cpuOf returns the CPU time the process has used, user and system.
func cpuOf(t *testing.T, p mediasynth.Proc) time.Duration {
	t.Helper()
	d, err := p.CPU()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
