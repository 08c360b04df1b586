// Package netnspeer is a WebRTC participant on pion for tests that run
// participants in network namespaces of their own (internal/netnstest),
// each as a process: a publisher (three-layer VP8 simulcast and Opus,
// synthetic frames) or a subscriber (which decodes the video it receives
// as a browser would, frame by frame, and counts its audio). The process
// is driven over its standard input and output, one JSON Message a line:
// it reads its Config, writes its offer, reads the answer, answers the
// bridge's later offers, and reports what it received when asked
// (Report). It ends when its input does.
package netnspeer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pion/dtls/v2"
	"github.com/pion/dtls/v2/pkg/crypto/elliptic"
	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/internal/netnspeer/synth"
)

// Roles of a peer.
const (
	RolePublisher  = "publisher"
	RoleSubscriber = "subscriber"
)

// Layers is how many layers the publisher's simulcast has, lowest first
// (synth.Layers).
const Layers = synth.Layers

// RIDs are the publisher's simulcast layers' RTP stream IDs, lowest
// first (synth.RIDs).
var RIDs = synth.RIDs

// Config is what a peer is: the first Message its input carries.
type Config struct {
	// Role is RolePublisher or RoleSubscriber.
	Role string `json:"role"`
	// LayerBytes is the payload size of each layer's packets, two a
	// frame, 30 frames a second (0: 100 bytes). Publisher only.
	LayerBytes [Layers]int `json:"layer_bytes,omitempty"`
	// KeyframeBytes, where not 0, makes a layer's keyframes
	// camera-sized: that many bytes in packets of 1,100, sent at the
	// layer's start and when the bridge asks (as a browser does), not
	// every 3 s. Publisher only.
	KeyframeBytes [Layers]int `json:"keyframe_bytes,omitempty"`
	// AudioBytes is the payload size of the audio packets, one every
	// 20 ms (0: 60 bytes). Publisher only.
	AudioBytes int `json:"audio_bytes,omitempty"`
}

func (c *Config) check() error {
	switch {
	case c.Role != RolePublisher && c.Role != RoleSubscriber:
		return fmt.Errorf("netnspeer: Config.Role %q is neither %q nor %q", c.Role, RolePublisher, RoleSubscriber)
	case c.AudioBytes < 0 || c.AudioBytes > 1200:
		return fmt.Errorf("netnspeer: Config.AudioBytes %d is not from 0 to 1200", c.AudioBytes)
	}
	for i := range Layers {
		if c.LayerBytes[i] < 0 || c.LayerBytes[i] > 1100 {
			return fmt.Errorf("netnspeer: Config.LayerBytes[%d] %d is not from 0 to 1100", i, c.LayerBytes[i])
		}
		if c.KeyframeBytes[i] < 0 || c.KeyframeBytes[i] > 1<<20 {
			return fmt.Errorf("netnspeer: Config.KeyframeBytes[%d] %d is not from 0 to 1 MiB", i, c.KeyframeBytes[i])
		}
	}
	return nil
}

// Message is one line of a peer's input or output. Exactly one field is
// set.
type Message struct {
	// Config, in: what the peer is (the first line).
	Config *Config `json:"config,omitempty"`
	// Offer: out, the peer's first offer; in, the bridge's later offers.
	Offer string `json:"offer,omitempty"`
	// Answer: in, the bridge's answer to the first offer; out, the
	// peer's answers to the bridge's offers.
	Answer string `json:"answer,omitempty"`
	// ReportWindow, in, asks for a Report over the last this many
	// milliseconds.
	ReportWindow int `json:"report_window_ms,omitempty"`
	// Report, out: what a subscriber received; of a publisher, the
	// audio packets and video frames (of each layer) it sent and how
	// long it stalled.
	Report *Report `json:"report,omitempty"`
	// Error, out: why the peer stops.
	Error string `json:"error,omitempty"`
}

// Run is a peer's life: it reads Messages from in and writes them to
// out, until in ends (nil) or something fails (the error, also written
// to out).
func Run(in io.Reader, out io.Writer) (err error) {
	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(m Message) error {
		outMu.Lock()
		defer outMu.Unlock()
		return enc.Encode(m)
	}
	defer func() {
		if err != nil {
			_ = send(Message{Error: err.Error()})
		}
	}()
	lines := bufio.NewScanner(in)
	lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
	next := func() (Message, error) {
		var m Message
		if !lines.Scan() {
			if err := lines.Err(); err != nil {
				return m, err
			}
			return m, io.EOF
		}
		err := json.Unmarshal(lines.Bytes(), &m)
		return m, err
	}
	first, err := next()
	if err != nil {
		return fmt.Errorf("netnspeer: reading the config: %w", err)
	}
	if first.Config == nil {
		return errors.New("netnspeer: the first message has no config")
	}
	cfg := *first.Config
	if err := cfg.check(); err != nil {
		return err
	}
	pc, err := newPeerConnection()
	if err != nil {
		return err
	}
	var pub *publisher
	var sub *subscriber
	if cfg.Role == RolePublisher {
		if pub, err = newPublisher(pc, cfg); err != nil {
			_ = pc.Close()
			return err
		}
	} else {
		sub = newSubscriber(pc)
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				_ = pc.Close()
				return err
			}
		}
	}
	stalls := synth.NewStallMeter()
	defer func() {
		stalls.Close()
		if pub != nil {
			pub.close()
		}
		_ = pc.Close()
		if sub != nil {
			sub.close()
		}
	}()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := setLocal(pc, offer); err != nil {
		return err
	}
	if err := send(Message{Offer: pc.LocalDescription().SDP}); err != nil {
		return err
	}
	answered := false
	for {
		m, err := next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("netnspeer: reading a message: %w", err)
		}
		switch {
		case m.Answer != "" && !answered:
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.Answer}); err != nil {
				return fmt.Errorf("netnspeer: the answer: %w", err)
			}
			answered = true
			if pub != nil {
				pub.start()
			}
		case m.Offer != "":
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.Offer}); err != nil {
				return fmt.Errorf("netnspeer: the bridge's offer: %w", err)
			}
			answer, err := pc.CreateAnswer(nil)
			if err != nil {
				return err
			}
			if err := setLocal(pc, answer); err != nil {
				return err
			}
			if err := send(Message{Answer: pc.LocalDescription().SDP}); err != nil {
				return err
			}
		case m.ReportWindow > 0:
			window := time.Duration(m.ReportWindow) * time.Millisecond
			var r Report
			if sub != nil {
				r = sub.report(window)
			} else {
				r = pub.report(window)
			}
			r.LongestStallMS = int(stalls.Longest(time.Now().Add(-window)) / time.Millisecond)
			if err := send(Message{Report: &r}); err != nil {
				return err
			}
		default:
			return fmt.Errorf("netnspeer: unexpected message %+v", m)
		}
	}
}

// setLocal sets d as pc's local description and waits for its ICE
// candidates.
func setLocal(pc *webrtc.PeerConnection, d webrtc.SessionDescription) error {
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		return err
	}
	<-gathered
	return nil
}

// newPeerConnection builds what a browser negotiates with the bridge:
// Opus and VP8, simulcast's header extensions, NACK, RTCP reports and
// transport-wide congestion control feedback, DTLS on FIPS-approved
// curves, over IPv4.
func newPeerConnection() (*webrtc.PeerConnection, error) {
	m := &webrtc.MediaEngine{}
	for _, c := range []struct {
		params webrtc.RTPCodecParameters
		kind   webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "ccm", Parameter: "fir"}}}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
	} {
		if err := m.RegisterCodec(c.params, c.kind); err != nil {
			return nil, err
		}
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	se.SetDTLSEllipticCurves(elliptic.P256, elliptic.P384)
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return api.NewPeerConnection(webrtc.Configuration{})
}
