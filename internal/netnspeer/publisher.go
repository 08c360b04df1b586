package netnspeer

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/internal/netnspeer/synth"
)

// publisher sends one video track as three simulcast layers, as a
// browser does (each layer its own SSRC, its packets naming their MID
// and RID in header extensions; synth.Video's frames 30 times a second),
// and Opus audio (synth.Audio), a packet every 20 ms.
type publisher struct {
	pc     *webrtc.PeerConnection
	sender *webrtc.RTPSender
	tracks [Layers]*webrtc.TrackLocalStaticRTP
	audio  *webrtc.TrackLocalStaticRTP
	video  *synth.Video
	sound  *synth.Audio

	stop    chan struct{}
	wg      sync.WaitGroup
	started bool
}

func newPublisher(pc *webrtc.PeerConnection, cfg Config) (*publisher, error) {
	p := &publisher{pc: pc, stop: make(chan struct{}), video: synth.NewVideo(cfg.LayerBytes, cfg.KeyframeBytes),
		sound: synth.NewAudio(cfg.AudioBytes)}
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
						p.video.RequestKeyframe(i)
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

// report is what the publisher sent over the last window.
func (p *publisher) report(window time.Duration) Report {
	return synth.PublisherReport(p.video, p.sound, time.Now(), window)
}

func (p *publisher) sendAudio() {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		_ = p.audio.WriteRTP(p.sound.Next(time.Now()))
	}
}

func (p *publisher) sendVideo() {
	var midID, ridID uint8
	var mid string
	tick := time.NewTicker(synth.FrameInterval)
	defer tick.Stop()
	for {
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
				mid = ""
				continue
			}
		}
		for i, pkts := range p.video.Next(time.Now()) {
			for _, pkt := range pkts {
				_ = pkt.SetExtension(midID, []byte(mid))
				_ = pkt.SetExtension(ridID, []byte(RIDs[i]))
				_ = p.tracks[i].WriteRTP(pkt)
			}
		}
	}
}
