package media

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/conference"
)

// Layer is one quality of a publisher's video. A publisher sending
// simulcast sends up to three, named by their RTP stream IDs (RIDs): "q"
// (LayerLow, typically a quarter of the full resolution), "h" (LayerMid,
// half) and "f" (LayerHigh, full); "0", "1" and "2" name them too. Video
// sent without simulcast is one layer, whatever the subscriber asks for.
type Layer int

// The layers, lowest first.
const (
	LayerLow Layer = iota
	LayerMid
	LayerHigh
)

const numLayers = int(LayerHigh) + 1

// ErrBadLayer is returned by Session.SetMaxLayer for a layer or a track
// kind that has none.
var ErrBadLayer = errors.New("media: no such video layer")

// String returns the layer's usual RID.
func (l Layer) String() string {
	switch l {
	case LayerLow:
		return "q"
	case LayerMid:
		return "h"
	case LayerHigh:
		return "f"
	case LayerPaused:
		return "paused"
	}
	return "invalid"
}

// layerOf returns the layer a RID names; ok is false for one the bridge
// does not know.
func layerOf(rid string) (Layer, bool) {
	switch strings.ToLower(rid) {
	case "", "q", "0":
		return LayerLow, true
	case "h", "1":
		return LayerMid, true
	case "f", "2":
		return LayerHigh, true
	}
	return 0, false
}

// staleLayer is how long a layer may send nothing before subscribers
// are moved off it (a browser pauses its upper layers when its uplink is
// short).
const staleLayer = 2 * time.Second

// layer is one RID of a published video track: the publisher's stream
// and when it last sent.
type layer struct {
	idx      Layer
	remote   *webrtc.TrackRemote
	lastSeen atomic.Int64 // unix nanoseconds
	lastPLI  atomic.Int64
	meter    rateMeter // its bitrate
}

// stale reports whether the layer has sent nothing for staleLayer.
func (l *layer) stale(now int64) bool { return now-l.lastSeen.Load() > int64(staleLayer) }

// addLayer adds a simulcast layer to a video forward and starts reading
// it; false if the forward has stopped or has the layer already.
func (f *forward) addLayer(remote *webrtc.TrackRemote) bool {
	idx, ok := layerOf(remote.RID())
	if !ok {
		return false
	}
	l := &layer{idx: idx, remote: remote}
	f.layerMu.Lock()
	defer f.layerMu.Unlock()
	select {
	case <-f.stopped:
		return false
	default:
	}
	if !f.layers[idx].CompareAndSwap(nil, l) {
		return false
	}
	if f.layersRunning == 0 {
		go func() {
			<-f.stopped
			f.layerMu.Lock()
			defer f.layerMu.Unlock()
			for i := range f.layers {
				if l := f.layers[i].Load(); l != nil {
					_ = l.remote.SetReadDeadline(time.Now())
				}
			}
		}()
	}
	f.layersRunning++
	f.layersRan = true
	f.owner.r.b.wg.Go(func() { f.readLayer(l) })
	return true
}

// waitLayers returns when the forward's layers' readers have ended.
func (f *forward) waitLayers() {
	f.layerMu.Lock()
	ran := f.layersRan
	f.layerMu.Unlock()
	if ran {
		<-f.ended
	}
}

// readLayer forwards one layer's packets to the subscribers that take it
// until the track ends or the forward stops; the layers' last reader
// ends the forward.
func (f *forward) readLayer(l *layer) {
	defer func() {
		f.stop()
		f.layerMu.Lock()
		f.layersRunning--
		last := f.layersRunning == 0
		f.layerMu.Unlock()
		if last {
			close(f.ended)
		}
	}()
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := l.remote.Read(buf)
		if err != nil {
			return
		}
		select {
		case <-f.stopped:
			return
		default:
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		l.meter.add(n)
		f.route(l, &pkt, time.Now().UnixNano())
	}
}

// route hands a packet of layer l to every subscriber. Only a packet
// with a payload keeps the layer alive: a browser sends bandwidth-probe
// padding (packets of padding alone) on a layer it has paused, and a
// paused layer taken for a live one keeps its subscribers waiting for a
// keyframe that never comes.
func (f *forward) route(l *layer, pkt *rtp.Packet, now int64) {
	if len(pkt.Payload) > 0 {
		l.lastSeen.Store(now)
	}
	var d vp8Desc
	valid := false
	if f.vp8 && len(pkt.Payload) > 0 {
		var err error
		d, err = parseVP8(pkt.Payload)
		valid = err == nil
	}
	downs := f.downs.Load()
	if downs == nil {
		return
	}
	for _, dt := range *downs {
		dt.write(l, pkt, &d, valid, now)
	}
}

// best returns the layer a subscriber allowed up to max should receive
// now: the highest at most max that is sending, or the lowest sending
// if none is; -1 if none is sending.
func (f *forward) best(max Layer, now int64) Layer {
	lowest := Layer(-1)
	for i := numLayers - 1; i >= 0; i-- {
		l := f.layers[i].Load()
		if l == nil || l.stale(now) {
			continue
		}
		if l.idx <= max {
			return l.idx
		}
		lowest = l.idx
	}
	return lowest
}

// requestLayerKeyframe sends the publisher a PLI for layer i, at most
// once per interval.
func (f *forward) requestLayerKeyframe(i Layer) {
	if i < 0 || int(i) >= numLayers {
		return
	}
	l := f.layers[i].Load()
	if l == nil {
		return
	}
	now := time.Now().UnixNano()
	last := l.lastPLI.Load()
	if now-last < int64(f.interval) || !l.lastPLI.CompareAndSwap(last, now) {
		return
	}
	_ = f.owner.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(l.remote.SSRC())}})
}

// addDown and removeDown change the subscribers' tracks (copy on write:
// route reads them without a lock).
func (f *forward) addDown(d *downTrack) {
	f.layerMu.Lock()
	defer f.layerMu.Unlock()
	var next []*downTrack
	if cur := f.downs.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, d)
	f.downs.Store(&next)
}

func (f *forward) removeDown(d *downTrack) {
	f.layerMu.Lock()
	defer f.layerMu.Unlock()
	cur := f.downs.Load()
	if cur == nil {
		return
	}
	next := make([]*downTrack, 0, len(*cur))
	for _, x := range *cur {
		if x != d {
			next = append(next, x)
		}
	}
	f.downs.Store(&next)
}

// downTrack is what one subscriber is sent of a published video track:
// one outgoing stream, of the layer chosen for it, switched at the
// target layer's keyframes, its numbering rewritten to stay continuous.
// It is the webrtc.TrackLocal on the subscriber's sender.
type downTrack struct {
	f        *forward
	id       string
	streamID string
	codec    webrtc.RTPCodecCapability

	mu      sync.Mutex
	ws      webrtc.TrackLocalWriter // nil until bound
	ssrc    uint32
	pt      uint8
	max     Layer
	current Layer // -1 before the first packet
	// after a receiver report of heavy loss: at most lossCap until
	// lossUntil (unix nanoseconds)
	lossCap   Layer
	lossUntil int64
	// the allocation's cap for the subscriber's downlink (LayerPaused:
	// nothing), and since when the allocation has had no room for the
	// video being sent (0: it has)
	alloc      Layer
	shortSince int64
	// the subscriber's downlink estimator (nil: its keyframe requests
	// are never held), the round trip its receiver reports give
	// (nanoseconds; 0: not known yet), and the keyframe last sent: when
	// it began, its source timestamp and its bytes so far
	est      *downlink
	rtt      int64
	keyAt    int64
	keyTS    uint32
	keyBytes int
	rw       rewriter
	probe    probe // a switch up being tried (probe.go)
	hdr      rtp.Header
	exts     [4]rtp.Extension // backing for hdr.Extensions: interceptors add theirs
	buf      [1600]byte
}

func newDownTrack(f *forward, max Layer) *downTrack {
	return &downTrack{f: f, id: f.trackID, streamID: string(f.owner.pid), codec: f.codec, max: max, current: -1, alloc: LayerHigh,
		rw: rewriter{clockRate: f.codec.ClockRate}}
}

// Bind is called by pion when the subscriber's connection negotiated the
// track: it picks the codec and keeps where to write.
func (d *downTrack) Bind(c webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, p := range c.CodecParameters() {
		if strings.EqualFold(p.MimeType, d.codec.MimeType) {
			d.mu.Lock()
			d.ws, d.ssrc, d.pt = c.WriteStream(), uint32(c.SSRC()), uint8(p.PayloadType)
			d.mu.Unlock()
			return p, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

// Unbind is called by pion when the track is taken off the connection.
func (d *downTrack) Unbind(webrtc.TrackLocalContext) error {
	d.mu.Lock()
	d.ws = nil
	d.mu.Unlock()
	return nil
}

// ID returns the track's ID: the publisher's participant ID and kind.
func (d *downTrack) ID() string { return d.id }

// RID returns "": a subscriber is sent one layer.
func (d *downTrack) RID() string { return "" }

// StreamID returns the publisher's participant ID.
func (d *downTrack) StreamID() string { return d.streamID }

// Kind returns video.
func (d *downTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeVideo }

// Loss: a subscriber whose receiver reports more than lossyFraction of
// the packets sent lost (of 256, as RTCP counts) is moved one layer down
// from the one it receives, for lossHold; then it may go up again.
const (
	lossyFraction = 26 // 10 %
	lossHold      = 10 * time.Second
)

// receiverReport takes the share of packets of stream ssrc the
// subscriber reports lost.
func (d *downTrack) receiverReport(ssrc uint32, fractionLost uint8, now int64) {
	if fractionLost < lossyFraction {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ssrc != d.ssrc {
		return
	}
	if d.current > LayerLow && (now >= d.lossUntil || d.current-1 < d.lossCap) {
		d.lossCap = d.current - 1
	}
	d.lossUntil = now + int64(lossHold)
}

// limit returns the highest layer the subscriber may get now;
// LayerPaused if it is to get none.
func (d *downTrack) limit(now int64) Layer {
	l := min(d.max, d.alloc)
	if now < d.lossUntil {
		l = min(l, d.lossCap)
	}
	if d.alloc == LayerPaused {
		return LayerPaused
	}
	return max(l, LayerLow)
}

// pauseAfter is how long the allocation must find no room for a video
// being sent before it is paused. A keyframe lifts its layer's
// measured rate for up to a second (the rate is measured over the last
// two allocIntervals), more so on a low layer with a camera's
// keyframes; paused then, the video could resume only at another
// keyframe, which would lift the rate again.
const pauseAfter = 2 * time.Second

// allocate takes the allocation's layer for the subscriber at now: as
// setAlloc, except that a video being sent is paused only once the
// allocation has had no room for it for pauseAfter; until then it is
// sent its lowest layer.
func (d *downTrack) allocate(l Layer, now int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case l != LayerPaused || d.current < 0:
		d.shortSince = 0
	case d.shortSince == 0:
		d.shortSince = now
		l = LayerLow
	case now-d.shortSince < int64(pauseAfter):
		l = LayerLow
	}
	d.alloc = d.probeFor(l, now)
}

// maxLayer returns the highest layer SetMaxLayer allows.
func (d *downTrack) maxLayer() Layer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.max
}

// setMax changes the highest layer the subscriber is sent.
func (d *downTrack) setMax(max Layer) {
	d.mu.Lock()
	d.max = max
	d.mu.Unlock()
}

// layer returns the layer being sent, -1 if none.
func (d *downTrack) layer() Layer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current
}

// requestKeyframe asks the publisher for a keyframe of the layer the
// subscriber receives, or of the one it is about to.
func (d *downTrack) requestKeyframe() {
	d.mu.Lock()
	i := d.current
	if i < 0 {
		now := time.Now().UnixNano()
		if lim := d.limit(now); lim != LayerPaused {
			i = d.f.best(lim, now)
		}
	}
	d.mu.Unlock()
	d.f.requestLayerKeyframe(i)
}

// Keyframe requests held: a subscriber that cannot decode asks for a
// keyframe again and again (a browser about every 500 ms). On a weak
// link a keyframe takes longer than that to arrive, and passing on
// every request sends keyframe after keyframe, more than the link
// carries, so that none arrives whole. While the keyframe last sent to
// the subscriber may still be crossing its link (its size at a third
// of the downlink estimate, plus the round trip, at most keyHoldMax),
// the subscriber's requests are not passed on. This holds only where a
// keyframe takes keyHoldFrom or more to cross the link at the
// estimate: on a fast link a request repeated means the keyframe was
// lost, and the next is needed at once.
const (
	keyHoldFrom = 100 * time.Millisecond
	keyHoldMax  = 3 * time.Second
	// keyHoldRTT is the round trip assumed before the subscriber's
	// receiver reports give one.
	keyHoldRTT = 100 * time.Millisecond
)

// keyframeOnItsWay reports whether the keyframe last sent to the
// subscriber may still be crossing its link at now. d.mu is held.
func (d *downTrack) keyframeOnItsWay(now int64) bool {
	if d.est == nil || d.keyAt == 0 || d.current < 0 {
		return false
	}
	est := float64(d.est.GetTargetBitrate())
	bits := float64(d.keyBytes * 8)
	if est <= 0 || bits/est < keyHoldFrom.Seconds() {
		return false
	}
	rtt := d.rtt
	if rtt <= 0 {
		rtt = int64(keyHoldRTT)
	}
	window := min(time.Duration(bits/(est/3)*float64(time.Second))+time.Duration(rtt), keyHoldMax)
	return now < d.keyAt+int64(window)
}

// subscriberKeyframeRequest takes a keyframe request (PLI or FIR) of the
// subscriber's, received at now: it passes it on to the publisher
// unless the keyframe last sent may still be on its way (see
// keyHoldFrom). It reports whether it passed it on.
func (d *downTrack) subscriberKeyframeRequest(now int64) bool {
	d.mu.Lock()
	held := d.keyframeOnItsWay(now)
	d.mu.Unlock()
	if held {
		return false
	}
	d.requestKeyframe()
	return true
}

// roundTrip takes a receiver report's round trip time, nanoseconds.
func (d *downTrack) roundTrip(rtt int64) {
	d.mu.Lock()
	d.rtt = rtt
	d.mu.Unlock()
}

// write sends the subscriber a packet of layer l, if it is the layer it
// receives, or the first packet of a keyframe of the one it should
// (only then does it switch). desc is the packet's VP8 descriptor if
// valid.
func (d *downTrack) write(l *layer, pkt *rtp.Packet, desc *vp8Desc, valid bool, now int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ws == nil {
		return
	}
	lim := d.limit(now)
	if lim == LayerPaused { // the subscriber's downlink has no room for it
		d.current = -1 // resumed at a keyframe
		return
	}
	target := d.f.best(lim, now)
	switch {
	case l.idx == d.current:
		if target != d.current && target >= 0 {
			d.f.requestLayerKeyframe(target)
		}
	case l.idx == target && (valid && desc.keyframe || d.f.single):
		d.rw.switchLayer()
		d.current = l.idx
	default:
		if l.idx == target {
			d.f.requestLayerKeyframe(target)
		}
		return
	}
	if len(pkt.Payload) == 0 { // padding only
		d.rw.skip(pkt.SequenceNumber)
		return
	}
	seq, ts, ok := d.rw.next(pkt.SequenceNumber, pkt.Timestamp, now)
	if !ok {
		return
	}
	switch {
	case valid && desc.keyframe:
		d.keyAt, d.keyTS, d.keyBytes = now, pkt.Timestamp, pkt.MarshalSize()
	case d.keyAt != 0 && pkt.Timestamp == d.keyTS:
		d.keyBytes += pkt.MarshalSize()
	}
	payload := pkt.Payload
	if valid && (desc.hasPic || desc.hasTL0) && len(payload)+1 <= len(d.buf) {
		var pic uint16
		var tl0 uint8
		if desc.hasPic {
			pic = d.rw.picture(desc.pic, desc.pic15)
		}
		if desc.hasTL0 {
			tl0 = d.rw.tl0(desc.tl0)
		}
		payload = d.buf[:putVP8(d.buf[:], payload, desc, pic, tl0)]
	}
	d.hdr = rtp.Header{Version: 2, Marker: pkt.Marker, PayloadType: d.pt, SequenceNumber: seq, Timestamp: ts, SSRC: d.ssrc,
		CSRC: pkt.CSRC, Extensions: d.exts[:0]}
	_, _ = d.ws.WriteRTP(&d.hdr, payload)
	if pkt.Marker {
		d.padProbe(now)
	}
}

// layerKey names a publisher's video track: its participant and kind.
type layerKey struct {
	publisher conference.ParticipantID
	kind      string
}

// SetMaxLayer sets the highest layer of publisher's video (kind
// KindVideo or KindScreen) the session's participant is sent, now and
// if the publisher publishes it later; the default is LayerHigh. The
// bridge sends the highest layer at most max that the publisher is
// sending (the lowest it sends if none is that low), switching at that
// layer's next keyframe, which it requests. What the subscriber's
// downlink has room for (the Allocator's share of it) may cap it lower,
// or pause it; max stays the upper bound. A publisher sending without
// simulcast has one layer, sent whatever max is. It returns an error
// wrapping ErrBadLayer for another kind or layer, ErrClosed once the
// session has ended.
func (s *Session) SetMaxLayer(publisher conference.ParticipantID, kind string, max Layer) error {
	if kind != KindVideo && kind != KindScreen {
		return fmt.Errorf("%w: %q tracks have no layers", ErrBadLayer, kind)
	}
	if max < LayerLow || max > LayerHigh {
		return fmt.Errorf("%w: %d", ErrBadLayer, int(max))
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.maxLayers[layerKey{publisher, kind}] = max
	var changed []*downTrack
	for f, d := range s.downs {
		if f.owner.pid == publisher && f.kind == kind {
			d.setMax(max)
			changed = append(changed, d)
		}
	}
	s.mu.Unlock()
	for _, d := range changed {
		d.requestKeyframe() // of the layer to switch to
	}
	return nil
}

// SentLayer returns the layer of publisher's video (kind KindVideo or
// KindScreen) the session's participant is being sent; ok is false if it
// is sent none yet, or none now (its downlink has no room for it).
func (s *Session) SentLayer(publisher conference.ParticipantID, kind string) (l Layer, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for f, d := range s.downs {
		if f.owner.pid == publisher && f.kind == kind {
			if l := d.layer(); l >= 0 {
				return l, true
			}
		}
	}
	return 0, false
}

// reportRoundTrip returns the round trip a reception report gives, in
// nanoseconds, received at now (RFC 3550, 6.4.1: now less the time of
// the sender report it answers less the receiver's delay since, in
// NTP's middle 32 bits); ok is false if it answers none, or the result
// is not a plausible round trip.
func reportRoundTrip(rr rtcp.ReceptionReport, now time.Time) (int64, bool) {
	if rr.LastSenderReport == 0 {
		return 0, false
	}
	ntp := uint64(now.Unix()+2_208_988_800)<<32 | uint64(now.Nanosecond())<<32/uint64(time.Second)
	rtt := int32(uint32(ntp>>16) - rr.LastSenderReport - rr.Delay)
	if rtt < 0 || rtt > 10<<16 { // over 10 s
		return 0, false
	}
	return int64(rtt) * int64(time.Second) >> 16, true
}
