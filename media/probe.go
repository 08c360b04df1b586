package media

import (
	"time"

	"github.com/pion/rtp"
)

// Probing before a switch up. The bridge's estimate of a subscriber's
// downlink rises while what it is sent passes without delay or much
// loss, whatever that is: sent the low layer alone on a weak link, the
// estimate climbs past what the link carries. Switching up on it then
// costs the subscriber a freeze: the higher layer's keyframe, sent
// faster than the link takes it, queues, the estimate falls, and the
// switch back down waits for the low layer's keyframe (2 to 3 s on a
// 300 kbit/s link, TestWeakSubscriberInNetns). So on a downlink that
// has shown a limit (its estimate fell once), a switch up is tried
// first with padding: for probeTime the subscriber is sent, beside its
// layer, padding at the rate the higher layer would add. If the
// estimate falls meanwhile, the switch is not made (and the estimator
// holds off its next try, longer each time); if not, it is. Padding is
// what browsers send to probe: RTP packets of padding alone, after a
// frame's last packet, numbered in the stream (rewriter.pad).
const (
	probeTime = time.Second
	// probeValid is how long a probe that passed lets its switch wait
	// for the higher layer's keyframe without probing again.
	probeValid = 3 * time.Second
	// probeBurst bounds the padding sent at once: what probeBurst of
	// the probe's rate comes to.
	probeBurst = 100 * time.Millisecond
	// padSize is a padding packet's payload: the most one RTP packet
	// carries (its last byte counts the padding).
	padSize = 255
)

// padding is a padding packet's payload.
var padding = func() (b [padSize]byte) { b[padSize-1] = padSize; return }()

// probe is a downTrack's probe for a switch up.
type probe struct {
	on     bool
	target Layer
	start  int64   // unix ns
	end    int64   // unix ns
	rate   float64 // bits/s of padding
	bytes  float64 // padding due
	last   int64   // when padding was last counted
	// the layer the last probe that passed was for, and when it passed
	passed   Layer
	passedAt int64
}

// probeFor takes the allocation's layer l for the subscriber at now and
// returns the layer it may be sent: l, or, while a switch up is being
// probed (or the probe failed), the one it is sent. d.mu is held.
func (d *downTrack) probeFor(l Layer, now int64) Layer {
	cur := d.current
	if d.est == nil || cur < 0 || l == LayerPaused || l <= cur {
		d.probe.on = false
		return l
	}
	target := d.f.best(min(l, d.max), now)
	if target <= cur || !d.est.limited() {
		d.probe.on = false
		return l
	}
	if d.probe.passedAt != 0 && d.probe.passed == target && now-d.probe.passedAt < int64(probeValid) {
		return l // passed: the switch waits for the layer's keyframe
	}
	if d.probe.on && d.probe.target == target {
		switch {
		case d.est.fellSince(d.probe.start):
			d.probe.on = false // the path has no room: stay
			return cur
		case now >= d.probe.end:
			d.probe.on, d.probe.passed, d.probe.passedAt = false, target, now // it has
			return l
		}
		return cur
	}
	rate := d.f.layerRate(target) - d.f.layerRate(cur)
	if rate <= 0 {
		d.probe.on = false
		return l
	}
	d.probe = probe{on: true, target: target, start: now, end: now + int64(probeTime), rate: float64(rate), last: now}
	return cur
}

// padProbe sends the padding due for a probe, after a frame's last
// packet sent at now. d.mu is held.
func (d *downTrack) padProbe(now int64) {
	p := &d.probe
	if !p.on || now >= p.end {
		return
	}
	el := time.Duration(now - p.last).Seconds()
	p.last = now
	p.bytes = min(p.bytes+p.rate/8*max(el, 0), p.rate/8*probeBurst.Seconds())
	for p.bytes >= padSize {
		seq, ts, ok := d.rw.pad()
		if !ok {
			return
		}
		d.hdr = rtp.Header{Version: 2, Padding: true, PayloadType: d.pt, SequenceNumber: seq, Timestamp: ts, SSRC: d.ssrc,
			Extensions: d.exts[:0]}
		_, _ = d.ws.WriteRTP(&d.hdr, padding[:])
		p.bytes -= padSize
	}
}

// layerRate returns what layer i arrives at, bits/s (0: not sent).
func (f *forward) layerRate(i Layer) int64 {
	if i < 0 || int(i) >= len(f.layers) {
		return 0
	}
	if l := f.layers[i].Load(); l != nil {
		return l.meter.rate.Load()
	}
	return 0
}

// limited reports whether the estimate has ever fallen: the downlink
// has shown a limit.
func (d *downlink) limited() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastFall != 0
}

// fellSince reports whether the estimate fell at or after t.
func (d *downlink) fellSince(t int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastFall != 0 && d.lastFall >= t
}
