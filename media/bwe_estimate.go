package media

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// A subscriber's downlink is estimated from transport-wide congestion
// control feedback (draft-holmer-rmcat-transport-wide-cc-extensions):
// every packet the bridge sends on the connection carries a sequence
// number of the connection's own, and the client reports which arrived
// and when. The estimator is the bridge's own, not pion's GCC (see
// newDownlink for why); it works from two signals:
//
//   - queueing delay: each acknowledged packet's one-way delay (arrival
//     on the client's clock less departure on the bridge's) above the
//     least seen over the last 10 s or so; smoothed over feedback
//     reports, above overuseDelay the path is taken to be queueing, and
//     the estimate falls to 85 % of the rate the client acknowledged;
//   - loss: over lossyShare of the packets of a window (a second, see
//     lossSpan) lost, the estimate falls by half the share lost, but
//     not below 85 % of what arrives. Only packets sent since the last
//     fall count: the loss of a burst that overfilled a queue is what
//     that fall answered.
//
// With neither (delay under 10 ms, loss under 2 %) it rises by 8 % a
// second; with loss between 2 and 10 % and no queue (a radio link's
// random loss, not congestion's), by 4 %. It never falls more than once
// in reactionTime, so that the fall's effect shows before the next.
// Sending less than the path carries, the estimate rises past it; a
// switch to a higher layer, once the estimate has room for it, is the
// try, probed first with padding where the downlink has shown a limit
// (probe.go). So after a fall the estimate rises back to what the path
// carried and holds there (2 s, doubled after each failed try, up to a
// minute) before it tries higher, and a failed try falls back to where
// it held, not below.

const (
	// sentHistory is how many packets of a connection are remembered
	// for their feedback (a power of two): 1,024 covers a second at
	// 1,000 packets a second.
	sentHistory = 1024
	// overuseDelay is the smoothed queueing delay taken as congestion.
	overuseDelay = 60 * time.Millisecond
	// calmDelay is the queueing delay under which the estimate rises.
	calmDelay = 10 * time.Millisecond
	// reactionTime is the least time between two falls.
	reactionTime = 500 * time.Millisecond
	// baseWindow is how long the least one-way delay is remembered:
	// the base is the least of this window and the last.
	baseWindow = 5 * time.Second
	// maxEstimate bounds the estimate, bits/s.
	maxEstimate = 50_000_000
	// Loss is judged over windows of at least lossWindow packets and
	// lossSpan, or of lossWindowMax packets, whichever ends first. A
	// window much shorter than a second is too short to tell 3 % of
	// random loss (a radio link's) from 10 % (congestion): at a weak
	// subscriber's 120 packets a second, one window of 30 packets in
	// about 80 loses 4 or more of them at 3 % loss, and the estimate
	// fell on each (TestDownlinkEstimateToleratesRandomLoss). Over 120
	// packets, 12 lost at 3 % is 5 standard deviations out. A window
	// of lossWindow packets that lost over heavyShare is judged at once:
	// random loss of a few percent does not explain it.
	lossWindow    = 30
	lossWindowMax = 256
	lossSpan      = time.Second
)

// Loss shares: over lossyShare the estimate falls; under it, while no
// queue builds, it rises: at riseRate under calmShare, at half that
// between the two. Loss without a queue is the path's own (a radio
// link's) more often than congestion's: a bottleneck's queue fills
// before it drops, and the delay shows it. Loss that the estimate's own
// rate causes grows with the rate, and passes lossyShare.
const (
	lossyShare = 0.10
	heavyShare = 0.20
	calmShare  = 0.02
	riseRate   = 0.08 // a second
)

// sentPacket is what is remembered of a packet sent, by its
// transport-wide sequence number.
type sentPacket struct {
	at    int64 // unix nanoseconds; 0: none
	seq   uint16
	size  uint16 // RTP header and payload
	state uint8  // sent, acked, or reported lost
	// a retransmission: its loss is not counted (a receiver drops one
	// it has already, or one too old for its SRTP replay window, before
	// its feedback sees it; pion's NACK generator asks again and again
	// for what a paused stream lost)
	rtx bool
}

const (
	pktSent uint8 = iota
	pktAcked
	pktLost
)

// downlink is a connection's transport-wide sequence numbering and its
// bandwidth estimator: the pion interceptor of the bridge's peer
// connections.
type downlink struct {
	interceptor.NoOp
	estimate atomic.Int64 // bits/s
	pace     *pacer       // the connection's pacer (pace.go)

	mu   sync.Mutex
	next uint16 // the next transport-wide sequence number
	sent [sentHistory]sentPacket

	// delay: the one-way delays' base (least of this window and the
	// last) and the smoothed queueing delay
	baseCur, basePrev int64
	baseSince         int64
	haveBase          bool
	queue             float64 // nanoseconds, smoothed
	// loss over the current window, since lossSince
	acked, lost int
	lossSince   int64
	// acknowledged rate: bytes acknowledged since rateSince
	ackedBytes int
	rateSince  int64
	ackedRate  float64 // bits/s, smoothed; 0 until measured
	lastAcked  float64 // bits/s, over the last window alone
	// the rate at which the last report's packets arrived (on the
	// client's clock; 0: too few to say): while a queue stands at the
	// bottleneck, the bottleneck's rate
	reportRate float64
	lastLoss   float64 // the share lost in the last window judged
	lastFall   int64
	lastRise   int64
	// After a fall the estimate rises to where it fell from (ceiling),
	// then stays there for hold before it tries higher; hold doubles
	// each time a try fails (up to maxHold): each costs the subscriber
	// a queue (a probe's padding) or a freeze (a higher layer's
	// keyframe).
	ceiling float64
	hold    time.Duration
	crossed bool // the estimate went above ceiling since the last fall
	// retransmissions' budget: bytes, as of rtxAt
	rtxTokens float64
	rtxAt     int64
}

// newDownlink returns a connection's estimator, starting at
// initialEstimate.
//
// pion's GCC (interceptor v0.1.29: pkg/gcc with pkg/cc and pkg/twcc)
// was tried first and dropped. It remembers the last 250 packets sent
// only, and a report about a packet it has forgotten (more than 250
// sent between a packet and its report: at 1,000 packets a second, a
// quarter second of round trip and report interval) becomes an empty
// acknowledgement, which its loss estimator counts as lost: in the
// bridge's 50-listener benchmark (BenchmarkForward, 1,000 packets a
// second to each) it saw 20 to 77 % loss where at least 60 % arrived,
// and a quarter of the listeners' estimates never moved; fed reports
// of 260 packets or more, all received, its delay estimator never
// produced an estimate. It also costs about 0.9 µs and four
// allocations for every packet sent (BenchmarkDownlinkEstimation) and
// two goroutines per connection, and its pacer queues without bound.
func newDownlink() *downlink {
	d := &downlink{}
	d.estimate.Store(initialEstimate)
	d.pace = newPacer(d.GetTargetBitrate)
	return d
}

// Close stops the connection's pacer; the peer connection's Close calls
// it, and so does the session's.
func (d *downlink) Close() error {
	d.pace.close()
	return nil
}

// GetTargetBitrate returns the estimate, in bits/s.
func (d *downlink) GetTargetBitrate() int { return int(d.estimate.Load()) }

// BindLocalStream numbers the stream's packets and paces them (see
// pacer), if the transport-wide sequence number extension was
// negotiated for it: they are numbered as they leave the pacer, so that
// the feedback sees when they left.
func (d *downlink) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	var id uint8
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI {
			id = uint8(e.ID)
		}
	}
	if id == 0 {
		return w
	}
	n := &numbered{d: d, id: id, w: w, audio: isAudio(info)}
	n.out.n = n
	return n
}

// numbered is one outgoing stream's writer: what the retransmissions'
// budget lets through goes to the connection's pacer, and leaves it
// with the connection's next transport-wide sequence number (out).
type numbered struct {
	d     *downlink
	id    uint8
	w     interceptor.RTPWriter
	audio bool

	mu      sync.Mutex // a packet at a time into the pacer, in order
	started bool
	lastSeq uint16 // the stream's newest RTP sequence number written
	out     numberedOut
	rtxLog  *[rtxHistory]rtxEntry // made at the stream's first retransmission
}

// rtxEntry is what is remembered of a packet retransmitted: its RTP
// sequence number, when it was last, and how many times.
type rtxEntry struct {
	at  int64
	seq uint16
	n   uint8
}

// again reports whether packet seq may be retransmitted at now: not
// more than rtxTries times, nor twice within rtxRepeat. A client asks
// for what it misses until it arrives (pion's NACK generator every 100
// ms, whatever the round trip), and on a weak link, where the round
// trip is long and the retransmissions' budget small, the repeats would
// take the budget that the first requests for other packets need. n.mu
// is held.
func (n *numbered) again(seq uint16, now int64) bool {
	if n.rtxLog == nil {
		n.rtxLog = new([rtxHistory]rtxEntry)
	}
	e := &n.rtxLog[seq%rtxHistory]
	if e.at != 0 && e.seq == seq {
		if e.n >= rtxTries || now-e.at < int64(rtxRepeat) {
			return false
		}
		e.at, e.n = now, e.n+1
		return true
	}
	*e = rtxEntry{at: now, seq: seq, n: 1}
	return true
}

// numberedOut is a stream's writer out of the pacer; the pacer calls it
// under its lock.
type numberedOut struct {
	n       *numbered
	ext     [2]byte // the extension's bytes are the header's until written
	started bool
	lastSeq uint16 // the stream's newest RTP sequence number sent
}

// Retransmissions (what the NACK responder sends again: a packet not
// newer than the stream's newest) may take rtxShare of the estimate, in
// bursts of at most rtxBurst of it; beyond, they are dropped. A client
// that keeps asking for what its congested link lost (pion's NACK
// generator asks every 100 ms, without limit) would otherwise fill the
// link with them, and the estimate would fall to nothing.
const (
	rtxShare = 0.15
	rtxBurst = 200 * time.Millisecond
	// rtxLeast is the least burst, bytes: one packet of any size (at a
	// low estimate, 200 ms of 15 % is less than a keyframe's packet,
	// which could then never be sent again).
	rtxLeast = 1500
	// Each packet is retransmitted at most rtxTries times, rtxRepeat
	// apart; the last rtxHistory packets of a stream are remembered.
	rtxTries   = 3
	rtxRepeat  = 200 * time.Millisecond
	rtxHistory = 256
)

// Write drops a retransmission the budget has no room for (before the
// pacer: it would hold up what follows, only to be dropped), and
// hands the others to the pacer.
func (n *numbered) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	size, now := h.MarshalSize()+len(payload), time.Now().UnixNano()
	switch {
	case !n.started || int16(h.SequenceNumber-n.lastSeq) > 0:
		n.started, n.lastSeq = true, h.SequenceNumber
	case !n.again(h.SequenceNumber, now) || !n.d.retransmit(size, now):
		return size, nil // dropped: sent often enough, or no room for it
	}
	return n.d.pace.write(&n.out, n.audio, h, payload, a)
}

// Write numbers a packet leaving the pacer and sends it on.
func (o *numberedOut) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	rtx := o.started && int16(h.SequenceNumber-o.lastSeq) <= 0 // the pacer keeps the order
	if !rtx {
		o.started, o.lastSeq = true, h.SequenceNumber
	}
	seq := o.n.d.sent1(h.MarshalSize()+len(payload), time.Now().UnixNano(), rtx)
	o.ext = [2]byte{byte(seq >> 8), byte(seq)}
	if err := h.SetExtension(o.n.id, o.ext[:]); err != nil {
		return 0, err
	}
	return o.n.w.Write(h, payload, a)
}

// sent1 records a packet sent (a retransmission if rtx) and returns
// its sequence number.
func (d *downlink) sent1(size int, now int64, rtx bool) uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	seq := d.next
	d.next++
	d.sent[seq%sentHistory] = sentPacket{at: now, seq: seq, size: uint16(min(size, 0xffff)), rtx: rtx}
	return seq
}

// Holds after a fall: see downlink.hold.
const (
	baseHold = 2 * time.Second
	maxHold  = 60 * time.Second
)

// fell notes a fall of the estimate to est at now: a higher layer tried
// since the last fall failed, and the next try waits longer.
func (d *downlink) fell(est float64, now int64) {
	switch {
	case d.crossed:
		d.hold = min(d.hold*2, maxHold)
	case d.hold == 0 || now-d.lastFall > int64(d.hold+30*time.Second):
		d.hold = baseHold
	}
	d.ceiling = max(est, d.ackedRate, d.lastAcked)
	d.crossed = false
	d.lastFall, d.lastRise = now, 0
	d.acked, d.lost, d.lossSince = 0, 0, now // a new loss window
}

// retransmit reports whether a retransmission of size bytes fits the
// retransmissions' budget now, and takes it from the budget if so.
func (d *downlink) retransmit(size int, now int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	rate := float64(d.estimate.Load()) * rtxShare / 8 // bytes/s
	burst := max(rate*rtxBurst.Seconds(), rtxLeast)
	if d.rtxAt != 0 {
		d.rtxTokens += rate * time.Duration(now-d.rtxAt).Seconds()
	} else {
		d.rtxTokens = burst
	}
	d.rtxTokens = min(d.rtxTokens, burst)
	d.rtxAt = now
	if d.rtxTokens < float64(size) {
		return false
	}
	d.rtxTokens -= float64(size)
	return true
}

// BindRTCPReader reads the client's transport-wide feedback.
func (d *downlink) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if a == nil {
			a = make(interceptor.Attributes)
		}
		pkts, perr := a.GetRTCPPackets(b[:n])
		if perr != nil {
			return n, a, nil // unreadable: the reader's caller finds out
		}
		now := time.Now().UnixNano()
		for _, p := range pkts {
			if fb, ok := p.(*rtcp.TransportLayerCC); ok {
				d.feedback(fb, now)
			}
		}
		return n, a, nil
	})
}

// feedback takes a transport-wide feedback report received at now.
func (d *downlink) feedback(fb *rtcp.TransportLayerCC, now int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	seq := fb.BaseSequenceNumber
	arrival := int64(fb.ReferenceTime) * int64(64*time.Millisecond)
	deltas := fb.RecvDeltas
	left := int(fb.PacketStatusCount)
	var first, last int64 // arrivals of the report's first and last packets known
	var bytes int         // after the first
	n := 0
	status := func(received bool) {
		if left <= 0 {
			return
		}
		left--
		s := &d.sent[seq%sentHistory]
		known := s.at != 0 && s.seq == seq
		seq++
		if received {
			if len(deltas) == 0 {
				return // malformed: no time for it
			}
			arrival += deltas[0].Delta * int64(time.Microsecond)
			deltas = deltas[1:]
			if known {
				if n == 0 {
					first = arrival
				} else {
					bytes += int(s.size)
				}
				last = arrival
				n++
			}
			if known && s.state != pktAcked {
				if s.state == pktLost && d.counts(s) && d.lost > 0 { // it came after all
					d.lost--
				}
				if d.counts(s) {
					d.acked++
				}
				s.state = pktAcked
				d.ackedBytes += int(s.size)
				d.delay(arrival-s.at, now)
			}
			return
		}
		if known && s.state == pktSent {
			s.state = pktLost
			if d.counts(s) {
				d.lost++
			}
		}
	}
	for _, c := range fb.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			for range c.RunLength {
				status(c.PacketStatusSymbol != rtcp.TypeTCCPacketNotReceived)
			}
		case *rtcp.StatusVectorChunk:
			for _, sym := range c.SymbolList { // one bit or two: 0 is not received
				status(sym != rtcp.TypeTCCPacketNotReceived)
			}
		}
	}
	d.reportRate = 0
	if span := time.Duration(last - first); n >= 4 && span >= reportSpan {
		d.reportRate = float64(bytes*8) / span.Seconds()
	}
	d.update(now)
}

// counts reports whether packet s counts in the loss share: a first
// transmission (see sentPacket.rtx) sent since the last fall (the loss
// of what was sent before it, a burst that overfilled a queue, is what
// the fall answered).
func (d *downlink) counts(s *sentPacket) bool { return !s.rtx && s.at >= d.lastFall }

// reportSpan is the least time over which a report's arrivals give a
// rate.
const reportSpan = 50 * time.Millisecond

// delay takes an acknowledged packet's one-way delay (on two clocks:
// only its changes mean anything).
func (d *downlink) delay(owd, now int64) {
	switch {
	case !d.haveBase:
		d.baseCur, d.basePrev, d.baseSince, d.haveBase = owd, owd, now, true
	case now-d.baseSince > int64(baseWindow):
		d.basePrev, d.baseCur, d.baseSince = d.baseCur, owd, now
	}
	d.baseCur = min(d.baseCur, owd)
	q := float64(owd - min(d.baseCur, d.basePrev))
	d.queue += (q - d.queue) / 8
}

// update moves the estimate after a feedback report.
func (d *downlink) update(now int64) {
	if d.rateSince == 0 {
		d.rateSince = now
	}
	if el := now - d.rateSince; el >= int64(250*time.Millisecond) {
		r := float64(d.ackedBytes*8) / time.Duration(el).Seconds()
		d.lastAcked = r
		if d.ackedRate == 0 {
			d.ackedRate = r
		} else {
			d.ackedRate += (r - d.ackedRate) / 2
		}
		d.ackedBytes, d.rateSince = 0, now
	}
	est := float64(d.estimate.Load())
	if d.lossSince == 0 {
		d.lossSince = now
	}
	var loss float64
	counted := d.acked + d.lost
	judged := counted >= lossWindowMax ||
		counted >= lossWindow && (now-d.lossSince >= int64(lossSpan) || float64(d.lost) > heavyShare*float64(counted))
	if judged {
		loss = float64(d.lost) / float64(counted)
		d.acked, d.lost, d.lossSince = 0, 0, now
		d.lastLoss = loss
	}
	// What the path delivers now: the smoothed rate lags a step up
	// (a higher layer just tried), and the path carried the last window;
	// and while a queue stands at the bottleneck (a keyframe crossing a
	// weak link, sent faster than the link: pacing sends at up to 2.5
	// times the estimate), the last report's arrivals come at the
	// bottleneck's rate, when the windows' rates, mostly before the
	// burst, say little of the path.
	arriving := max(d.ackedRate, d.lastAcked, d.reportRate)
	fall := est
	if now-d.lastFall >= int64(reactionTime) {
		if d.queue > float64(overuseDelay) && arriving > 0 {
			// What arrives says little of the path when far less than
			// the estimate was sent (a camera off, audio alone) and
			// nothing is lost: then at most halving a step, so that a
			// moment's delay (a stalled client) does not leave the
			// estimate at the audio's rate, from which it climbs back
			// only 8 % a second. A bottleneck that drops packets is
			// followed at once, as before.
			target := 0.85 * arriving
			if arriving < est/4 && d.lastLoss < lossyShare {
				target = max(target, est/2)
			}
			fall = min(fall, target)
		}
		if judged && loss > lossyShare {
			// Not below what arrives: the path carries that.
			fall = min(fall, max(est*(1-loss/2), 0.85*arriving))
		}
	}
	if fall < est && d.crossed {
		// A try above where the estimate last held failed (a higher
		// layer, sent for the first time, with its keyframe): what
		// arrived measures what was sent before the try, not the path,
		// and the path carried that; so back to where it held, once.
		// If the path has changed, the next fall goes by what arrives.
		fall = max(fall, min(d.ceiling, est))
	}
	switch {
	case fall < est:
		est = fall
		d.fell(est, now)
	case d.queue < float64(calmDelay) && d.lastLoss < lossyShare && now-d.lastFall >= int64(time.Second):
		if d.lastRise != 0 {
			el := min(max(time.Duration(now-d.lastRise).Seconds(), 0), 1)
			r := riseRate
			if d.lastLoss >= calmShare {
				r /= 2
			}
			rise := est * (1 + r*el)
			if now < d.lastFall+int64(d.hold) && rise > d.ceiling { // not yet above where it last fell
				rise = max(est, d.ceiling)
			}
			d.crossed = d.crossed || rise > d.ceiling
			est = rise
		}
		d.lastRise = now
	default:
		d.lastRise = 0
	}
	d.estimate.Store(int64(min(max(est, minEstimate), maxEstimate)))
}

// downlinkFactory makes the downlink interceptor of each new peer
// connection and hands it to made.
type downlinkFactory struct{ made func(*downlink) }

// NewInterceptor implements interceptor.Factory.
func (f downlinkFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	d := newDownlink()
	if f.made != nil {
		f.made(d)
	}
	return d, nil
}
