package netnspeer

import (
	"errors"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// FreezeGap is the longest time without a decoded frame that is not a
// freeze.
const FreezeGap = 500 * time.Millisecond

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

// subscriber receives a publisher's audio and video, decoding the video
// as a browser's decoder would: a frame is decoded once all its packets
// have arrived (from its first, which starts a VP8 partition, to the
// marker), if it is a keyframe or follows the frame decoded last. While
// it decodes nothing it asks for a keyframe (PLI) every 500 ms, as a
// browser does when it has nothing to start from.
type subscriber struct {
	pc   *webrtc.PeerConnection
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	video   bool   // a video track was taken: later ones are not decoded
	ssrc    uint32 // the video's, once a packet arrived
	pkts    map[uint16]packet
	newest  uint16
	have    bool   // a frame was decoded: the next can follow it
	last    uint16 // the sequence number of the last decoded frame's end
	decoded time.Time
	frames  []frame
	videoAt []time.Time
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

func newSubscriber(pc *webrtc.PeerConnection) *subscriber {
	s := &subscriber{pc: pc, stop: make(chan struct{}), pkts: map[uint16]packet{}}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		video := tr.Kind() == webrtc.RTPCodecTypeVideo
		if video {
			s.mu.Lock()
			taken := s.video
			s.video = true
			s.mu.Unlock()
			if taken {
				video = false // counted, not decoded
			}
		}
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if video {
				s.onVideo(pkt)
			} else if tr.Kind() == webrtc.RTPCodecTypeAudio {
				s.mu.Lock()
				s.audioAt = append(s.audioAt, time.Now())
				s.audioTS = append(s.audioTS, pkt.Timestamp)
				s.mu.Unlock()
			}
		}
	})
	s.wg.Go(s.askForKeyframes)
	return s
}

// close stops asking for keyframes; the connection is closed by then.
func (s *subscriber) close() {
	close(s.stop)
	s.wg.Wait()
}

var errShort = errors.New("netnspeer: VP8 payload too short")

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

func (s *subscriber) onVideo(pkt *rtp.Packet) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.videoAt = append(s.videoAt, now)
	p := packet{padding: true} // padding alone (the bridge's probe), between frames
	if len(pkt.Payload) > 0 {
		start, key, width, err := parseVP8(pkt.Payload)
		if err != nil {
			return
		}
		p = packet{start: start, key: key, marker: pkt.Marker, layer: pkt.Payload[len(pkt.Payload)-1], width: width}
	}
	s.ssrc = pkt.SSRC
	if len(s.pkts) == 0 || int16(pkt.SequenceNumber-s.newest) > 0 {
		s.newest = pkt.SequenceNumber
	}
	s.pkts[pkt.SequenceNumber] = p
	for s.decodeNext(now) {
	}
	for q := range s.pkts { // what is far behind is no use
		if int16(s.newest-q) > 600 || s.have && int16(s.last-q) >= 0 {
			delete(s.pkts, q)
		}
	}
}

// frameAt returns the end of the whole frame starting at seq, if it has
// all arrived.
func (s *subscriber) frameAt(seq uint16) (end uint16, ok bool) {
	if p, ok := s.pkts[seq]; !ok || !p.start {
		return 0, false
	}
	for q := seq; int16(q-seq) < 1000; q++ {
		p, ok := s.pkts[q]
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
func (s *subscriber) decodeNext(now time.Time) bool {
	if s.have {
		next := s.last + 1
		for s.pkts[next].padding {
			next++
		}
		if end, ok := s.frameAt(next); ok {
			s.done(now, next, end)
			return true
		}
	}
	best, found := uint16(0), false
	for q, p := range s.pkts {
		if !p.key || s.have && int16(q-s.last) <= 0 || found && int16(q-best) < 0 {
			continue
		}
		if _, ok := s.frameAt(q); ok {
			best, found = q, true
		}
	}
	if !found {
		return false
	}
	end, _ := s.frameAt(best)
	s.done(now, best, end)
	return true
}

func (s *subscriber) done(now time.Time, first, end uint16) {
	p := s.pkts[first]
	s.have, s.last, s.decoded = true, end, now
	s.frames = append(s.frames, frame{at: now, layer: p.layer, key: p.key, width: p.width})
}

// askForKeyframes sends a PLI every 500 ms while nothing was decoded in
// the last 500 ms, until close.
func (s *subscriber) askForKeyframes() {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			s.mu.Lock()
			ssrc, stuck := s.ssrc, now.Sub(s.decoded) >= 500*time.Millisecond
			if ssrc != 0 && stuck {
				s.plis = append(s.plis, now)
			}
			s.mu.Unlock()
			if ssrc != 0 && stuck {
				_ = s.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
			}
		}
	}
}

// report sums up the last window.
func (s *subscriber) report(window time.Duration) Report {
	end := time.Now()
	from := end.Add(-window)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := Report{WindowMS: int(window / time.Millisecond), FramesByLayer: map[string]int{}}
	prev := from
	for _, f := range s.frames {
		if f.key && f.width != 0 {
			r.Width = int(f.width)
		}
		if f.at.Before(from) {
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
	r.VideoPackets = countSince(s.videoAt, from)
	r.AudioPackets = countSince(s.audioAt, from)
	r.KeyframeRequests = countSince(s.plis, from)
	prev = from
	for i, at := range s.audioAt {
		if at.Before(from) {
			continue
		}
		// Opus at 48 kHz, a packet every 20 ms: a step of more than 960
		// is sound lost.
		if d := int32(s.audioTS[i] - s.audioTS[max(i-1, 0)]); i > 0 && d > 960 {
			r.LongestAudioLossMS = max(r.LongestAudioLossMS, int(d-960)/48)
		}
		r.LongestAudioGapMS = max(r.LongestAudioGapMS, int(at.Sub(prev)/time.Millisecond))
		prev = at
	}
	r.LongestAudioGapMS = max(r.LongestAudioGapMS, int(end.Sub(prev)/time.Millisecond))
	return r
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

func countSince(times []time.Time, from time.Time) int {
	n := 0
	for _, at := range times {
		if !at.Before(from) {
			n++
		}
	}
	return n
}
