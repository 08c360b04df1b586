package synth

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// FreezeGap is the longest time without a decoded frame that is not a
// freeze.
const FreezeGap = 500 * time.Millisecond

// KeyframeRequestInterval is how often a decoder that decodes nothing
// asks for a keyframe (as a browser does).
const KeyframeRequestInterval = 500 * time.Millisecond

// Report is what a subscriber received over a window of time ending
// when it was asked.
type Report struct {
	WindowMS int `json:"window_ms"`
	// Frames is how many video frames were decoded, FPS per second (a
	// publisher's: sent, of each layer).
	Frames int     `json:"frames"`
	FPS    float64 `json:"fps"`
	// FramesByLayer counts the decoded frames by their layer's RID.
	FramesByLayer map[string]int `json:"frames_by_layer"`
	// Width is the resolution decoded at the window's end: the width of
	// the last keyframe decoded, in the window or before it (0: none
	// was).
	Width int `json:"width"`
	// Keyframes is how many whole keyframes were decoded; KeyframeRequests
	// how many the subscriber sent (PLI) while it decoded nothing.
	Keyframes        int `json:"keyframes"`
	KeyframeRequests int `json:"keyframe_requests"`
	// Freezes counts the times no frame was decoded for over FreezeGap;
	// LongestFreezeMS is the longest time without a decoded frame
	// (from the window's start to its first frame and from its last to
	// the window's end included).
	Freezes         int `json:"freezes"`
	LongestFreezeMS int `json:"longest_freeze_ms"`
	// FreezesAt are the freezes: when each began, in milliseconds from
	// the window's start, and how long it lasted.
	FreezesAt [][2]int `json:"freezes_at,omitempty"`
	// VideoPackets and AudioPackets are the RTP packets received (a
	// publisher's AudioPackets: sent).
	VideoPackets int `json:"video_packets"`
	AudioPackets int `json:"audio_packets"`
	// PaddingPackets are the video packets that carried padding alone
	// (a server's probes), of VideoPackets.
	PaddingPackets int `json:"padding_packets"`
	// VideoMissing counts the video sequence numbers, from the first to
	// the last received in the window, never received at all: lost and
	// not repaired by a retransmission.
	VideoMissing int `json:"video_missing"`
	// LongestAudioGapMS is the longest time without an audio packet
	// (the window's ends included, as for freezes).
	LongestAudioGapMS int `json:"longest_audio_gap_ms"`
	// LongestAudioLossMS is the longest audio lost in a row (never
	// received), in milliseconds of sound, by the packets' timestamps.
	LongestAudioLossMS int `json:"longest_audio_loss_ms"`
	// LongestStallMS is the longest the peer's process stalled (its
	// goroutines ran late): a gap it saw that the network did not make.
	LongestStallMS int `json:"longest_stall_ms"`
}

// String is a subscriber's figures on one line, as the weak-link
// scenario prints them for either server.
func (r *Report) String() string {
	return fmt.Sprintf("%5.1f frames/s decoded %v, width %4d, %d keyframes (%d requested), %d freezes (longest %d ms), %d video packets (%d padding alone, %d never received); %d audio packets (longest gap %d ms, longest lost %d ms); stalled %d ms",
		r.FPS, r.FramesByLayer, r.Width, r.Keyframes, r.KeyframeRequests, r.Freezes, r.LongestFreezeMS, r.VideoPackets, r.PaddingPackets, r.VideoMissing,
		r.AudioPackets, r.LongestAudioGapMS, r.LongestAudioLossMS, r.LongestStallMS)
}

// Decoder is a subscriber's view of a publisher's audio and video. It
// decodes the video as a browser's decoder would: a frame is decoded
// once all its packets have arrived (from its first, which starts a VP8
// partition, to the marker), if it is a keyframe or follows the frame
// decoded last. It is safe for concurrent use.
type Decoder struct {
	mu      sync.Mutex
	ssrc    uint32 // the video's, once a packet arrived
	pkts    map[uint16]packet
	newest  uint16
	have    bool   // a frame was decoded: the next can follow it
	last    uint16 // the sequence number of the last decoded frame's end
	decoded time.Time
	frames  []frame
	videoAt []time.Time
	padAt   []time.Time // of the video packets that carried padding alone
	videoSN []int64     // the video packets' sequence numbers, unwrapped, as videoAt
	audioAt []time.Time
	audioTS []uint32 // the audio packets' timestamps, as audioAt
	plis    []time.Time
}

type packet struct {
	start, key, marker bool
	padding            bool   // padding alone (the bridge's probe), between frames
	layer              byte   // the RID the payload ends with
	width              uint16 // a keyframe's, on its first packet
}

type frame struct {
	at    time.Time
	layer byte
	key   bool
	width uint16
}

// NewDecoder returns a decoder that has received nothing.
func NewDecoder() *Decoder {
	return &Decoder{pkts: map[uint16]packet{}}
}

var errShort = errors.New("synth: VP8 payload too short")

// parseVP8 reads a VP8 payload descriptor (RFC 7741) and, on a frame's
// first packet, whether the frame is a keyframe and its width.
func parseVP8(p []byte) (start, key bool, width uint16, err error) {
	if len(p) < 1 {
		return false, false, 0, errShort
	}
	i := 1
	if p[0]&0x80 != 0 { // X
		if len(p) < 2 {
			return false, false, 0, errShort
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture ID, 7 or 15 bits
			if len(p) < i+1 {
				return false, false, 0, errShort
			}
			if p[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K
			i++
		}
	}
	if len(p) <= i {
		return false, false, 0, errShort
	}
	start = p[0]&0x17 == 0x10 // S, partition 0
	if start {
		key = p[i]&0x01 == 0
		if key && len(p) >= i+10 && p[i+3] == 0x9d && p[i+4] == 0x01 && p[i+5] == 0x2a {
			width = (uint16(p[i+6]) | uint16(p[i+7])<<8) & 0x3fff
		}
	}
	return start, key, width, nil
}

// Audio counts an audio packet received at now.
func (d *Decoder) Audio(pkt *rtp.Packet, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.audioAt = append(d.audioAt, now)
	d.audioTS = append(d.audioTS, pkt.Timestamp)
}

// Video takes a video packet received at now, and decodes the frames it
// completes.
func (d *Decoder) Video(pkt *rtp.Packet, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.videoAt = append(d.videoAt, now)
	sn := int64(pkt.SequenceNumber)
	if n := len(d.videoSN); n > 0 { // unwrapped near the last
		last := d.videoSN[n-1]
		sn = last + int64(int16(pkt.SequenceNumber-uint16(last)))
	}
	d.videoSN = append(d.videoSN, sn)
	p := packet{padding: true} // padding alone (the bridge's probe), between frames
	if len(pkt.Payload) == 0 {
		d.padAt = append(d.padAt, now)
	} else {
		start, key, width, err := parseVP8(pkt.Payload)
		if err != nil {
			return
		}
		p = packet{start: start, key: key, marker: pkt.Marker, layer: pkt.Payload[len(pkt.Payload)-1], width: width}
	}
	d.ssrc = pkt.SSRC
	if len(d.pkts) == 0 || int16(pkt.SequenceNumber-d.newest) > 0 {
		d.newest = pkt.SequenceNumber
	}
	d.pkts[pkt.SequenceNumber] = p
	for d.decodeNext(now) {
	}
	for q := range d.pkts { // what is far behind is no use
		if int16(d.newest-q) > 600 || d.have && int16(d.last-q) >= 0 {
			delete(d.pkts, q)
		}
	}
}

// frameAt returns the end of the whole frame starting at seq, if it has
// all arrived.
func (d *Decoder) frameAt(seq uint16) (end uint16, ok bool) {
	if p, ok := d.pkts[seq]; !ok || !p.start {
		return 0, false
	}
	for q := seq; int16(q-seq) < 1000; q++ {
		p, ok := d.pkts[q]
		if !ok {
			return 0, false
		}
		if p.marker {
			return q, true
		}
	}
	return 0, false
}

// decodeNext decodes the frame following the last decoded, or else the
// newest whole keyframe after it; false if there is none.
func (d *Decoder) decodeNext(now time.Time) bool {
	if d.have {
		next := d.last + 1
		for d.pkts[next].padding {
			next++
		}
		if end, ok := d.frameAt(next); ok {
			d.done(now, next, end)
			return true
		}
	}
	best, found := uint16(0), false
	for q, p := range d.pkts {
		if !p.key || d.have && int16(q-d.last) <= 0 || found && int16(q-best) < 0 {
			continue
		}
		if _, ok := d.frameAt(q); ok {
			best, found = q, true
		}
	}
	if !found {
		return false
	}
	end, _ := d.frameAt(best)
	d.done(now, best, end)
	return true
}

func (d *Decoder) done(now time.Time, first, end uint16) {
	p := d.pkts[first]
	d.have, d.last, d.decoded = true, end, now
	d.frames = append(d.frames, frame{at: now, layer: p.layer, key: p.key, width: p.width})
}

// Stuck reports whether the decoder, having received video, decoded
// nothing in the KeyframeRequestInterval before now, and the video's
// SSRC: if so, it counts a keyframe request (PLI) as sent, which the
// caller sends.
func (d *Decoder) Stuck(now time.Time) (ssrc uint32, stuck bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ssrc == 0 || now.Sub(d.decoded) < KeyframeRequestInterval {
		return 0, false
	}
	d.plis = append(d.plis, now)
	return d.ssrc, true
}

// RequestKeyframes calls pli with the video's SSRC every
// KeyframeRequestInterval while the decoder is Stuck, until stop is
// closed.
func (d *Decoder) RequestKeyframes(stop <-chan struct{}, pli func(ssrc uint32)) {
	tick := time.NewTicker(KeyframeRequestInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			if ssrc, stuck := d.Stuck(now); stuck {
				pli(ssrc)
			}
		}
	}
}

// Report sums up the window ending at end.
func (d *Decoder) Report(end time.Time, window time.Duration) Report {
	from := end.Add(-window)
	d.mu.Lock()
	defer d.mu.Unlock()
	r := Report{WindowMS: int(window / time.Millisecond), FramesByLayer: map[string]int{}}
	prev := from
	for _, f := range d.frames {
		if f.key && f.width != 0 {
			r.Width = int(f.width)
		}
		if f.at.Before(from) || f.at.After(end) {
			continue
		}
		r.Frames++
		r.FramesByLayer[string(f.layer)]++
		if f.key {
			r.Keyframes++
		}
		r.freeze(from, prev, f.at)
		prev = f.at
	}
	r.freeze(from, prev, end)
	r.FPS = float64(r.Frames) / window.Seconds()
	r.VideoPackets = countSince(d.videoAt, from)
	r.PaddingPackets = countSince(d.padAt, from)
	r.VideoMissing = missing(d.videoAt, d.videoSN, from)
	r.AudioPackets = countSince(d.audioAt, from)
	r.KeyframeRequests = countSince(d.plis, from)
	prev = from
	for i, at := range d.audioAt {
		if at.Before(from) {
			continue
		}
		// Opus at 48 kHz, a packet every 20 ms: a step of more than 960
		// is sound lost.
		if step := int32(d.audioTS[i] - d.audioTS[max(i-1, 0)]); i > 0 && step > 960 {
			r.LongestAudioLossMS = max(r.LongestAudioLossMS, int(step-960)/48)
		}
		r.LongestAudioGapMS = max(r.LongestAudioGapMS, int(at.Sub(prev)/time.Millisecond))
		prev = at
	}
	r.LongestAudioGapMS = max(r.LongestAudioGapMS, int(end.Sub(prev)/time.Millisecond))
	return r
}

// missing counts the sequence numbers, from the lowest to the highest of
// the packets that arrived from from on, that never arrived.
func missing(at []time.Time, sns []int64, from time.Time) int {
	seen := map[int64]bool{}
	lo, hi := int64(0), int64(-1)
	for i, t := range at {
		if t.Before(from) {
			continue
		}
		if len(seen) == 0 || sns[i] < lo {
			lo = sns[i]
		}
		if len(seen) == 0 || sns[i] > hi {
			hi = sns[i]
		}
		seen[sns[i]] = true
	}
	if len(seen) == 0 {
		return 0
	}
	// Those from before the window that fall in its span arrived too.
	for i, t := range at {
		if t.Before(from) && sns[i] >= lo && sns[i] <= hi {
			seen[sns[i]] = true
		}
	}
	return int(hi-lo+1) - len(seen)
}

// freeze counts the time from a to b without a decoded frame, if it is
// a freeze; from is the window's start.
func (r *Report) freeze(from, a, b time.Time) {
	gap := b.Sub(a)
	if gap <= FreezeGap {
		return
	}
	r.Freezes++
	r.LongestFreezeMS = max(r.LongestFreezeMS, int(gap/time.Millisecond))
	r.FreezesAt = append(r.FreezesAt, [2]int{int(a.Sub(from) / time.Millisecond), int(gap / time.Millisecond)})
}
