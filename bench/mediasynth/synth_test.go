package mediasynth

import (
	"context"
	"os"
	"testing"
	"time"
)

// The publisher sends audio at AudioRate and video frames at FPS, a
// keyframe first and every KeyInterval, each payload ending with its
// index and each video payload starting with a VP8 descriptor whose S
// bit marks a frame's first packet and whose keyframe bit is clear on
// keyframes only.
func TestPublisherSchedule(t *testing.T) {
	l := Load{AudioRate: 50, AudioBytes: 100, FPS: 25, FramePackets: 2, KeyPackets: 5, KeyInterval: 200 * time.Millisecond, VideoBytes: 300}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(l)
	var audio, video, keys, frames int
	var lastVideo uint32
	sink := func(pkt *Packet) error {
		i, err := Index(pkt.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if !pkt.Video {
			if i != uint32(audio) || len(pkt.Payload) != l.AudioBytes || pkt.Seq != uint16(audio) {
				t.Fatalf("audio packet %d: index %d, seq %d, %d bytes", audio, i, pkt.Seq, len(pkt.Payload))
			}
			audio++
			return nil
		}
		if i != uint32(video) || len(pkt.Payload) != l.VideoBytes {
			t.Fatalf("video packet %d: index %d, %d bytes", video, i, len(pkt.Payload))
		}
		video++
		lastVideo = i
		b := pkt.Payload
		if b[0]&0x80 == 0 || b[1]&0x80 == 0 || b[2]&0x80 == 0 {
			t.Fatalf("video packet %d: descriptor % x: want X, I and a 15-bit picture ID", i, b[:4])
		}
		if b[0]&0x10 != 0 { // a frame's first packet
			frames++
			if b[4]&1 == 0 {
				keys++
				if b[7] != 0x9d || b[8] != 0x01 || b[9] != 0x2a {
					t.Fatalf("keyframe %d: no start code: % x", frames, b[4:14])
				}
			}
		}
		return nil
	}
	behind, err := p.Run(context.Background(), time.Second, sink)
	if err != nil {
		t.Fatal(err)
	}
	// 1 s: 50 audio packets, 25 frames, of which 5 keyframes (every 5th).
	if audio != 50 || frames != 25 || keys != 5 || video != 20*2+5*5 {
		t.Fatalf("sent %d audio packets, %d frames (%d keyframes), %d video packets: want 50, 25 (5), 65", audio, frames, keys, video)
	}
	if p.Sent.Audio != 50 || p.Sent.Video != uint32(video) || lastVideo != uint32(video-1) {
		t.Fatalf("Sent %+v after %d audio and %d video packets", p.Sent, audio, video)
	}
	if behind > 500*time.Millisecond {
		t.Fatalf("%v behind its schedule", behind)
	}
}

// The counter counts each index once, whatever the RTP sequence numbers,
// and sees padding (no index) and duplicates apart; skipped sequence
// numbers are counted, late ones are not.
func TestCounter(t *testing.T) {
	var c Counter
	payload := func(i uint32) []byte {
		b := make([]byte, 20)
		b[16], b[17], b[18], b[19] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		return b
	}
	for i := range uint32(10) {
		if i == 4 {
			continue // lost
		}
		c.Add(true, uint16(65530+i), payload(i)) // the sequence numbers wrap
	}
	c.Add(true, 65535, payload(5))  // a duplicate, late
	c.Add(true, 9, []byte{1, 2})    // padding
	c.Add(false, 100, payload(0))   // audio
	c.Add(false, 102, payload(1))   // audio, a sequence number skipped
	c.Add(false, 103, payload(1e9)) // beyond any index: not counted
	if c.Ready() != true {
		t.Fatal("not ready after both tracks")
	}
	a, v := c.Received(Sent{}, Sent{Audio: 5, Video: 10})
	if a != 2 || v != 9 {
		t.Fatalf("received %d audio and %d video packets: want 2 and 9", a, v)
	}
	if a, v := c.Received(Sent{Video: 5}, Sent{Video: 8}); a != 0 || v != 3 {
		t.Fatalf("received %d audio and %d video in [5, 8): want 0 and 3", a, v)
	}
	other, dups, gaps := c.Extra()
	// Video: 65534 (index 4) skipped, then the padding's 9 after 3 (index
	// 9, wrapped): 5 skipped; the late 65535 is no gap. Audio: 101.
	if other != 2 || dups != 1 || gaps != 1+5+1 {
		t.Fatalf("other %d, dups %d, gaps %d: want 2, 1, 7", other, dups, gaps)
	}
}

// Proc reads a process's CPU time and RSS from /proc: this one's.
func TestProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	p := Proc(os.Getpid())
	start := time.Now()
	for time.Since(start) < 50*time.Millisecond {
	}
	cpu, err := p.CPU()
	if err != nil {
		t.Fatal(err)
	}
	rss, err := p.RSS()
	if err != nil {
		t.Fatal(err)
	}
	if cpu < 30*time.Millisecond || cpu > ProcessCPU()+20*time.Millisecond || rss < 1<<20 {
		t.Fatalf("CPU %v (getrusage %v), RSS %d", cpu, ProcessCPU(), rss)
	}
	if _, err := Proc(1 << 30).CPU(); err == nil {
		t.Fatal("a process that does not exist has a CPU time")
	}
}
