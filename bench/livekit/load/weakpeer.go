package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/parleyuc/parley/internal/netnspeer/synth"
)

// Roles of a weak-link peer, as internal/netnspeer's.
const (
	rolePublisher  = "publisher"
	roleSubscriber = "subscriber"
)

// weakConfig is what a weak-link peer is: the first weakMessage its
// input carries. The media are internal/netnspeer's (synth), the same
// the peers joined to Parley's bridge send and decode.
type weakConfig struct {
	// Role is rolePublisher or roleSubscriber.
	Role string `json:"role"`
	// URL, APIKey, APISecret, Room and Identity are how to join.
	URL       string `json:"url"`
	APIKey    string `json:"api_key"`
	APISecret string `json:"api_secret"`
	Room      string `json:"room"`
	Identity  string `json:"identity"`
	// LayerBytes, KeyframeBytes and AudioBytes are as in netnspeer's
	// Config (publisher only).
	LayerBytes    [synth.Layers]int `json:"layer_bytes,omitempty"`
	KeyframeBytes [synth.Layers]int `json:"keyframe_bytes,omitempty"`
	AudioBytes    int               `json:"audio_bytes,omitempty"`
}

func (c *weakConfig) check() error {
	switch {
	case c.Role != rolePublisher && c.Role != roleSubscriber:
		return fmt.Errorf("weakConfig.Role %q is neither %q nor %q", c.Role, rolePublisher, roleSubscriber)
	case c.URL == "":
		return errors.New("weakConfig.URL is empty")
	case c.APIKey == "" || c.APISecret == "":
		return errors.New("weakConfig.APIKey or APISecret is empty")
	case c.Room == "" || c.Identity == "":
		return errors.New("weakConfig.Room or Identity is empty")
	case c.AudioBytes < 0 || c.AudioBytes > 1200:
		return fmt.Errorf("weakConfig.AudioBytes %d is not from 0 to 1200", c.AudioBytes)
	}
	for i := range synth.Layers {
		if c.LayerBytes[i] < 0 || c.LayerBytes[i] > 1100 {
			return fmt.Errorf("weakConfig.LayerBytes[%d] %d is not from 0 to 1100", i, c.LayerBytes[i])
		}
		if c.KeyframeBytes[i] < 0 || c.KeyframeBytes[i] > 1<<20 {
			return fmt.Errorf("weakConfig.KeyframeBytes[%d] %d is not from 0 to 1 MiB", i, c.KeyframeBytes[i])
		}
	}
	return nil
}

// weakMessage is one line of a weak-link peer's input or output; exactly
// one field is set.
type weakMessage struct {
	// Config, in: what the peer is (the first line).
	Config *weakConfig `json:"config,omitempty"`
	// Joined, out: the peer is in the room (a publisher: its tracks are
	// published and bound).
	Joined bool `json:"joined,omitempty"`
	// ReportWindow, in, asks for a Report over the last this many
	// milliseconds.
	ReportWindow int `json:"report_window_ms,omitempty"`
	// Report, out: as netnspeer's.
	Report *synth.Report `json:"report,omitempty"`
	// Error, out: why the peer stops.
	Error string `json:"error,omitempty"`
}

// runWeakPeer is a weak-link peer's life, as netnspeer.Run's against
// Parley's bridge: it reads weakMessages from in and writes them to out,
// joins LiveKit's room as its config says (LiveKit's Go SDK does the
// signaling), and reports what it sent or received when asked, until in
// ends.
func runWeakPeer(in io.Reader, out io.Writer) (err error) {
	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(m weakMessage) error {
		outMu.Lock()
		defer outMu.Unlock()
		return enc.Encode(m)
	}
	defer func() {
		if err != nil {
			_ = send(weakMessage{Error: err.Error()})
		}
	}()
	lines := bufio.NewScanner(in)
	lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
	next := func() (weakMessage, error) {
		var m weakMessage
		if !lines.Scan() {
			if err := lines.Err(); err != nil {
				return m, err
			}
			return m, io.EOF
		}
		return m, json.Unmarshal(lines.Bytes(), &m)
	}
	first, err := next()
	if err != nil {
		return fmt.Errorf("reading the config: %w", err)
	}
	if first.Config == nil {
		return errors.New("the first message has no config")
	}
	cfg := *first.Config
	if err := cfg.check(); err != nil {
		return err
	}
	stalls := synth.NewStallMeter()
	defer stalls.Close()
	var report func(end time.Time, window time.Duration) synth.Report
	if cfg.Role == rolePublisher {
		p, err := publishWeak(cfg)
		if err != nil {
			return err
		}
		defer p.close()
		report = func(end time.Time, window time.Duration) synth.Report {
			return synth.PublisherReport(p.video, p.audio, end, window)
		}
	} else {
		s, err := subscribeWeak(cfg)
		if err != nil {
			return err
		}
		defer s.close()
		report = s.dec.Report
	}
	if err := send(weakMessage{Joined: true}); err != nil {
		return err
	}
	for {
		m, err := next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading a message: %w", err)
		}
		if m.ReportWindow <= 0 {
			return fmt.Errorf("unexpected message %+v", m)
		}
		window := time.Duration(m.ReportWindow) * time.Millisecond
		r := report(time.Now(), window)
		r.LongestStallMS = int(stalls.Longest(time.Now().Add(-window)) / time.Millisecond)
		if err := send(weakMessage{Report: &r}); err != nil {
			return err
		}
	}
}

func (c weakConfig) connect(cb *lksdk.RoomCallback) (*lksdk.Room, error) {
	return lksdk.ConnectToRoom(c.URL, lksdk.ConnectInfo{APIKey: c.APIKey, APISecret: c.APISecret, RoomName: c.Room,
		ParticipantIdentity: c.Identity}, cb, lksdk.WithAutoSubscribe(c.Role == roleSubscriber))
}

// weakPublisher publishes synth's three VP8 layers as one simulcast
// track (its layers declared to LiveKit, as a browser's are) and its
// Opus, and sends them as netnspeer's publisher does: every layer 30
// frames a second, keyframes when LiveKit asks.
type weakPublisher struct {
	room   *lksdk.Room
	tracks [synth.Layers]*lksdk.LocalTrack
	sound  *lksdk.LocalTrack
	video  *synth.Video
	audio  *synth.Audio
	stop   chan struct{}
	wg     sync.WaitGroup
}

var qualities = [synth.Layers]livekit.VideoQuality{livekit.VideoQuality_LOW, livekit.VideoQuality_MEDIUM, livekit.VideoQuality_HIGH}

func publishWeak(cfg weakConfig) (*weakPublisher, error) {
	p := &weakPublisher{video: synth.NewVideo(cfg.LayerBytes, cfg.KeyframeBytes), audio: synth.NewAudio(cfg.AudioBytes),
		stop: make(chan struct{})}
	for i := range synth.Layers {
		// The layer's rate as declared: two packets a frame, 30 frames a
		// second, with RTP's headers.
		rate := uint32(2 * 30 * (max(cfg.LayerBytes[i], 100) + 40) * 8)
		layer := &livekit.VideoLayer{Quality: qualities[i], Width: uint32(synth.Widths[i]), Height: uint32(synth.Widths[i]) * 9 / 16, Bitrate: rate}
		tr, err := lksdk.NewLocalTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
			lksdk.WithSimulcast("camera", layer), lksdk.WithRTCPHandler(func(pkt rtcp.Packet) {
				switch pkt.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					p.video.RequestKeyframe(i)
				}
			}))
		if err != nil {
			return nil, err
		}
		if tr.RID() != synth.RIDs[i] {
			return nil, fmt.Errorf("LiveKit's SDK names layer %d %q, synth %q", i, tr.RID(), synth.RIDs[i])
		}
		p.tracks[i] = tr
	}
	var err error
	if p.sound, err = lksdk.NewLocalTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}); err != nil {
		return nil, err
	}
	if p.room, err = cfg.connect(lksdk.NewRoomCallback()); err != nil {
		return nil, fmt.Errorf("joining: %w", err)
	}
	if _, err := p.room.LocalParticipant.PublishSimulcastTrack(p.tracks[:], &lksdk.TrackPublicationOptions{Name: "video", Source: livekit.TrackSource_CAMERA}); err != nil {
		p.room.Disconnect()
		return nil, fmt.Errorf("publishing the video: %w", err)
	}
	if _, err := p.room.LocalParticipant.PublishTrack(p.sound, &lksdk.TrackPublicationOptions{Name: "audio", Source: livekit.TrackSource_MICROPHONE}); err != nil {
		p.room.Disconnect()
		return nil, fmt.Errorf("publishing the audio: %w", err)
	}
	// The first frame is a keyframe: sent once every track is bound (as
	// netnspeer's publisher starts once negotiated).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		bound := p.sound.IsBound()
		for _, tr := range p.tracks {
			bound = bound && tr.IsBound()
		}
		if bound {
			break
		}
		if time.Now().After(deadline) {
			p.room.Disconnect()
			return nil, errors.New("the tracks were not bound in 20 s")
		}
	}
	p.wg.Go(p.sendVideo)
	p.wg.Go(p.sendAudio)
	return p, nil
}

func (p *weakPublisher) sendVideo() {
	tick := time.NewTicker(synth.FrameInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		for i, pkts := range p.video.Next(time.Now()) {
			for _, pkt := range pkts {
				_ = p.tracks[i].WriteRTP(pkt, nil)
			}
		}
	}
}

func (p *weakPublisher) sendAudio() {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		_ = p.sound.WriteRTP(p.audio.Next(time.Now()), nil)
	}
}

func (p *weakPublisher) close() {
	close(p.stop)
	p.wg.Wait()
	p.room.Disconnect()
}

// weakSubscriber subscribes to the room's tracks and decodes the first
// video track as netnspeer's subscriber does (synth.Decoder), asking for
// a keyframe every 500 ms while it decodes nothing.
type weakSubscriber struct {
	room *lksdk.Room
	dec  *synth.Decoder
	stop chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	video bool // a video track was taken: later ones are not decoded
	pli   func(ssrc uint32)
}

func subscribeWeak(cfg weakConfig) (*weakSubscriber, error) {
	s := &weakSubscriber{dec: synth.NewDecoder(), stop: make(chan struct{})}
	cb := lksdk.NewRoomCallback()
	cb.OnTrackSubscribed = func(tr *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		video := tr.Kind() == webrtc.RTPCodecTypeVideo
		if video {
			s.mu.Lock()
			taken := s.video
			s.video = true
			if !taken {
				s.pli = func(ssrc uint32) { rp.WritePLI(webrtc.SSRC(ssrc)) }
			}
			s.mu.Unlock()
			video = !taken // later ones counted, not decoded
		}
		go func() { // ends with the track
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
		}()
	}
	var err error
	if s.room, err = cfg.connect(cb); err != nil {
		return nil, fmt.Errorf("joining: %w", err)
	}
	s.wg.Go(func() {
		s.dec.RequestKeyframes(s.stop, func(ssrc uint32) {
			s.mu.Lock()
			pli := s.pli
			s.mu.Unlock()
			if pli != nil {
				pli(ssrc)
			}
		})
	})
	return s, nil
}

func (s *weakSubscriber) close() {
	close(s.stop)
	s.wg.Wait()
	s.room.Disconnect()
}
