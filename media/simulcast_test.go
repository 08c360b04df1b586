package media

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/conference"
)

// simRIDs are the simulcast publisher's layers, lowest first; the last
// byte of each of its packets' payload is its layer's RID, and its
// keyframes carry the layer's width.
var simRIDs = [numLayers]string{"q", "h", "f"}

var simWidths = [numLayers]uint16{320, 640, 1280}

// simPublisher is a pion client publishing one video track as three
// simulcast layers, as a browser does: each layer its own SSRC, its
// packets naming their MID and RID in header extensions, VP8 frames of
// two packets 30 times a second with 15-bit picture IDs and TL0PICIDX,
// a keyframe every 3 s and at once when the bridge asks (PLI). Each
// layer numbers its packets, timestamps and pictures from its own start
// (one so that its sequence numbers and one so that its picture IDs
// wrap soon).
type simPublisher struct {
	t      testing.TB
	pc     *webrtc.PeerConnection
	sender *webrtc.RTPSender
	tracks [numLayers]*webrtc.TrackLocalStaticRTP

	readers sync.WaitGroup // of the bridge's RTCP
	body    [numLayers]int // payload bytes per packet of each layer (0: 100)
	// payload bytes of each layer's keyframes (0: two packets as other
	// frames); a layer with camera-sized keyframes sends them as a
	// browser does, at its start and when asked, not every 3 s
	keyBody [numLayers]int

	mu      sync.Mutex
	plis    [numLayers]int
	wantKey [numLayers]bool
}

func newSimPublisher(t testing.TB, pc *webrtc.PeerConnection) *simPublisher {
	p := &simPublisher{t: t, pc: pc}
	for i, rid := range simRIDs {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, KindVideo, "camera", webrtc.WithRTPStreamID(rid))
		if err != nil {
			t.Fatal(err)
		}
		p.tracks[i] = tr
	}
	sender, err := pc.AddTrack(p.tracks[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range p.tracks[1:] {
		if err := sender.AddEncoding(tr); err != nil {
			t.Fatal(err)
		}
	}
	p.sender = sender
	return p
}

// pliCount returns how many keyframe requests layer i has had.
func (p *simPublisher) pliCount(i Layer) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.plis[i]
}

// stopReading ends the reading of the bridge's RTCP; the client calls
// it before closing its connection (pion v3 races a simulcast RTCP read
// with the sender's stop).
func (p *simPublisher) stopReading() {
	for _, rid := range simRIDs {
		_ = p.sender.SetReadDeadlineSimulcast(time.Now(), rid)
	}
	p.readers.Wait()
}

// start sends the layers and reads the bridge's RTCP until c closes.
func (p *simPublisher) start(c *client) {
	for i, rid := range simRIDs {
		p.readers.Go(func() {
			for {
				pkts, _, err := p.sender.ReadSimulcastRTCP(rid)
				if err != nil {
					return
				}
				for _, pkt := range pkts {
					if _, ok := pkt.(*rtcp.PictureLossIndication); ok {
						p.mu.Lock()
						p.plis[i]++
						p.wantKey[i] = true
						p.mu.Unlock()
					}
				}
			}
		})
	}
	c.wg.Go(func() { p.send(c.stop) })
}

func (p *simPublisher) send(stop chan struct{}) {
	seq := [numLayers]uint16{65000, 1, 30000}
	ts := [numLayers]uint32{1e9, 5, 4294000000}
	pic := [numLayers]uint16{100, 20000, 32700}
	tl0 := [numLayers]uint8{250, 0, 128}
	var midID, ridID uint8
	var mid string
	tick := time.NewTicker(33 * time.Millisecond)
	defer tick.Stop()
	for frame := 0; ; frame++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if mid == "" { // known once negotiated
			for _, tr := range p.pc.GetTransceivers() {
				if tr.Sender() == p.sender {
					mid = tr.Mid()
				}
			}
			for _, h := range p.sender.GetParameters().HeaderExtensions {
				switch h.URI {
				case sdp.SDESMidURI:
					midID = uint8(h.ID)
				case sdp.SDESRTPStreamIDURI:
					ridID = uint8(h.ID)
				}
			}
			if mid == "" || midID == 0 || ridID == 0 {
				mid = ""
				continue
			}
		}
		for i := range numLayers {
			p.mu.Lock()
			key := frame%90 == 0 && p.keyBody[i] == 0 || p.wantKey[i] || frame == 0
			p.wantKey[i] = false
			p.mu.Unlock()
			body := make([]byte, cmp.Or(p.body[i], 100))
			body[len(body)-1] = simRIDs[i][0]
			parts, left := 2, 0
			if key && p.keyBody[i] > 0 { // camera-sized: in packets of 1,100 bytes
				parts, left = (p.keyBody[i]+1099)/1100, p.keyBody[i]
			}
			for part := range parts {
				if left > 0 {
					body = make([]byte, min(left, 1100))
					body[len(body)-1] = simRIDs[i][0]
					left -= len(body)
				}
				h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq[i], Timestamp: ts[i], Marker: part == parts-1}
				_ = h.SetExtension(midID, []byte(mid))
				_ = h.SetExtension(ridID, []byte(simRIDs[i]))
				payload := vp8Payload(pic[i], tl0[i], part == 0, key, simWidths[i], simWidths[i]*9/16, body)
				_ = p.tracks[i].WriteRTP(&rtp.Packet{Header: h, Payload: payload})
				seq[i]++
			}
			ts[i] += 3000
			pic[i] = (pic[i] + 1) & 0x7fff
			tl0[i]++
		}
	}
}

// received is a packet of simulcast video as a subscriber got it.
type received struct {
	seq   uint16
	ts    uint32
	layer byte // the RID its payload ends with
	desc  vp8Desc
}

// recorder keeps the video packets a subscriber receives of one track.
type recorder struct {
	key  string
	mu   sync.Mutex
	pkts []received
}

func (r *recorder) onRTP(key string, pkt *rtp.Packet) {
	if key != r.key || len(pkt.Payload) == 0 {
		return
	}
	d, err := parseVP8(pkt.Payload)
	if err != nil {
		return
	}
	r.mu.Lock()
	r.pkts = append(r.pkts, received{pkt.SequenceNumber, pkt.Timestamp, pkt.Payload[len(pkt.Payload)-1], d})
	r.mu.Unlock()
}

func (r *recorder) snapshot() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.pkts...)
}

// count returns how many packets of layer rid were received.
func (r *recorder) count(rid byte) int {
	n := 0
	for _, p := range r.snapshot() {
		if p.layer == rid {
			n++
		}
	}
	return n
}

// inOrder sorts packets by sequence number, unwrapped from the first.
func inOrder(pkts []received) []received {
	out := slices.Clone(pkts)
	slices.SortStableFunc(out, func(a, b received) int {
		return int(int16(a.seq-pkts[0].seq)) - int(int16(b.seq-pkts[0].seq))
	})
	return out
}

// checkContinuous fails t unless the packets, in sequence-number order,
// are one stream: every number from the first to the last received,
// timestamps never going back, picture IDs each the last or one more
// (modulo 2^15), TL0PICIDX likewise.
func checkContinuous(t *testing.T, who string, pkts []received) {
	t.Helper()
	if len(pkts) == 0 {
		t.Fatalf("%s received nothing", who)
	}
	// Unwrap the sequence numbers from the first received.
	byExt := map[int]received{}
	lo, hi := 0, 0
	for _, p := range pkts {
		ext := int(int16(p.seq - pkts[0].seq))
		byExt[ext] = p
		lo, hi = min(lo, ext), max(hi, ext)
	}
	var prev *received
	for ext := lo; ext <= hi; ext++ {
		p, ok := byExt[ext]
		if !ok {
			t.Fatalf("%s: sequence number %d missing between %d and %d", who, pkts[0].seq+uint16(ext), pkts[0].seq+uint16(lo), pkts[0].seq+uint16(hi))
		}
		if prev != nil {
			if d := int32(p.ts - prev.ts); d < 0 {
				t.Fatalf("%s: timestamp goes back by %d at sequence number %d", who, -d, p.seq)
			}
			if d := (p.desc.pic - prev.desc.pic) & 0x7fff; d > 1 {
				t.Fatalf("%s: picture ID jumps from %d to %d at sequence number %d", who, prev.desc.pic, p.desc.pic, p.seq)
			}
			if d := p.desc.tl0 - prev.desc.tl0; d > 1 {
				t.Fatalf("%s: TL0PICIDX jumps from %d to %d at sequence number %d", who, prev.desc.tl0, p.desc.tl0, p.seq)
			}
		}
		prev = &p
	}
}

// waitLayers waits until the bridge has every layer of pid's video.
func (e *env) waitLayers(pid conference.ParticipantID) {
	e.t.Helper()
	eventually(e.t, 10*time.Second, "the bridge receives the three layers", func() bool {
		e.bridge.mu.Lock()
		r := e.bridge.rooms[e.meeting.ID]
		e.bridge.mu.Unlock()
		if r == nil {
			return false
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, f := range r.tracks {
			if f.owner.pid == pid && f.kind == KindVideo {
				n := 0
				for i := range f.layers {
					if l := f.layers[i].Load(); l != nil && l.lastSeen.Load() != 0 {
						n++
					}
				}
				return n == numLayers
			}
		}
		return false
	})
}

// A publisher sends three simulcast layers; of two subscribers one is
// set to the low layer, the other takes the default (the highest): each
// receives only its layer. Switched to the high layer, the first
// subscriber gets it from a keyframe of that layer, which the bridge
// asked the publisher for, and sees one continuous stream across the
// switch; the other's stream is untouched.
func TestSimulcastLayerPerSubscriber(t *testing.T) {
	e := newEnv(t, time.Time{})
	alice := e.enter("alice")
	pub := e.join(alice, clientOptions{simulcast: true})
	e.waitLayers(alice.ID)

	key := string(alice.ID) + "/" + string(alice.ID) + "-" + KindVideo
	low, high := &recorder{key: key}, &recorder{key: key}
	lowSub := e.join(e.enter("bob"), clientOptions{onRTP: low.onRTP, onSession: func(s *Session) {
		// Before the client has the answer: nothing was sent yet.
		if err := s.SetMaxLayer(alice.ID, KindVideo, LayerLow); err != nil {
			t.Error(err)
		}
	}})
	e.join(e.enter("carol"), clientOptions{onRTP: high.onRTP})

	eventually(t, 15*time.Second, "both subscribers receive 60 packets of video", func() bool {
		return len(low.snapshot()) >= 60 && len(high.snapshot()) >= 60
	})
	if n, total := low.count('q'), len(low.snapshot()); n != total {
		t.Fatalf("the subscriber set to the low layer received %d packets of it among %d", n, total)
	}
	if n, total := high.count('f'), len(high.snapshot()); n != total {
		t.Fatalf("the subscriber on the default received %d packets of the high layer among %d", n, total)
	}
	if l, ok := lowSub.sess.SentLayer(alice.ID, KindVideo); !ok || l != LayerLow {
		t.Fatalf("SentLayer: %v %v, want q", l, ok)
	}

	plis := pub.sim.pliCount(LayerHigh)
	if err := lowSub.sess.SetMaxLayer(alice.ID, KindVideo, LayerHigh); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the switched subscriber receives 30 packets of the high layer", func() bool { return low.count('f') >= 30 })
	if pub.sim.pliCount(LayerHigh) == plis {
		t.Error("the bridge switched without asking for a keyframe of the high layer")
	}
	pkts := inOrder(low.snapshot()) // a packet lost and sent again arrives late
	sw := 0
	for pkts[sw].layer == 'q' {
		sw++
	}
	first, last := pkts[sw], pkts[sw-1]
	if !first.desc.keyframe || first.desc.width != simWidths[LayerHigh] {
		t.Fatalf("the first packet of the high layer is not its keyframe's: %+v", first)
	}
	for _, p := range pkts[sw:] {
		if p.layer != 'f' {
			t.Fatalf("a packet of layer %c after the switch", p.layer)
		}
	}
	if first.seq != last.seq+1 || int32(first.ts-last.ts) <= 0 || first.desc.pic != (last.desc.pic+1)&0x7fff || first.desc.tl0 != last.desc.tl0+1 {
		t.Fatalf("across the switch: seq %d→%d, ts %d→%d, picture ID %d→%d, TL0PICIDX %d→%d",
			last.seq, first.seq, last.ts, first.ts, last.desc.pic, first.desc.pic, last.desc.tl0, first.desc.tl0)
	}
	checkContinuous(t, "the switched subscriber", pkts)
	checkContinuous(t, "the other subscriber", high.snapshot())
	if n, total := high.count('f'), len(high.snapshot()); n != total {
		t.Fatalf("the other subscriber received %d packets of the high layer among %d", n, total)
	}
}

// A publisher without simulcast is one layer: a subscriber asking for
// the low layer gets it all the same, its numbering as sent.
func TestNonSimulcastVideoIgnoresMaxLayer(t *testing.T) {
	e := newEnv(t, time.Time{})
	alice := e.enter("alice")
	e.join(alice, clientOptions{publish: []string{KindVideo}})
	bob := e.join(e.enter("bob"), clientOptions{})
	if err := bob.sess.SetMaxLayer(alice.ID, KindVideo, LayerLow); err != nil {
		t.Fatal(err)
	}
	key := string(alice.ID) + "/" + string(alice.ID) + "-" + KindVideo
	eventually(t, 15*time.Second, "the subscriber receives 50 packets of video", func() bool { return bob.stats(key).packets >= 50 })
	if s := bob.stats(key); s.gaps != 0 || s.repeats != 0 {
		t.Fatalf("%d packets, %d gaps, %d repeats", s.packets, s.gaps, s.repeats)
	}
}

func TestSetMaxLayerRefusesWhatHasNoLayers(t *testing.T) {
	e := newEnv(t, time.Time{})
	alice := e.enter("alice")
	c := e.join(alice, clientOptions{})
	for _, tc := range []struct {
		kind  string
		layer Layer
	}{{KindAudio, LayerLow}, {KindVideo, -1}, {KindScreen, 3}} {
		if err := c.sess.SetMaxLayer("someone", tc.kind, tc.layer); !errors.Is(err, ErrBadLayer) {
			t.Errorf("%s %d: %v, want ErrBadLayer", tc.kind, tc.layer, err)
		}
	}
	_ = c.sess.Close()
	if err := c.sess.SetMaxLayer("someone", KindVideo, LayerLow); !errors.Is(err, ErrClosed) {
		t.Errorf("after the session closed: %v, want ErrClosed", err)
	}
}
