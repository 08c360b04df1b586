// Package mediasynth is what the media benchmarks' load generators share
// (bench/mediaload for Parley's bridge, bench/livekit/load for LiveKit):
// one publisher's synthetic audio and VP8 video, sent on a schedule fixed
// from the start (open loop), and the subscribers' count of what arrives.
//
// It imports no WebRTC library: the bridge's clients use pion/webrtc v3
// and LiveKit's server-sdk-go uses v4, so each generator wraps the same
// packets in its own. Every payload ends with the packet's index among
// its track's packets (4 bytes, big-endian): servers rewrite RTP sequence
// numbers, timestamps and VP8 picture IDs, and LiveKit adds padding-only
// probe packets, but neither touches a payload's tail, so a subscriber
// counts exactly which of the publisher's packets it received.
package mediasynth

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Load is the publisher's media: Opus-sized audio and VP8 video frames,
// each frame split into packets of VideoBytes.
type Load struct {
	AudioRate    int           // audio packets per second (Opus at 20 ms: 50)
	AudioBytes   int           // audio payload bytes
	FPS          int           // video frames per second
	FramePackets int           // packets of a delta frame
	KeyPackets   int           // packets of a keyframe
	KeyInterval  time.Duration // time between keyframes
	VideoBytes   int           // video payload bytes per packet
}

// DefaultLoad is a camera at about 900 kbit/s (30 frames a second, 3
// packets of 1,000 bytes each, a keyframe of 15 packets every 2 s) with
// its audio (50 packets of 100 bytes a second): about 145 packets a
// second from the publisher.
var DefaultLoad = Load{AudioRate: 50, AudioBytes: 100, FPS: 30, FramePackets: 3, KeyPackets: 15, KeyInterval: 2 * time.Second, VideoBytes: 1000}

// Validate returns an error naming the first field out of bounds.
func (l Load) Validate() error {
	switch {
	case l.AudioRate < 1 || l.AudioRate > 1000:
		return fmt.Errorf("audio rate %d: want 1 to 1000 packets/s", l.AudioRate)
	case l.AudioBytes < 8 || l.AudioBytes > 1200:
		return fmt.Errorf("audio bytes %d: want 8 to 1200", l.AudioBytes)
	case l.FPS < 1 || l.FPS > 120:
		return fmt.Errorf("fps %d: want 1 to 120", l.FPS)
	case l.FramePackets < 1 || l.FramePackets > 100:
		return fmt.Errorf("frame packets %d: want 1 to 100", l.FramePackets)
	case l.KeyPackets < 1 || l.KeyPackets > 500:
		return fmt.Errorf("keyframe packets %d: want 1 to 500", l.KeyPackets)
	case l.KeyInterval < time.Second/time.Duration(l.FPS):
		return fmt.Errorf("keyframe interval %v: want at least one frame", l.KeyInterval)
	case l.VideoBytes < vp8Header+indexBytes || l.VideoBytes > 1200:
		return fmt.Errorf("video bytes %d: want %d to 1200", l.VideoBytes, vp8Header+indexBytes)
	}
	return nil
}

// Packet is one RTP packet of the publisher's: its track, its header
// fields and its payload (valid only until the sink returns).
type Packet struct {
	Video     bool
	Seq       uint16
	Timestamp uint32
	Marker    bool
	Payload   []byte
}

// Sink writes one packet to the publisher's track.
type Sink func(*Packet) error

// Sent counts the packets a publisher sent: the indexes of each track's
// next packet.
type Sent struct{ Audio, Video uint32 }

const (
	indexBytes = 4
	// vp8Header is the payload descriptor (X, I with a 15-bit picture ID)
	// and, on a frame's first packet, the 10-byte keyframe header.
	vp8Header = 4 + 10
)

// Publisher makes the publisher's packets.
type Publisher struct {
	l          Load
	aseq, vseq uint16
	pic        uint16
	frame      uint32
	buf        []byte
	Sent       Sent // what it has sent so far
}

// NewPublisher returns a publisher of l, which must be valid.
func NewPublisher(l Load) *Publisher {
	return &Publisher{l: l, buf: make([]byte, max(l.AudioBytes, l.VideoBytes))}
}

// audio sends one audio packet.
func (p *Publisher) audio(sink Sink) error {
	b := p.buf[:p.l.AudioBytes]
	fill(b, byte(p.Sent.Audio))
	binary.BigEndian.PutUint32(b[len(b)-indexBytes:], p.Sent.Audio)
	pkt := Packet{Seq: p.aseq, Timestamp: p.Sent.Audio * uint32(48000/p.l.AudioRate), Payload: b}
	p.aseq++
	p.Sent.Audio++
	return sink(&pkt)
}

// video sends one video frame, a keyframe if key.
func (p *Publisher) video(sink Sink, key bool) error {
	n := p.l.FramePackets
	if key {
		n = p.l.KeyPackets
	}
	ts := p.frame * uint32(90000/p.l.FPS)
	for i := range n {
		b := p.buf[:p.l.VideoBytes]
		fill(b, byte(p.Sent.Video))
		// VP8 payload descriptor (RFC 7741): X, S on the frame's first
		// packet, partition 0; I: a 15-bit picture ID.
		b[0] = 0x80
		if i == 0 {
			b[0] |= 0x10
		}
		b[1] = 0x80
		b[2], b[3] = 0x80|byte(p.pic>>8&0x7f), byte(p.pic)
		if i == 0 { // the VP8 frame header (RFC 6386 9.1)
			size := uint32(p.l.VideoBytes * n / 4) // first partition size, 19 bits
			tag := uint32(1)                       // P: interframe
			if key {
				tag = 0
			}
			tag |= 1 << 4 // show_frame
			tag |= size & 0x7ffff << 5
			b[4], b[5], b[6] = byte(tag), byte(tag>>8), byte(tag>>16)
			if key {
				b[7], b[8], b[9] = 0x9d, 0x01, 0x2a
				binary.LittleEndian.PutUint16(b[10:], 640)
				binary.LittleEndian.PutUint16(b[12:], 360)
			}
		}
		binary.BigEndian.PutUint32(b[len(b)-indexBytes:], p.Sent.Video)
		pkt := Packet{Video: true, Seq: p.vseq, Timestamp: ts, Marker: i == n-1, Payload: b}
		p.vseq++
		p.Sent.Video++
		if err := sink(&pkt); err != nil {
			return err
		}
	}
	p.pic = (p.pic + 1) & 0x7fff
	p.frame++
	return nil
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v + byte(i)
	}
}

// Run sends the load for d on a schedule fixed from the start: audio
// packet k at k/AudioRate, video frame f at f/FPS (its packets back to
// back), a keyframe first and every KeyInterval. What falls due while the
// sink is slow is sent at once, late, and counted in behind (the most the
// sender fell behind its schedule). It returns at the end of d, when ctx
// ends, or at the sink's first error.
func (p *Publisher) Run(ctx context.Context, d time.Duration, sink Sink) (behind time.Duration, err error) {
	start := time.Now()
	audioEvery := time.Second / time.Duration(p.l.AudioRate)
	frameEvery := time.Second / time.Duration(p.l.FPS)
	keyEvery := int(p.l.KeyInterval / frameEvery)
	var a, f int // next audio packet, next frame, from the start
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		na, nf := time.Duration(a)*audioEvery, time.Duration(f)*frameEvery
		next := min(na, nf)
		if next >= d {
			return behind, nil
		}
		if wait := time.Until(start.Add(next)); wait > 0 {
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return behind, ctx.Err()
			case <-t.C:
			}
		} else {
			behind = max(behind, -wait)
		}
		if na <= nf {
			err = p.audio(sink)
			a++
		} else {
			err = p.video(sink, f%keyEvery == 0)
			f++
		}
		if err != nil {
			return behind, err
		}
	}
}

// errShort is a packet too short to carry an index.
var errShort = errors.New("mediasynth: payload shorter than its index")

// Index returns the publisher's index of a received payload.
func Index(payload []byte) (uint32, error) {
	if len(payload) < indexBytes {
		return 0, errShort
	}
	return binary.BigEndian.Uint32(payload[len(payload)-indexBytes:]), nil
}
