package media

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// decoder stands for a subscriber's video decoder, of one track: a
// frame is decoded once all its packets have arrived (from its first,
// which starts a VP8 partition, to the marker), if it is a keyframe or
// follows the frame decoded last. While it decodes nothing, it asks for
// a keyframe (PLI) every 500 ms, as a browser does when it has nothing
// to start from.
type decoder struct {
	key string

	mu      sync.Mutex
	ssrc    uint32 // the track's, once a packet arrived
	pkts    map[uint16]decPacket
	newest  uint16
	have    bool   // a frame was decoded: the next can follow it
	last    uint16 // the sequence number of the last decoded frame's end
	frames  []time.Time
	keys    int // whole keyframes decoded
	plis    int
	decoded time.Time // when the last frame was decoded
}

type decPacket struct {
	start, key, marker bool
	padding            bool // padding alone (a probe's), between frames
}

func newDecoder(key string) *decoder { return &decoder{key: key, pkts: map[uint16]decPacket{}} }

func (d *decoder) onRTP(key string, pkt *rtp.Packet) {
	if key != d.key {
		return
	}
	p := decPacket{padding: true} // padding alone (a probe's), between frames
	if len(pkt.Payload) > 0 {
		desc, err := parseVP8(pkt.Payload)
		if err != nil {
			return
		}
		p = decPacket{start: pkt.Payload[0]&0x17 == 0x10, key: desc.keyframe, marker: pkt.Marker}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ssrc = pkt.SSRC
	if len(d.pkts) == 0 || int16(pkt.SequenceNumber-d.newest) > 0 {
		d.newest = pkt.SequenceNumber
	}
	d.pkts[pkt.SequenceNumber] = p
	for d.decodeNext() {
	}
	for s := range d.pkts { // what is far behind is no use
		if int16(d.newest-s) > 600 || d.have && int16(d.last-s) >= 0 {
			delete(d.pkts, s)
		}
	}
}

// frameAt returns the end of the whole frame starting at seq, if it has
// all arrived.
func (d *decoder) frameAt(seq uint16) (end uint16, ok bool) {
	if p, ok := d.pkts[seq]; !ok || !p.start {
		return 0, false
	}
	for s := seq; int16(s-seq) < 100; s++ {
		p, ok := d.pkts[s]
		if !ok {
			return 0, false
		}
		if p.marker {
			return s, true
		}
	}
	return 0, false
}

// decodeNext decodes the frame following the last decoded, or else the
// newest whole keyframe after it; false if there is none.
func (d *decoder) decodeNext() bool {
	if d.have {
		next := d.last + 1
		for d.pkts[next].padding {
			next++
		}
		if end, ok := d.frameAt(next); ok {
			d.done(end, d.pkts[next].key)
			return true
		}
	}
	best, found := uint16(0), false
	for s, p := range d.pkts {
		if !p.key || d.have && int16(s-d.last) <= 0 || found && int16(s-best) < 0 {
			continue
		}
		if _, ok := d.frameAt(s); ok {
			best, found = s, true
		}
	}
	if !found {
		return false
	}
	end, _ := d.frameAt(best)
	d.done(end, true)
	return true
}

func (d *decoder) done(end uint16, key bool) {
	d.have, d.last, d.decoded = true, end, time.Now()
	d.frames = append(d.frames, d.decoded)
	if key {
		d.keys++
	}
}

// run asks for a keyframe every 500 ms while nothing was decoded in the
// last 500 ms, until stop is closed.
func (d *decoder) run(pc *webrtc.PeerConnection, stop chan struct{}) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		d.mu.Lock()
		ssrc, stuck := d.ssrc, time.Since(d.decoded) >= 500*time.Millisecond
		if ssrc != 0 && stuck {
			d.plis++
		}
		d.mu.Unlock()
		if ssrc != 0 && stuck {
			_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
		}
	}
}

// counts returns the frames decoded since from, the whole keyframes
// and the keyframe requests so far.
func (d *decoder) counts(from time.Time) (frames, keys, plis int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, at := range d.frames {
		if !at.Before(from) {
			frames++
		}
	}
	return frames, d.keys, d.plis
}

// A publisher's low layer runs at about 150 kbit/s with camera-sized
// keyframes (20 frames' worth: 12.5 KB, in 12 packets, sent at its start
// and when asked, as a browser does), its audio at about 40 kbit/s; a
// subscriber behind a 300 kbit/s link that loses 3 % and queues at most
// 200 ms decodes it, asking for a keyframe every 500 ms while it cannot.
// Paced, a keyframe crosses the link (sent as it comes it overflows the
// link's queue and its tail is lost, again and again); and the
// subscriber's requests while one is on its way are held, so that the
// publisher is not asked for keyframe after keyframe, more than the
// link carries. Over 12 s on the low layer the weak subscriber decodes
// at least 8 frames a second (a frame only whole and following the last
// decoded, or a whole keyframe), at least one whole keyframe, the low
// layer is asked for at most one keyframe every 4 s, and the audio
// keeps arriving.
func TestWeakDownlinkDecodesCameraKeyframes(t *testing.T) {
	e := newEnv(t, time.Time{})
	alice := e.enter("alice")
	pub := e.join(alice, clientOptions{publish: []string{KindAudio}, audioBody: 60, simulcast: true,
		simBody: [numLayers]int{270, 600, 1100}, simKey: [numLayers]int{20 * 2 * 270, 20 * 2 * 600, 20 * 2 * 1100}})
	e.waitLayers(alice.ID)

	raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	th := newThrottle(raw, 300_000, 200*time.Millisecond, 33)
	t.Cleanup(func() { _ = raw.Close() })
	videoKey := string(alice.ID) + "/" + string(alice.ID) + "-" + KindVideo
	audioKey := string(alice.ID) + "/" + string(alice.ID) + "-" + KindAudio
	dec := newDecoder(videoKey)
	weak := e.join(e.enter("bob"), clientOptions{udp: th, onRTP: dec.onRTP})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { dec.run(weak.pc, stop) })
	t.Cleanup(func() { close(stop); wg.Wait() })

	var down *downTrack
	eventually(t, 10*time.Second, "the weak subscriber receives alice's video", func() bool {
		down = downOf(weak.sess, alice.ID)
		return down != nil
	})
	eventually(t, 12*time.Second, "the weak subscriber is on the low layer by its estimate", func() bool {
		return down.allocated() == LayerLow && down.layer() == LayerLow
	})
	from, plis0 := time.Now(), pub.sim.pliCount(LayerLow)
	frames0, keys0, asked0 := dec.counts(from)
	audio0 := weak.stats(audioKey).packets
	const window = 12 * time.Second
	time.Sleep(window)
	frames, keys, asked := dec.counts(from)
	plis := pub.sim.pliCount(LayerLow) - plis0
	fps := float64(frames-frames0) / window.Seconds()
	t.Logf("weak subscriber over %v: %.1f frames/s decoded, %d whole keyframes, %d keyframe requests sent, %d passed to the publisher; estimate %d bit/s, its link dropped %d packets and lost %d; audio packets %d",
		window, fps, keys-keys0, asked-asked0, plis, weak.sess.DownlinkEstimate(), th.dropped.Load(), th.lost.Load(), weak.stats(audioKey).packets-audio0)
	if fps < 8 {
		t.Errorf("the weak subscriber decoded %.1f frames a second, want at least 8 of the 30 sent", fps)
	}
	if keys-keys0 < 1 {
		t.Errorf("the weak subscriber decoded no whole keyframe in %v", window)
	}
	if plis > int(window/(4*time.Second)) {
		t.Errorf("the low layer was asked for %d keyframes in %v, want at most one every 4 s", plis, window)
	}
	if n, sent := weak.stats(audioKey).packets-audio0, int(window/(20*time.Millisecond)); n < sent*2/3 {
		t.Errorf("the weak subscriber received %d audio packets in %v, want at least two thirds of the %d sent", n, window, sent)
	}
}
