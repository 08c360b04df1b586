package media

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// Padding the bridge adds is numbered in the stream: what follows comes
// after it, and a late packet from before it keeps its own place.
func TestRewriterPadding(t *testing.T) {
	w := rewriter{clockRate: 90000}
	if _, _, ok := w.pad(); ok {
		t.Fatal("padding before the first packet")
	}
	for seq := uint16(100); seq <= 102; seq++ {
		if out, _, _ := w.next(seq, 9000, start); out != seq {
			t.Fatalf("packet %d forwarded as %d", seq, out)
		}
	}
	p1, ts, ok := w.pad()
	p2, _, _ := w.pad()
	if !ok || p1 != 103 || p2 != 104 || ts != 9000 {
		t.Fatalf("padding numbered %d and %d at %d, want 103 and 104 at the last timestamp", p1, p2, ts)
	}
	for _, c := range []struct{ in, want uint16 }{{103, 105}, {101, 101}, {102, 102}, {104, 106}, {103, 105}} {
		if out, _, ok := w.next(c.in, 9000, start); !ok || out != c.want {
			t.Fatalf("packet %d forwarded as %d (%v), want %d", c.in, out, ok, c.want)
		}
	}
	// More padding than is remembered: a packet from before the first
	// forgotten cannot be placed, and is dropped.
	for range maxPads + 1 {
		w.pad()
	}
	if _, _, ok := w.next(104, 9000, start); ok {
		t.Fatal("a late packet from before forgotten padding was forwarded")
	}
	out, _, ok := w.next(105, 9000, start)
	if want := uint16(106 + maxPads + 1 + 1); !ok || out != want {
		t.Fatalf("the next packet after the padding forwarded as %d (%v), want %d", out, ok, want)
	}
	w.switchLayer()
	if _, _, ok := w.pad(); ok {
		t.Fatal("padding at a layer's switch, before its first packet")
	}
}

// probeEnv is a subscriber receiving the low layer of a simulcast video
// whose layers arrive at 150, 300 and 600 kbit/s, on a downlink whose
// estimate fell once (it has shown a limit) unless unlimited.
type probeEnv struct {
	f   *forward
	d   *downTrack
	w   *padCounter
	seq [numLayers]uint16
	pic uint16
	now int64
}

type padCounter struct{ media, padding, padBytes int }

func (w *padCounter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if h.Padding {
		w.padding++
		w.padBytes += len(payload)
	} else {
		w.media++
	}
	return 0, nil
}
func (w *padCounter) Write(b []byte) (int, error) { return len(b), nil }

func newProbeEnv(t *testing.T, limited bool) *probeEnv {
	t.Helper()
	now := time.Now().UnixNano() // bareForward's keyframe requests go by the clock
	e := &probeEnv{f: bareForward(now), now: now, w: &padCounter{}}
	for i, rate := range []int64{150_000, 300_000, 600_000} {
		e.f.layers[i].Load().meter.rate.Store(rate)
	}
	e.d = newDownTrack(e.f, LayerHigh)
	e.d.ws, e.d.ssrc = e.w, 42
	e.d.est = newDownlink()
	if limited {
		e.d.est.lastFall = now - int64(time.Minute)
	}
	e.f.addDown(e.d)
	e.d.allocate(LayerLow, e.now)
	e.frame(true) // on the low layer from its keyframe
	if e.d.layer() != LayerLow {
		t.Fatalf("receives %v, want the low layer", e.d.layer())
	}
	return e
}

// frame routes one frame of every layer (two packets each), 33 ms after
// the last.
func (e *probeEnv) frame(key bool) {
	e.now += int64(33 * time.Millisecond)
	e.pic++
	for l := range Layer(numLayers) {
		for i := range 2 {
			e.seq[l]++
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: e.seq[l], Timestamp: uint32(e.pic) * 3000, Marker: i == 1},
				Payload: vp8Payload(e.pic, 0, i == 0, key, simWidths[l], simWidths[l]*9/16, make([]byte, 500))}
			e.f.route(e.f.layers[l].Load(), pkt, e.now)
		}
	}
}

// On a downlink that has shown a limit, a switch up waits for a probe:
// for probeTime the subscriber is sent padding at the rate the higher
// layer adds, beside its own layer; with no fall of the estimate
// meanwhile, it is switched.
func TestSwitchUpIsProbedFirst(t *testing.T) {
	e := newProbeEnv(t, true)
	e.d.allocate(LayerMid, e.now)
	if e.d.allocated() != LayerLow || !e.d.probe.on {
		t.Fatalf("allocated %v (probing %v) at once, want the low layer while a probe runs", e.d.allocated(), e.d.probe.on)
	}
	from := e.now
	for e.now < from+int64(probeTime) {
		e.frame(false)
		if e.d.layer() != LayerLow {
			t.Fatalf("switched to %v during the probe", e.d.layer())
		}
		if e.now%int64(500*time.Millisecond) < int64(33*time.Millisecond) {
			e.d.allocate(LayerMid, e.now) // the allocation's rounds go on
		}
	}
	rate := float64(e.w.padBytes*8) / time.Duration(e.now-from).Seconds()
	if rate < 120_000 || rate > 180_000 {
		t.Fatalf("padding at %.0f bit/s during the probe, want about 150000 (what the middle layer adds)", rate)
	}
	e.d.allocate(LayerMid, e.now)
	// The switch waits for the middle layer's keyframe, through the
	// allocation's next rounds, without probing again.
	for range 2 {
		e.frame(false)
		e.now += int64(500 * time.Millisecond)
		e.d.allocate(LayerMid, e.now)
		if e.d.allocated() != LayerMid || e.d.probe.on {
			t.Fatalf("waiting for the keyframe after the probe: allocated %v, probing %v; want the middle layer", e.d.allocated(), e.d.probe.on)
		}
	}
	e.frame(true)
	if e.d.allocated() != LayerMid || e.d.layer() != LayerMid {
		t.Fatalf("after the probe: allocated %v, sent %v; want the middle layer", e.d.allocated(), e.d.layer())
	}
	n := e.w.padding
	e.frame(false)
	if e.w.padding != n {
		t.Fatal("padding after the probe")
	}
}

// A probe during which the estimate falls leaves the subscriber where it
// was.
func TestFailedProbeStays(t *testing.T) {
	e := newProbeEnv(t, true)
	e.d.allocate(LayerMid, e.now)
	e.frame(false)
	e.d.est.lastFall = e.now // the padding made a queue
	e.d.allocate(LayerMid, e.now+int64(500*time.Millisecond))
	e.frame(true)
	if e.d.allocated() != LayerLow || e.d.layer() != LayerLow || e.d.probe.on {
		t.Fatalf("after a failed probe: allocated %v, sent %v, probing %v; want the low layer, no probe", e.d.allocated(), e.d.layer(), e.d.probe.on)
	}
}

// Where the downlink never showed a limit (its estimate never fell), a
// switch up is made at once, without padding.
func TestSwitchUpWithoutLimitIsNotProbed(t *testing.T) {
	e := newProbeEnv(t, false)
	e.d.allocate(LayerMid, e.now)
	e.frame(true)
	if e.d.allocated() != LayerMid || e.d.layer() != LayerMid || e.w.padding != 0 {
		t.Fatalf("allocated %v, sent %v, %d padding packets; want the middle layer at once, no padding", e.d.allocated(), e.d.layer(), e.w.padding)
	}
}
