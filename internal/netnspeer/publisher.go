package netnspeer

import (
	"cmp"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

// publisher sends one video track as three simulcast layers, as a
// browser does (each layer its own SSRC, its packets naming their MID
// and RID in header extensions, VP8 frames 30 times a second with 15-bit
// picture IDs and TL0PICIDX, keyframes at the start and when the bridge
// asks), and Opus audio, a packet every 20 ms.
type publisher struct {
	cfg    Config
	pc     *webrtc.PeerConnection
	sender *webrtc.RTPSender
	tracks [Layers]*webrtc.TrackLocalStaticRTP
	audio  *webrtc.TrackLocalStaticRTP

	stop    chan struct{}
	wg      sync.WaitGroup
	started bool

	mu      sync.Mutex
	wantKey [Layers]bool
	sentAt  []time.Time // of the audio packets
	frameAt []time.Time // of the video frames (one of each layer)
}

func newPublisher(pc *webrtc.PeerConnection, cfg Config) (*publisher, error) {
	p := &publisher{cfg: cfg, pc: pc, stop: make(chan struct{})}
	for i, rid := range RIDs {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "camera", webrtc.WithRTPStreamID(rid))
		if err != nil {
			return nil, err
		}
		p.tracks[i] = tr
	}
	sender, err := pc.AddTrack(p.tracks[0])
	if err != nil {
		return nil, err
	}
	for _, tr := range p.tracks[1:] {
		if err := sender.AddEncoding(tr); err != nil {
			return nil, err
		}
	}
	p.sender = sender
	if p.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "camera"); err != nil {
		return nil, err
	}
	if _, err := pc.AddTrack(p.audio); err != nil {
		return nil, err
	}
	return p, nil
}

// start sends the media and reads the bridge's RTCP until close.
func (p *publisher) start() {
	if p.started {
		return
	}
	p.started = true
	for i, rid := range RIDs {
		p.wg.Go(func() {
			for {
				pkts, _, err := p.sender.ReadSimulcastRTCP(rid)
				if err != nil {
					return
				}
				for _, pkt := range pkts {
					switch pkt.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						p.mu.Lock()
						p.wantKey[i] = true
						p.mu.Unlock()
					}
				}
			}
		})
	}
	p.wg.Go(p.sendVideo)
	p.wg.Go(p.sendAudio)
}

// close stops sending and reading; before the connection closes (pion
// v3 races a simulcast RTCP read with the sender's stop).
func (p *publisher) close() {
	close(p.stop)
	for _, rid := range RIDs {
		_ = p.sender.SetReadDeadlineSimulcast(time.Now(), rid)
	}
	p.wg.Wait()
}

// sent returns how many audio packets and video frames (of each layer)
// were sent since from.
func (p *publisher) sent(from time.Time) (audio, frames int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return countSince(p.sentAt, from), countSince(p.frameAt, from)
}

func (p *publisher) sendAudio() {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	payload := make([]byte, cmp.Or(p.cfg.AudioBytes, 60))
	var seq uint16 = 7000
	var ts uint32 = 123456
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		_ = p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: ts}, Payload: payload})
		p.mu.Lock()
		p.sentAt = append(p.sentAt, time.Now())
		p.mu.Unlock()
		seq++
		ts += 960
	}
}

func (p *publisher) sendVideo() {
	seq := [Layers]uint16{65000, 1, 30000}
	ts := [Layers]uint32{1e9, 5, 4294000000}
	pic := [Layers]uint16{100, 20000, 32700}
	tl0 := [Layers]uint8{250, 0, 128}
	var midID, ridID uint8
	var mid string
	tick := time.NewTicker(33 * time.Millisecond)
	defer tick.Stop()
	for frame := 0; ; frame++ {
		select {
		case <-p.stop:
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
				mid, frame = "", -1
				continue
			}
		}
		p.mu.Lock()
		p.frameAt = append(p.frameAt, time.Now())
		p.mu.Unlock()
		for i := range Layers {
			p.mu.Lock()
			key := frame == 0 || p.wantKey[i] || frame%90 == 0 && p.cfg.KeyframeBytes[i] == 0
			p.wantKey[i] = false
			p.mu.Unlock()
			size := cmp.Or(p.cfg.LayerBytes[i], 100)
			parts, left := 2, 0
			if key && p.cfg.KeyframeBytes[i] > 0 { // camera-sized: in packets of 1,100 bytes
				parts, left = (p.cfg.KeyframeBytes[i]+1099)/1100, p.cfg.KeyframeBytes[i]
			}
			for part := range parts {
				if left > 0 {
					size = min(left, 1100)
					left -= size
				}
				body := make([]byte, size)
				body[len(body)-1] = RIDs[i][0]
				h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq[i], Timestamp: ts[i], Marker: part == parts-1}
				_ = h.SetExtension(midID, []byte(mid))
				_ = h.SetExtension(ridID, []byte(RIDs[i]))
				payload := vp8Payload(pic[i], tl0[i], part == 0, key, Widths[i], Widths[i]*9/16, body)
				_ = p.tracks[i].WriteRTP(&rtp.Packet{Header: h, Payload: payload})
				seq[i]++
			}
			ts[i] += 3000
			pic[i] = (pic[i] + 1) & 0x7fff
			tl0[i]++
		}
	}
}

// vp8Payload is a VP8 RTP payload (RFC 7741): a descriptor with a 15-bit
// picture ID and TL0PICIDX, and on a frame's first packet the VP8
// payload header (a keyframe's with its start code and size), then body.
func vp8Payload(pic uint16, tl0 uint8, start, key bool, width, height uint16, body []byte) []byte {
	b0 := byte(0x80) // X
	if start {
		b0 |= 0x10 // S, partition 0
	}
	p := []byte{b0, 0x80 | 0x40, 0x80 | byte(pic>>8)&0x7f, byte(pic), tl0}
	if start {
		if key {
			p = append(p, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, byte(width), byte(width>>8), byte(height), byte(height>>8))
		} else {
			p = append(p, 0x01, 0x00, 0x00)
		}
	}
	return append(p, body...)
}
