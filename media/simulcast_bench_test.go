package media

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// discardWriter is a subscriber's connection that drops what it is sent.
type discardWriter struct{ packets int }

func (w *discardWriter) WriteRTP(*rtp.Header, []byte) (int, error) { w.packets++; return 0, nil }
func (w *discardWriter) Write(b []byte) (int, error)               { return len(b), nil }

// bareForward is a simulcast video forward with three layers, all
// sending at now, and no connections: it sends no keyframe requests.
func bareForward(now int64) *forward {
	f := &forward{owner: &Session{pid: "alice"}, kind: KindVideo, trackID: "alice-video", vp8: true, interval: time.Hour,
		codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}
	for i := range numLayers {
		l := &layer{idx: Layer(i)}
		l.lastSeen.Store(now)
		l.lastPLI.Store(now)
		f.layers[i].Store(l)
	}
	return f
}

// BenchmarkForwardSimulcastPacket measures what the bridge does with one
// packet of a simulcast layer after reading it from the publisher's
// connection: parse its RTP header and VP8 descriptor, and for each of
// 10 subscribers (on the three layers) pick the layer and, for those
// that take this one, rewrite sequence number, timestamp, picture ID and
// TL0PICIDX into the subscriber's own buffer and hand it to the
// subscriber's connection (here one that drops it: SRTP and the socket
// are not measured). It must not allocate.
func BenchmarkForwardSimulcastPacket(b *testing.B) {
	const subscribers = 10
	now := time.Now().UnixNano()
	f := bareForward(now)
	var raw [numLayers][2][]byte // a keyframe's first packet and a delta frame's
	for i := range numLayers {
		for k, key := range []bool{true, false} {
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(1000 * i), Timestamp: 90000, SSRC: uint32(i + 1)},
				Payload: vp8Payload(uint16(i*100), 0, true, key, simWidths[i], simWidths[i]*9/16, make([]byte, 1000))}
			var err error
			if raw[i][k], err = pkt.Marshal(); err != nil {
				b.Fatal(err)
			}
		}
	}
	w := &discardWriter{}
	for i := range subscribers {
		d := newDownTrack(f, Layer(i%numLayers))
		d.ws, d.pt, d.ssrc = w, 96, uint32(100+i)
		f.addDown(d)
	}
	var pkt rtp.Packet
	route := func(n int) {
		i := n % numLayers
		l := f.layers[i].Load()
		frame := raw[i][1]
		if n < numLayers {
			frame = raw[i][0] // each subscriber starts at its layer's keyframe
		}
		if err := pkt.Unmarshal(frame); err != nil {
			b.Fatal(err)
		}
		pkt.SequenceNumber += uint16(n / numLayers)
		pkt.Timestamp += uint32(n/numLayers) * 3000
		f.route(l, &pkt, now)
	}
	for n := range numLayers {
		route(n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := range b.N {
		route(n + numLayers)
	}
	b.StopTimer()
	if want := (b.N + numLayers) * subscribers / numLayers; w.packets < want-subscribers {
		b.Fatalf("%d packets sent to subscribers, want about %d", w.packets, want)
	}
}
