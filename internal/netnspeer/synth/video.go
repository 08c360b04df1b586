// Package synth is the media of internal/netnspeer's participants,
// apart from any WebRTC stack, so that the same publisher and the same
// subscriber run against Parley's bridge (netnspeer, pion/webrtc v3) and
// against LiveKit (bench/livekit/load, LiveKit's Go SDK on pion/webrtc
// v4): the publisher's synthetic three-layer VP8 simulcast and Opus
// packets (Video, Audio), and the subscriber's decoder and its Report
// (Decoder), and a meter of the process's own stalls (StallMeter).
package synth

import (
	"cmp"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// Layers is how many layers the publisher's simulcast has, lowest first.
const Layers = 3

// RIDs are the publisher's simulcast layers' RTP stream IDs, lowest
// first. Every packet's payload ends with its layer's RID, so that a
// subscriber knows which layer it receives.
var RIDs = [Layers]string{"q", "h", "f"}

// Widths are the layers' widths, carried in their keyframes (heights are
// 9/16 of them).
var Widths = [Layers]uint16{320, 640, 1280}

// FrameInterval is the time between a layer's frames (30 a second, as
// the publisher's ticker runs them).
const FrameInterval = 33 * time.Millisecond

// VP8PayloadType is the payload type the packets Video makes carry; a
// track's writer may replace it with the one negotiated.
const VP8PayloadType = 96

// Video makes the publisher's VP8 frames, as a browser's simulcast
// sends them: each layer its own sequence numbers and timestamps, frames
// with 15-bit picture IDs and TL0PICIDX, keyframes at the start and when
// asked (RequestKeyframe), or every 90 frames where the layer's
// keyframes are not camera-sized. It is safe for concurrent use.
type Video struct {
	layerBytes, keyframeBytes [Layers]int

	mu      sync.Mutex
	frame   int
	seq     [Layers]uint16
	ts      [Layers]uint32
	pic     [Layers]uint16
	tl0     [Layers]uint8
	wantKey [Layers]bool
	frameAt []time.Time
}

// NewVideo returns the frames' maker: layerBytes is the payload size of
// each layer's packets, two a frame (0: 100 bytes); keyframeBytes, where
// not 0, makes a layer's keyframes that many bytes in packets of 1,100,
// sent at the start and when asked only.
func NewVideo(layerBytes, keyframeBytes [Layers]int) *Video {
	return &Video{layerBytes: layerBytes, keyframeBytes: keyframeBytes,
		seq: [Layers]uint16{65000, 1, 30000}, ts: [Layers]uint32{1e9, 5, 4294000000},
		pic: [Layers]uint16{100, 20000, 32700}, tl0: [Layers]uint8{250, 0, 128}}
}

// RequestKeyframe makes the layer's next frame a keyframe (a PLI or FIR
// for it arrived).
func (v *Video) RequestKeyframe(layer int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.wantKey[layer] = true
}

// Next returns the next frame of each layer, as RTP packets (version,
// payload type, sequence number, timestamp, marker and payload set; the
// SSRC and header extensions are the sender's), and counts the frame as
// sent at now.
func (v *Video) Next(now time.Time) [Layers][]*rtp.Packet {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out [Layers][]*rtp.Packet
	v.frameAt = append(v.frameAt, now)
	for i := range Layers {
		key := v.frame == 0 || v.wantKey[i] || v.frame%90 == 0 && v.keyframeBytes[i] == 0
		v.wantKey[i] = false
		size := cmp.Or(v.layerBytes[i], 100)
		parts, left := 2, 0
		if key && v.keyframeBytes[i] > 0 { // camera-sized: in packets of 1,100 bytes
			parts, left = (v.keyframeBytes[i]+1099)/1100, v.keyframeBytes[i]
		}
		for part := range parts {
			if left > 0 {
				size = min(left, 1100)
				left -= size
			}
			body := make([]byte, size)
			body[len(body)-1] = RIDs[i][0]
			out[i] = append(out[i], &rtp.Packet{
				Header:  rtp.Header{Version: 2, PayloadType: VP8PayloadType, SequenceNumber: v.seq[i], Timestamp: v.ts[i], Marker: part == parts-1},
				Payload: vp8Payload(v.pic[i], v.tl0[i], part == 0, key, Widths[i], Widths[i]*9/16, body),
			})
			v.seq[i]++
		}
		v.ts[i] += 3000
		v.pic[i] = (v.pic[i] + 1) & 0x7fff
		v.tl0[i]++
	}
	v.frame++
	return out
}

// Frames returns how many frames (of each layer) were made since from.
func (v *Video) Frames(from time.Time) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return countSince(v.frameAt, from)
}

// vp8Payload is a VP8 RTP payload (RFC 7741): a descriptor with a 15-bit
// picture ID, TL0PICIDX and TID (0, with Y set: as libwebrtc sends them;
// LiveKit refuses a TL0PICIDX without a TID as invalid), and on a
// frame's first packet the VP8 payload header (a keyframe's with its
// start code and size), then body.
func vp8Payload(pic uint16, tl0 uint8, start, key bool, width, height uint16, body []byte) []byte {
	b0 := byte(0x80) // X
	if start {
		b0 |= 0x10 // S, partition 0
	}
	p := []byte{b0, 0x80 | 0x40 | 0x20, 0x80 | byte(pic>>8)&0x7f, byte(pic), tl0, 0x20}
	if start {
		if key {
			p = append(p, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, byte(width), byte(width>>8), byte(height), byte(height>>8))
		} else {
			p = append(p, 0x01, 0x00, 0x00)
		}
	}
	return append(p, body...)
}

// OpusPayloadType is the payload type of the packets Audio makes.
const OpusPayloadType = 111

// Audio makes the publisher's Opus packets, one every 20 ms of sound. It
// is safe for concurrent use.
type Audio struct {
	bytes int

	mu     sync.Mutex
	seq    uint16
	ts     uint32
	sentAt []time.Time
}

// NewAudio returns the packets' maker; bytes is their payload size (0:
// 60).
func NewAudio(bytes int) *Audio {
	return &Audio{bytes: cmp.Or(bytes, 60), seq: 7000, ts: 123456}
}

// Next returns the next packet, counted as sent at now.
func (a *Audio) Next(now time.Time) *rtp.Packet {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: OpusPayloadType, SequenceNumber: a.seq, Timestamp: a.ts},
		Payload: make([]byte, a.bytes)}
	a.sentAt = append(a.sentAt, now)
	a.seq++
	a.ts += 960
	return p
}

// Packets returns how many packets were made since from.
func (a *Audio) Packets(from time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return countSince(a.sentAt, from)
}

// PublisherReport is a publisher's Report over the window ending at end:
// the audio packets and the frames (of each layer) it sent.
func PublisherReport(v *Video, a *Audio, end time.Time, window time.Duration) Report {
	from := end.Add(-window)
	r := Report{WindowMS: int(window / time.Millisecond), AudioPackets: a.Packets(from), Frames: v.Frames(from)}
	r.FPS = float64(r.Frames) / window.Seconds()
	return r
}

func countSince(times []time.Time, from time.Time) int {
	n := 0
	for _, at := range times {
		if !at.Before(from) {
			n++
		}
	}
	return n
}

// ServerFigures is the weak-link scenario's line of a server's figures,
// as printed for either server: its process's CPU over the window per
// packet the subscribers received (an upper bound of its CPU per
// forwarded packet), and its memory: resident set idle, with the
// publisher alone, at its largest over the window, and the growth from
// the publisher alone to that largest, per subscriber.
func ServerFigures(server string, cpu, window time.Duration, forwarded int, idle, withPublisher, peak int64, subscribers int) string {
	const mb = 1 << 20
	return fmt.Sprintf("%s process CPU %v over %v, %.1f µs per packet the subscribers received (%d); RSS idle %.1f MB, with the publisher %.1f MB, largest in the window %.1f MB: %.2f MB per subscriber (%d)",
		server, cpu.Round(time.Millisecond), window, float64(cpu.Microseconds())/float64(max(forwarded, 1)), forwarded,
		float64(idle)/mb, float64(withPublisher)/mb, float64(peak)/mb, float64(peak-withPublisher)/mb/float64(max(subscribers, 1)), subscribers)
}
