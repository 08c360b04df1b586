package mediasynth

import (
	"fmt"
	"strings"
	"sync"
)

// Counter is one subscriber's count of what it received of each track.
// It is safe for concurrent use.
type Counter struct {
	mu           sync.Mutex
	audio, video track
	other        int // packets without an index (padding, probes)
}

type track struct {
	seen     []uint64 // a bit per index
	packets  int      // packets with an index, duplicates too
	dups     int      // packets whose index was already seen
	seqGaps  int      // RTP sequence numbers skipped
	seqValid bool
	lastSeq  uint16
}

// maxIndex bounds the indexes counted (about 80 minutes at 200 packets
// a second): an index beyond it is a broken packet.
const maxIndex = 1 << 20

// Add counts a received packet of the audio or video track, with its RTP
// sequence number and payload.
func (c *Counter) Add(video bool, seq uint16, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &c.audio
	if video {
		t = &c.video
	}
	if t.seqValid {
		if d := seq - t.lastSeq; d != 0 && d < 0x8000 { // forward: older ones are late, not gaps
			t.seqGaps += int(d) - 1
			t.lastSeq = seq
		}
	} else {
		t.seqValid, t.lastSeq = true, seq
	}
	i, err := Index(payload)
	if err != nil || i >= maxIndex {
		c.other++
		return
	}
	if need := int(i/64) + 1; need > len(t.seen) {
		t.seen = append(t.seen, make([]uint64, need-len(t.seen))...)
	}
	t.packets++
	if t.seen[i/64]&(1<<(i%64)) != 0 {
		t.dups++
		return
	}
	t.seen[i/64] |= 1 << (i % 64)
}

// Received returns how many distinct packets of indexes [from, to) of
// each track arrived.
func (c *Counter) Received(from, to Sent) (audio, video int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.audio.count(from.Audio, to.Audio), c.video.count(from.Video, to.Video)
}

// Ready reports whether the subscriber has received both tracks.
func (c *Counter) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.audio.packets > 0 && c.video.packets > 0
}

// Extra returns the packets without an index (padding), those received
// twice, and the RTP sequence numbers skipped, over the whole run.
func (c *Counter) Extra() (other, dups, seqGaps int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.other, c.audio.dups + c.video.dups, c.audio.seqGaps + c.video.seqGaps
}

func (t *track) count(from, to uint32) int {
	n := 0
	for i := from; i < to; i++ {
		if int(i/64) < len(t.seen) && t.seen[i/64]&(1<<(i%64)) != 0 {
			n++
		}
	}
	return n
}

// Result is a load's outcome over its measured window.
type Result struct {
	Server      string
	Subscribers int
	Connected   int     // subscribers that received both tracks before the window
	Seconds     float64 // the window's length, sending
	Sent        Sent    // packets sent in the window
	Audio       int     // audio packets received in the window, over every subscriber
	Video       int     // video packets received likewise
	Other       int     // packets without an index (padding), whole run
	Dups        int     // duplicates, whole run
	SeqGaps     int     // RTP sequence numbers skipped, whole run
	BehindMs    float64 // the most the publisher fell behind its schedule
	GenCPUMs    float64 // the generator's CPU in the window and drain
	ServerCPUMs float64 // the server's CPU in the window and drain (0: not measured)
	ServerRSS   int64   // the server's largest RSS in the window, bytes (0: not measured)
	// Short counts the subscribers that received under 99 % of the
	// window's packets, NoVideo those that received none of its video.
	Short, NoVideo int
}

// ServerCPUPerPacket is the server's CPU per packet delivered, in
// microseconds.
func (r Result) ServerCPUPerPacket() float64 {
	if got := r.Audio + r.Video; got > 0 {
		return 1000 * r.ServerCPUMs / float64(got)
	}
	return 0
}

// Expected is the packets every subscriber should have received.
func (r Result) Expected() int {
	return r.Subscribers * int(r.Sent.Audio+r.Sent.Video)
}

// LossPct is the share of expected packets not received, in percent.
func (r Result) LossPct() float64 {
	e := r.Expected()
	if e == 0 {
		return 0
	}
	return 100 * float64(e-r.Audio-r.Video) / float64(e)
}

// String is the result for people, then a line starting "RESULT" with
// key=value pairs for scripts.
func (r Result) String() string {
	var b strings.Builder
	got := r.Audio + r.Video
	fmt.Fprintf(&b, "%s: %d subscribers (%d connected), %.1f s: sent %d audio + %d video packets, delivered %d of %d (%.3f %% lost), %.0f packets/s; %d subscribers short of packets, %d without video; %d padding, %d duplicates, %d RTP seq gaps; publisher at most %.1f ms behind; generator CPU %.0f ms; server CPU %.0f ms (%.2f µs per delivered packet), RSS %.1f MB\n",
		r.Server, r.Subscribers, r.Connected, r.Seconds, r.Sent.Audio, r.Sent.Video, got, r.Expected(), r.LossPct(),
		float64(got)/r.Seconds, r.Short, r.NoVideo, r.Other, r.Dups, r.SeqGaps, r.BehindMs, r.GenCPUMs, r.ServerCPUMs, r.ServerCPUPerPacket(), float64(r.ServerRSS)/(1<<20))
	fmt.Fprintf(&b, "RESULT server=%s subscribers=%d connected=%d seconds=%.3f sent=%d delivered=%d expected=%d delivered_pps=%.1f loss_pct=%.3f short=%d novideo=%d padding=%d dups=%d seq_gaps=%d behind_ms=%.1f gen_cpu_ms=%.0f server_cpu_ms=%.0f server_cpu_us_per_pkt=%.3f server_rss_kb=%d",
		r.Server, r.Subscribers, r.Connected, r.Seconds, r.Sent.Audio+r.Sent.Video, got, r.Expected(),
		float64(got)/r.Seconds, r.LossPct(), r.Short, r.NoVideo, r.Other, r.Dups, r.SeqGaps, r.BehindMs, r.GenCPUMs, r.ServerCPUMs, r.ServerCPUPerPacket(), r.ServerRSS>>10)
	return b.String()
}
