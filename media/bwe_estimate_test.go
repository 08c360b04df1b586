package media

import (
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// feedbackFor is a client's transport-wide feedback about the packets
// from base on: arrivals[i] is when packet base+i arrived on the
// client's clock (nanoseconds, increasing), 0 if it did not.
func feedbackFor(base uint16, arrivals []int64) *rtcp.TransportLayerCC {
	fb := &rtcp.TransportLayerCC{BaseSequenceNumber: base, PacketStatusCount: uint16(len(arrivals))}
	prev := int64(-1)
	for _, at := range arrivals {
		if at == 0 {
			fb.PacketChunks = append(fb.PacketChunks, &rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketNotReceived, RunLength: 1})
			continue
		}
		if prev < 0 {
			fb.ReferenceTime = uint32(at / int64(64*time.Millisecond))
			prev = int64(fb.ReferenceTime) * int64(64*time.Millisecond)
		}
		fb.PacketChunks = append(fb.PacketChunks, &rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedLargeDelta, RunLength: 1})
		fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: rtcp.TypeTCCPacketReceivedLargeDelta, Delta: (at - prev) / int64(time.Microsecond)})
		prev = at
	}
	return fb
}

// link is a simulated path to a client: a bottleneck of rate bits/s
// with a queue, 20 ms of propagation, and every lossEvery-th packet
// lost (0: none). The client's clock is 7 s ahead of the bridge's.
type link struct {
	rate      int
	lossEvery int
	free      int64
	n         int
}

func (l *link) arrival(sent int64, size int) int64 {
	l.n++
	l.free = max(l.free, sent) + int64(size*8)*int64(time.Second)/int64(l.rate)
	if l.lossEvery > 0 && l.n%l.lossEvery == 0 {
		return 0
	}
	return l.free + int64(20*time.Millisecond) + int64(7*time.Second)
}

// drive sends the estimator a 1,200-byte packet every interval for
// dur of simulated time from start, over l; every feedbackEvery the
// client reports what has arrived (and what was lost before it). It
// returns the time reached.
func drive(d *downlink, l *link, start int64, dur, interval, feedbackEvery time.Duration) int64 {
	var c simClient
	now, nextFeedback := start, start+int64(feedbackEvery)
	for end := start + int64(dur); now < end; now += int64(interval) {
		c.sent(d.sent1(1200, now, false), l.arrival(now, 1200))
		if now >= nextFeedback {
			nextFeedback += int64(feedbackEvery)
			c.report(d, now)
		}
	}
	return now
}

// simClient is a simulated client's side of transport-wide feedback:
// the packets sent to it, not yet reported.
type simClient struct {
	queue []simPacket
}

type simPacket struct {
	seq uint16
	at  int64 // arrival on the client's clock (7 s ahead); 0: lost
}

func (c *simClient) sent(seq uint16, at int64) { c.queue = append(c.queue, simPacket{seq, at}) }

// report sends the estimator feedback at now about what has arrived by
// then (and what was lost before it).
func (c *simClient) report(d *downlink, now int64) {
	n := 0
	for n < len(c.queue) && (c.queue[n].at == 0 || c.queue[n].at-int64(7*time.Second) <= now) {
		n++
	}
	if n == 0 {
		return
	}
	arrivals := make([]int64, n)
	for i := range arrivals {
		arrivals[i] = c.queue[i].at
	}
	d.feedback(feedbackFor(c.queue[0].seq, arrivals), now)
	c.queue = c.queue[n:]
}

const start = int64(1e18) // simulated time: any, as long as it is not 0

// On a path with room, the estimate does not fall, and it rises.
func TestDownlinkEstimateHoldsWithRoom(t *testing.T) {
	d := newDownlink()
	drive(d, &link{rate: 50_000_000}, start, 5*time.Second, 10*time.Millisecond, 100*time.Millisecond)
	if est := d.GetTargetBitrate(); est <= initialEstimate {
		t.Fatalf("estimate %d after 5 s with room, want over %d", est, initialEstimate)
	}
}

// Sending 960 kbit/s through a 500 kbit/s bottleneck, the queue grows
// and the estimate falls to about what arrives.
func TestDownlinkEstimateFallsWhenTheQueueGrows(t *testing.T) {
	d := newDownlink()
	drive(d, &link{rate: 500_000}, start, 5*time.Second, 10*time.Millisecond, 100*time.Millisecond)
	if est := d.GetTargetBitrate(); est < 300_000 || est > 600_000 {
		t.Fatalf("estimate %d bit/s behind a 500 kbit/s bottleneck", est)
	}
}

// A third of the packets lost, the estimate falls; 1 % lost, it does
// not.
func TestDownlinkEstimateFallsWithHeavyLoss(t *testing.T) {
	d := newDownlink()
	drive(d, &link{rate: 50_000_000, lossEvery: 3}, start, 3*time.Second, 10*time.Millisecond, 100*time.Millisecond)
	if est := d.GetTargetBitrate(); est > initialEstimate/2 {
		t.Fatalf("estimate %d after 3 s losing a third, want under %d", est, initialEstimate/2)
	}
	d = newDownlink()
	drive(d, &link{rate: 50_000_000, lossEvery: 100}, start, 3*time.Second, 10*time.Millisecond, 100*time.Millisecond)
	if est := d.GetTargetBitrate(); est < initialEstimate {
		t.Fatalf("estimate %d after 3 s losing 1 %%, want at least %d", est, initialEstimate)
	}
}

// Many packets between two reports (600: pion's GCC remembers 250 and
// counts the others as lost) are all accounted for; a report about
// packets never sent, or sent too long ago, changes nothing.
func TestDownlinkEstimateLongReportsAndUnknownPackets(t *testing.T) {
	d := newDownlink()
	now := drive(d, &link{rate: 50_000_000}, start, 3*time.Second, time.Millisecond, 600*time.Millisecond)
	est := d.GetTargetBitrate()
	if est < initialEstimate {
		t.Fatalf("estimate %d after reports of 600 packets each, all received", est)
	}
	lost := make([]int64, 500)
	d.feedback(feedbackFor(d.next+5000, lost), now)          // never sent
	d.feedback(feedbackFor(d.next-2*sentHistory, lost), now) // forgotten
	if d.lost != 0 || d.GetTargetBitrate() < est {
		t.Fatalf("reports of packets unknown: %d counted lost, estimate %d from %d", d.lost, d.GetTargetBitrate(), est)
	}
}

// Retransmissions (a packet not newer than the stream's newest) are
// sent within their share of the estimate, and dropped beyond it; new
// packets always go, each with the next transport-wide sequence number.
func TestDownlinkBoundsRetransmissions(t *testing.T) {
	d := newDownlink()
	info := &interceptor.StreamInfo{SSRC: 1, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 5}}}
	var written []uint16
	w := d.BindLocalStream(info, interceptor.RTPWriterFunc(func(h *rtp.Header, _ []byte, _ interceptor.Attributes) (int, error) {
		var ext rtp.TransportCCExtension
		if err := ext.Unmarshal(h.GetExtension(5)); err != nil {
			t.Fatal(err)
		}
		written = append(written, ext.TransportSequence)
		return 0, nil
	}))
	payload := make([]byte, 1200)
	write := func(seq uint16) {
		if _, err := w.Write(&rtp.Header{Version: 2, SSRC: 1, SequenceNumber: seq}, payload, nil); err != nil {
			t.Fatal(err)
		}
	}
	write(100)
	for i := range 1000 { // all at once: only the burst's worth goes
		write(99 - uint16(i))
	}
	burst := initialEstimate * rtxShare / 8 * rtxBurst.Seconds() / 1212
	if n := float64(len(written) - 1); n < burst-2 || n > burst+2 {
		t.Fatalf("%v retransmissions sent at once, want about %.0f", n, burst)
	}
	n := len(written)
	write(101)
	if len(written) != n+1 {
		t.Fatal("a new packet was dropped")
	}
	for i, s := range written {
		if s != uint16(i) {
			t.Fatalf("transport-wide sequence numbers %v", written)
		}
	}
}

// A packet is retransmitted at most rtxTries times, rtxRepeat apart,
// however often the client asks; and at the least estimate the
// retransmissions' budget still holds a packet of 1,200 bytes.
func TestDownlinkRetransmitsAPacketAFewTimes(t *testing.T) {
	d := newDownlink()
	n := &numbered{d: d}
	at := func(ms int) int64 { return start + int64(ms)*int64(time.Millisecond) }
	var got []int
	for ms := 0; ms < 2000; ms += 100 { // pion's NACK generator: every 100 ms
		if n.again(7, at(ms)) {
			got = append(got, ms)
		}
	}
	if len(got) != rtxTries || got[0] != 0 || got[1] != 200 || got[2] != 400 {
		t.Fatalf("packet 7 resent at %v ms, want 0, 200 and 400", got)
	}
	if !n.again(8, at(2000)) || !n.again(7+rtxHistory, at(2000)) {
		t.Fatal("other packets are not resent")
	}
	d.estimate.Store(minEstimate)
	if !d.retransmit(1212, start) {
		t.Fatal("at the least estimate a packet of 1,212 bytes can never be resent")
	}
}

// After a fall the estimate rises back to where the path carried
// traffic, waits there for the hold, then tries higher; a try that
// fails doubles the hold.
func TestDownlinkHoldsWhereItFell(t *testing.T) {
	d := newDownlink()
	d.ackedRate = 155_000
	d.estimate.Store(150_000)
	d.fell(150_000, start)
	at := func(s float64) int64 { return start + int64(s*float64(time.Second)) }
	for s := 1.0; s < 2.0; s += 0.1 {
		d.update(at(s))
		if est := d.GetTargetBitrate(); est > 155_000 {
			t.Fatalf("estimate %d during the hold, above where it fell from (155000)", est)
		}
	}
	if est := d.GetTargetBitrate(); est != 155_000 {
		t.Fatalf("estimate %d at the end of the hold, want 155000", est)
	}
	for s := 2.0; s < 4.0; s += 0.1 {
		d.update(at(s))
	}
	if est := d.GetTargetBitrate(); est < 165_000 {
		t.Fatalf("estimate %d 2 s after the hold, want it to try higher", est)
	}
	d.fell(150_000, at(4.1))
	if d.hold != 2*baseHold {
		t.Fatalf("hold %v after a failed try, want %v", d.hold, 2*baseHold)
	}
}

// Sending little (audio alone, a camera off) while the delay spikes for
// a moment (a stalled client), the estimate steps down, not to the
// little that was sent: a camera turned on again gets its layer back.
func TestDownlinkEstimateDoesNotCollapseToWhatLittleWasSent(t *testing.T) {
	d := newDownlink()
	// 48 kbit/s of audio through a 30 kbit/s path: the queue grows for
	// two seconds.
	drive(d, &link{rate: 30_000}, start, 2*time.Second, 200*time.Millisecond, 100*time.Millisecond)
	if est := d.GetTargetBitrate(); est < initialEstimate/8 {
		t.Fatalf("estimate %d bit/s after two seconds of delay while sending 48 kbit/s, want a few steps down from %d, not the audio's rate",
			est, initialEstimate)
	}
}

// A retransmission the client never acknowledges (one it had already,
// or one too old for its SRTP replay window) is not counted as lost.
func TestDownlinkDoesNotCountLostRetransmissions(t *testing.T) {
	d := newDownlink()
	base := d.sent1(1200, start, false)
	arrivals := make([]int64, 0, 80)
	for i := range 80 {
		rtx := i%2 == 1
		if i > 0 {
			d.sent1(1200, start+int64(i)*int64(time.Millisecond), rtx)
		}
		at := int64(0) // the retransmissions do not arrive
		if !rtx {
			at = start + int64(7*time.Second) + int64(i+20)*int64(time.Millisecond)
		}
		arrivals = append(arrivals, at)
	}
	d.feedback(feedbackFor(base, arrivals), start+int64(100*time.Millisecond))
	if d.lastLoss != 0 || d.GetTargetBitrate() < initialEstimate {
		t.Fatalf("loss %.2f, estimate %d: lost retransmissions counted", d.lastLoss, d.GetTargetBitrate())
	}
}

// A keyframe's burst after a pause (audio alone before it), paced at
// 2.5 times the estimate into a link with room beyond the estimate,
// queues at the link: the last report's arrivals show the link carries
// 290 kbit/s, more than the estimate, which does not fall to what
// arrived before the burst.
func TestDownlinkEstimateHoldsThroughAKeyframeBurst(t *testing.T) {
	d := newDownlink()
	d.estimate.Store(200_000)
	d.ackedRate, d.lastAcked, d.rateSince = 30_000, 30_000, start
	d.queue = float64(100 * time.Millisecond)
	d.reportRate = 290_000
	d.update(start + int64(100*time.Millisecond))
	if est := d.GetTargetBitrate(); est < 200_000 {
		t.Fatalf("estimate %d after a keyframe's burst arriving at 290 kbit/s, from 200000", est)
	}
	d.reportRate = 150_000 // the link carries less than the estimate: it falls
	d.lastFall = 0
	d.update(start + int64(700*time.Millisecond))
	if est := d.GetTargetBitrate(); est > 130_000 {
		t.Fatalf("estimate %d with arrivals at 150 kbit/s and a queue, want about 127500", est)
	}
}
