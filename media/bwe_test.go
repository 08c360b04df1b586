package media

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/conference"
)

// The default allocator serves screen shares, then the speaker's
// camera, then the others, each the highest layer that fits what is
// left, never above Max; one of which nothing fits is paused.
func TestDefaultAllocatorShares(t *testing.T) {
	rates := [numLayers]int{100_000, 300_000, 900_000}
	for _, tc := range []struct {
		name   string
		budget int
		videos []Video
		want   []Layer
	}{
		{"plenty", 5_000_000,
			[]Video{{Priority: PriorityOther, Bitrates: rates, Max: LayerHigh}, {Priority: PrioritySpeaker, Bitrates: rates, Max: LayerHigh}},
			[]Layer{LayerHigh, LayerHigh}},
		{"the speaker before the others, whatever the order", 1_000_000,
			[]Video{{Priority: PriorityOther, Bitrates: rates, Max: LayerHigh}, {Priority: PrioritySpeaker, Bitrates: rates, Max: LayerHigh}},
			[]Layer{LayerLow, LayerHigh}},
		{"the screen before the speaker", 1_000_000,
			[]Video{{Priority: PrioritySpeaker, Bitrates: rates, Max: LayerHigh}, {Priority: PriorityScreen, Bitrates: rates, Max: LayerHigh}},
			[]Layer{LayerLow, LayerHigh}},
		{"a layer fits exactly", 400_000,
			[]Video{{Priority: PrioritySpeaker, Bitrates: rates, Max: LayerHigh}, {Priority: PriorityOther, Bitrates: rates, Max: LayerHigh}},
			[]Layer{LayerMid, LayerLow}},
		{"nothing left: paused", 350_000,
			[]Video{{Priority: PrioritySpeaker, Bitrates: rates, Max: LayerHigh}, {Priority: PriorityOther, Bitrates: rates, Max: LayerHigh}},
			[]Layer{LayerMid, LayerPaused}},
		{"the others in the order given", 250_000,
			[]Video{{Priority: PriorityOther, Bitrates: rates, Max: LayerHigh}, {Priority: PriorityOther, Bitrates: rates, Max: LayerHigh}, {Priority: PriorityOther, Bitrates: rates, Max: LayerHigh}},
			[]Layer{LayerLow, LayerLow, LayerPaused}},
		{"Max bounds, and what it leaves goes to the next", 1_000_000,
			[]Video{{Priority: PrioritySpeaker, Bitrates: rates, Max: LayerMid}, {Priority: PriorityOther, Bitrates: rates, Max: LayerHigh}},
			[]Layer{LayerMid, LayerMid}},
		{"no budget at all", -50_000,
			[]Video{{Priority: PriorityScreen, Bitrates: rates, Max: LayerHigh}},
			[]Layer{LayerPaused}},
		{"a layer not sent is skipped", 500_000,
			[]Video{{Priority: PrioritySpeaker, Bitrates: [numLayers]int{100_000, 0, 400_000}, Max: LayerHigh}},
			[]Layer{LayerHigh}},
		{"one layer (no simulcast) that fits", 200_000,
			[]Video{{Priority: PrioritySpeaker, Bitrates: [numLayers]int{150_000}, Max: LayerHigh}},
			[]Layer{LayerLow}},
		{"one layer that does not: sent anyway, nothing lower to fall back to", 100_000,
			[]Video{{Priority: PrioritySpeaker, Bitrates: [numLayers]int{150_000}, Max: LayerHigh},
				{Priority: PriorityOther, Bitrates: [numLayers]int{150_000}, Max: LayerHigh}},
			[]Layer{LayerLow, LayerLow}},
		{"not measured yet: Max, at no cost", 150_000,
			[]Video{{Priority: PrioritySpeaker, Max: LayerMid}, {Priority: PriorityOther, Bitrates: rates, Max: LayerHigh}},
			[]Layer{LayerMid, LayerLow}},
		{"only layers above Max are sent: the lowest of them, if it fits", 350_000,
			[]Video{{Priority: PrioritySpeaker, Bitrates: [numLayers]int{0, 300_000, 900_000}, Max: LayerLow}, {Priority: PriorityOther, Bitrates: [numLayers]int{0, 300_000, 900_000}, Max: LayerLow}},
			[]Layer{LayerLow, LayerPaused}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]Layer, len(tc.videos))
			DefaultAllocator{}.Allocate(tc.budget, tc.videos, got)
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("budget %d: got %v, want %v", tc.budget, got, tc.want)
				}
			}
		})
	}
}

// A paused video sends nothing; resumed, it starts again at a keyframe
// of the layer given, its numbering continuous.
func TestPausedVideoResumesAtAKeyframe(t *testing.T) {
	now := time.Now().UnixNano()
	f := bareForward(now)
	d := newDownTrack(f, LayerHigh)
	w := &discardWriter{}
	d.ws, d.ssrc = w, 42
	f.addDown(d)
	var seq uint16
	send := func(l Layer, key bool) {
		seq++
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000},
			Payload: vp8Payload(seq, 0, true, key, 0, 0, []byte{1})}
		f.route(f.layers[l].Load(), pkt, now)
	}
	send(LayerHigh, true)
	if d.layer() != LayerHigh || w.packets != 1 {
		t.Fatalf("receives %v, %d packets", d.layer(), w.packets)
	}
	d.setAlloc(LayerPaused)
	send(LayerHigh, true)
	send(LayerLow, true)
	if d.layer() != -1 || w.packets != 1 {
		t.Fatalf("paused: receives %v, %d packets", d.layer(), w.packets)
	}
	d.setAlloc(LayerLow)
	send(LayerLow, false)
	if d.layer() != -1 || w.packets != 1 {
		t.Fatalf("resumed without a keyframe: receives %v, %d packets", d.layer(), w.packets)
	}
	send(LayerLow, true)
	if d.layer() != LayerLow || w.packets != 2 {
		t.Fatalf("resumed at a keyframe: receives %v, %d packets", d.layer(), w.packets)
	}
}

// throttle is a UDP socket behind a bottleneck, as a participant on a
// weak downlink: what arrives for it queues for a link of rate bits/s
// (the UDP and IP headers counted), what would wait longer than
// maxDelay is dropped, and so is every lossEvery-th packet (0: none).
type throttle struct {
	net.PacketConn
	rate      int
	maxDelay  time.Duration
	lossEvery int
	out       chan throttled
	dropped   atomic.Int64 // by the queue
	lost      atomic.Int64 // by lossEvery
}

type throttled struct {
	b    []byte
	from net.Addr
	at   time.Time // when it has crossed the link
}

func newThrottle(conn net.PacketConn, rate int, maxDelay time.Duration, lossEvery int) *throttle {
	t := &throttle{PacketConn: conn, rate: rate, maxDelay: maxDelay, lossEvery: lossEvery, out: make(chan throttled, 4096)}
	go t.pump()
	return t
}

func (t *throttle) pump() {
	defer close(t.out)
	buf := make([]byte, 2048)
	var free time.Time // when the link has sent what is queued
	for i := 1; ; i++ {
		n, from, err := t.PacketConn.ReadFrom(buf)
		if err != nil {
			return
		}
		if t.lossEvery > 0 && i%t.lossEvery == 0 {
			t.lost.Add(1)
			continue
		}
		now := time.Now()
		if free.Before(now) {
			free = now
		}
		if free.Sub(now) > t.maxDelay {
			t.dropped.Add(1)
			continue
		}
		free = free.Add(time.Duration((n+28)*8) * time.Second / time.Duration(t.rate))
		select {
		case t.out <- throttled{append([]byte(nil), buf[:n]...), from, free}:
		default:
			t.dropped.Add(1)
		}
	}
}

// ReadFrom returns the next packet once it has crossed the link.
func (t *throttle) ReadFrom(b []byte) (int, net.Addr, error) {
	p, ok := <-t.out
	if !ok {
		return 0, nil, net.ErrClosed
	}
	time.Sleep(time.Until(p.at))
	return copy(b, p.b), p.from, nil
}

// downOf returns session s's downTrack of publisher's camera.
func downOf(s *Session, publisher conference.ParticipantID) *downTrack {
	s.mu.Lock()
	defer s.mu.Unlock()
	for f, d := range s.downs {
		if f.owner.pid == publisher && f.kind == KindVideo {
			return d
		}
	}
	return nil
}

// setAlloc caps the layer sent at l at once (LayerPaused stops it), as
// allocate does without its delay before pausing.
func (d *downTrack) setAlloc(l Layer) {
	d.mu.Lock()
	d.alloc = l
	d.mu.Unlock()
}

// allocated returns the layer the allocation gave d.
func (d *downTrack) allocated() Layer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.alloc
}

// A publisher sends audio and three layers of about 70, 260 and 470
// kbit/s. Of two subscribers, one receives through a 300 kbit/s link
// that also loses 3 % of the packets:
// the bridge's estimate of its downlink (from the transport-wide
// feedback it sends) falls, and the allocation moves it to the low
// layer, while the other keeps the high one; both keep hearing the
// audio and the weak one keeps receiving video.
func TestWeakDownlinkGetsTheLowLayer(t *testing.T) {
	e := newEnv(t, time.Time{})
	alice := e.enter("alice")
	e.join(alice, clientOptions{publish: []string{KindAudio}, simulcast: true, simBody: [numLayers]int{150, 600, 1100}})
	e.waitLayers(alice.ID)

	raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	th := newThrottle(raw, 300_000, 300*time.Millisecond, 33)
	t.Cleanup(func() { _ = raw.Close() })
	videoKey := string(alice.ID) + "/" + string(alice.ID) + "-" + KindVideo
	audioKey := string(alice.ID) + "/" + string(alice.ID) + "-" + KindAudio
	weakVideo, strongVideo := &recorder{key: videoKey}, &recorder{key: videoKey}
	weak := e.join(e.enter("bob"), clientOptions{udp: th, onRTP: weakVideo.onRTP})
	strong := e.join(e.enter("carol"), clientOptions{onRTP: strongVideo.onRTP})

	var weakDown, strongDown *downTrack
	eventually(t, 10*time.Second, "both subscribers receive alice's video", func() bool {
		weakDown, strongDown = downOf(weak.sess, alice.ID), downOf(strong.sess, alice.ID)
		return weakDown != nil && strongDown != nil
	})
	eventually(t, 20*time.Second, "the weak subscriber is on the low layer by its estimate, the other on the high layer", func() bool {
		return weakDown.allocated() == LayerLow && weakDown.layer() == LayerLow &&
			strongDown.allocated() == LayerHigh && strongDown.layer() == LayerHigh
	})
	if est := weak.sess.DownlinkEstimate(); est > 600_000 {
		t.Errorf("the weak subscriber's estimate is %d bit/s behind a 300 kbit/s link", est)
	}
	var rates [numLayers]int64
	for i := range rates {
		rates[i] = weakDown.f.layers[i].Load().meter.rate.Load()
	}
	t.Logf("estimates: weak %d bit/s (its link dropped %d packets and lost %d), strong %d bit/s; layers measured at %v bit/s",
		weak.sess.DownlinkEstimate(), th.dropped.Load(), th.lost.Load(), strong.sess.DownlinkEstimate(), rates)

	// Both keep hearing alice, and the weak one keeps seeing her.
	weakAudio, strongAudio, weakQ := weak.stats(audioKey).packets, strong.stats(audioKey).packets, weakVideo.count('q')
	strongF := strongVideo.count('f')
	eventually(t, 15*time.Second, "both subscribers receive 150 more packets of audio (3 s), the weak one 120 of the low layer, the strong one 120 of the high", func() bool {
		return weak.stats(audioKey).packets >= weakAudio+150 && strong.stats(audioKey).packets >= strongAudio+150 &&
			weakVideo.count('q') >= weakQ+120 && strongVideo.count('f') >= strongF+120
	})
}

// A subscriber's estimate, less the audio it is sent, goes to the
// screen share first, then to the camera published last, then to the
// others; what does not fit is paused.
func TestSessionAllocatesScreenThenNewestCamera(t *testing.T) {
	now := time.Now().UnixNano()
	s := &Session{est: newDownlink(), senders: map[*forward]*webrtc.RTPSender{}, downs: map[*forward]*downTrack{}}
	audio := &forward{kind: KindAudio}
	audio.meter.rate.Store(100_000)
	s.senders[audio] = nil
	downs := map[string]*downTrack{}
	for i, name := range []string{"screen", "old camera", "new camera"} {
		f := bareForward(now)
		f.owner = &Session{pid: conference.ParticipantID(name)}
		f.since = now + int64(i)
		if name == "screen" {
			f.kind = KindScreen
		}
		for l, rate := range []int64{100_000, 300_000, 900_000} {
			f.layers[l].Load().meter.rate.Store(rate)
		}
		d := newDownTrack(f, LayerHigh)
		s.senders[f], s.downs[f], downs[name] = nil, d, d
	}
	s.est.estimate.Store(1_150_000) // 1,050,000 for video
	s.allocate(DefaultAllocator{}, &allocScratch{})
	for name, want := range map[string]Layer{"screen": LayerHigh, "new camera": LayerLow, "old camera": LayerPaused} {
		if got := downs[name].allocated(); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

// A layer the publisher has paused, on which it sends bandwidth-probe
// padding alone (as Chrome does), goes stale like one that sends
// nothing: a subscriber allowed the high layer is moved to the low one
// that still sends video, instead of waiting for the paused layer's
// keyframe.
func TestPaddingDoesNotKeepAPausedLayer(t *testing.T) {
	start := time.Now().UnixNano()
	f := bareForward(start)
	d := newDownTrack(f, LayerHigh)
	w := &discardWriter{}
	d.ws, d.ssrc = w, 42
	f.addDown(d)
	seq := [numLayers]uint16{}
	send := func(l Layer, key bool, now int64) {
		seq[l]++
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq[l], Timestamp: uint32(seq[l]) * 3000},
			Payload: vp8Payload(seq[l], 0, true, key, simWidths[l], simWidths[l]*9/16, []byte{1})}
		f.route(f.layers[l].Load(), pkt, now)
	}
	padding := func(l Layer, now int64) {
		seq[l]++
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Padding: true, SequenceNumber: seq[l], Timestamp: 0}, PaddingSize: 255}
		f.route(f.layers[l].Load(), pkt, now)
	}
	send(LayerHigh, true, start)
	if d.layer() != LayerHigh {
		t.Fatalf("receives %v, want the high layer", d.layer())
	}
	// For 3 s (past staleLayer) the high and mid layers send padding
	// only; the low layer sends video.
	var now int64
	for ms := int64(0); ms <= 3000; ms += 33 {
		now = start + ms*int64(time.Millisecond)
		padding(LayerHigh, now)
		padding(LayerMid, now)
		send(LayerLow, ms%990 == 0, now)
	}
	if got := f.best(LayerHigh, now); got != LayerLow {
		t.Fatalf("the best layer sending is %v, want the low layer (the others send padding alone)", got)
	}
	if d.layer() != LayerLow {
		t.Fatalf("the subscriber receives %v, want the low layer from its keyframe", d.layer())
	}
}

// sendKeyframe routes a keyframe of layer l in packets of 1,100 bytes
// of payload, size bytes in all, from sequence number *seq on, at now.
func sendKeyframe(f *forward, l Layer, seq *uint16, ts uint32, size int, now int64) {
	for first := true; size > 0; first = false {
		body := make([]byte, min(size, 1100))
		size -= len(body)
		*seq++
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: *seq, Timestamp: ts, Marker: size == 0},
			Payload: vp8Payload(*seq, 0, first, true, simWidths[l], simWidths[l]*9/16, body)}
		f.route(f.layers[l].Load(), pkt, now)
	}
}

// A subscriber estimated at 300 kbit/s is sent a keyframe of 12.5 KB:
// at a third of the estimate it takes a second to cross the link, and
// with the round trip its receiver reports (200 ms) the subscriber's
// requests for another in the 1.2 s from its first packet are held;
// after, they pass.
func TestKeyframeRequestsWaitForTheKeyframeOnItsWay(t *testing.T) {
	now := time.Now().UnixNano()
	f := bareForward(now)
	d := newDownTrack(f, LayerLow)
	d.ws, d.ssrc = &discardWriter{}, 42
	d.est = newDownlink()
	d.est.estimate.Store(300_000)
	f.addDown(d)
	if !d.subscriberKeyframeRequest(now) {
		t.Fatal("a request before any keyframe was sent is held")
	}
	var seq uint16
	sendKeyframe(f, LayerLow, &seq, 9000, 12_500, now)
	if d.layer() != LayerLow {
		t.Fatalf("receives %v", d.layer())
	}
	d.roundTrip(int64(200 * time.Millisecond))
	ms := func(n int) int64 { return now + int64(n)*int64(time.Millisecond) }
	for _, at := range []int{0, 500, 1000, 1150} {
		if d.subscriberKeyframeRequest(ms(at)) {
			t.Fatalf("a request %d ms after the keyframe was passed on", at)
		}
	}
	if !d.subscriberKeyframeRequest(ms(1300)) {
		t.Fatal("a request 1.3 s after the keyframe was held")
	}
	// A huge keyframe is waited for at most 3 s.
	sendKeyframe(f, LayerLow, &seq, 12000, 200_000, ms(2000))
	if d.subscriberKeyframeRequest(ms(4900)) || !d.subscriberKeyframeRequest(ms(5100)) {
		t.Fatal("a keyframe is not waited for 3 s at most")
	}
}

// On a fast link (a keyframe crossing in under 100 ms) a request
// repeated means the keyframe was lost: it passes at once.
func TestKeyframeRequestsPassOnAFastLink(t *testing.T) {
	now := time.Now().UnixNano()
	f := bareForward(now)
	d := newDownTrack(f, LayerLow)
	d.ws, d.ssrc = &discardWriter{}, 42
	d.est = newDownlink() // 10 Mbit/s: 12.5 KB cross in 10 ms
	f.addDown(d)
	var seq uint16
	sendKeyframe(f, LayerLow, &seq, 9000, 12_500, now)
	if !d.subscriberKeyframeRequest(now + int64(time.Millisecond)) {
		t.Fatal("a request right after the keyframe was held on a fast link")
	}
	d.est.estimate.Store(1_500_000) // 67 ms
	if !d.subscriberKeyframeRequest(now + int64(time.Millisecond)) {
		t.Fatal("a request right after the keyframe was held at 1.5 Mbit/s")
	}
}

// A reception report's round trip: the sender report it answers left
// 300 ms ago and the receiver held it 100 ms.
func TestReportRoundTrip(t *testing.T) {
	now := time.Now()
	sr := now.Add(-300 * time.Millisecond)
	ntp := uint64(sr.Unix()+2_208_988_800)<<32 | uint64(sr.Nanosecond())<<32/uint64(time.Second)
	rtt, ok := reportRoundTrip(rtcp.ReceptionReport{LastSenderReport: uint32(ntp >> 16), Delay: 65536 / 10}, now)
	if !ok || rtt < int64(199*time.Millisecond) || rtt > int64(201*time.Millisecond) {
		t.Fatalf("round trip %v, %v; want 200 ms", time.Duration(rtt), ok)
	}
	if _, ok := reportRoundTrip(rtcp.ReceptionReport{}, now); ok {
		t.Fatal("a report answering no sender report gives a round trip")
	}
}

// A video being sent is paused only after the allocation has had no
// room for it for pauseAfter (a keyframe lifts its measured rate for a
// moment); until then it gets its lowest layer. One not being sent is
// paused at once.
func TestAllocationPausesAVideoBeingSentOnlyAfterAWhile(t *testing.T) {
	now := time.Now().UnixNano()
	f := bareForward(now)
	d := newDownTrack(f, LayerHigh)
	d.allocate(LayerPaused, now)
	if d.allocated() != LayerPaused {
		t.Fatalf("a video not being sent: %v, want paused", d.allocated())
	}
	d.allocate(LayerMid, now)
	d.current = LayerMid
	for _, ms := range []int64{0, 1000, 1900} {
		d.allocate(LayerPaused, now+ms*int64(time.Millisecond))
		if d.allocated() != LayerLow {
			t.Fatalf("%d ms without room: %v, want the low layer", ms, d.allocated())
		}
	}
	d.allocate(LayerPaused, now+2100*int64(time.Millisecond))
	if d.allocated() != LayerPaused {
		t.Fatalf("2.1 s without room: %v, want paused", d.allocated())
	}
	d.current = LayerLow
	d.allocate(LayerLow, now+3000*int64(time.Millisecond))
	d.allocate(LayerPaused, now+3100*int64(time.Millisecond))
	if d.allocated() != LayerLow {
		t.Fatalf("room again, then none: %v, want the low layer for a while", d.allocated())
	}
}
