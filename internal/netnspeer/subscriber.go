package netnspeer

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/internal/netnspeer/synth"
)

// FreezeGap is the longest time without a decoded frame that is not a
// freeze.
const FreezeGap = synth.FreezeGap

// Report is what a subscriber received over a window of time ending
// when it was asked (synth.Report, shared with the LiveKit client).
type Report = synth.Report

// subscriber receives a publisher's audio and video, decoding the video
// as a browser's decoder would (synth.Decoder). While it decodes nothing
// it asks for a keyframe (PLI) every 500 ms, as a browser does when it
// has nothing to start from.
type subscriber struct {
	pc   *webrtc.PeerConnection
	dec  *synth.Decoder
	stop chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	video bool // a video track was taken: later ones are not decoded
}

func newSubscriber(pc *webrtc.PeerConnection) *subscriber {
	s := &subscriber{pc: pc, dec: synth.NewDecoder(), stop: make(chan struct{})}
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
				s.dec.Video(pkt, time.Now())
			} else if tr.Kind() == webrtc.RTPCodecTypeAudio {
				s.dec.Audio(pkt, time.Now())
			}
		}
	})
	s.wg.Go(func() {
		s.dec.RequestKeyframes(s.stop, func(ssrc uint32) {
			_ = s.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
		})
	})
	return s
}

// close stops asking for keyframes; the connection is closed by then.
func (s *subscriber) close() {
	close(s.stop)
	s.wg.Wait()
}

// report sums up the last window.
func (s *subscriber) report(window time.Duration) Report {
	return s.dec.Report(time.Now(), window)
}
