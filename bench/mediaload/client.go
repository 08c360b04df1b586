package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/bench/mediasynth"
)

// newAPI is a browser-like pion stack: Opus and VP8, NACK, RTCP reports
// and TWCC feedback (pion's default interceptors), host candidates on
// loopback only.
func newAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus,
		ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8,
		ClockRate: 90000, RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}, {Type: "transport-cc"}}},
		PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// peer is one participant: its connection and its signaling with the
// bridgeserver.
type peer struct {
	server string
	http   *http.Client
	pc     *webrtc.PeerConnection
	pid    string
	count  *mediasynth.Counter // a subscriber's
	audio  *webrtc.TrackLocalStaticRTP
	video  *webrtc.TrackLocalStaticRTP
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// join connects user to the bridgeserver: a publisher (publish) sends
// audio and video, a subscriber offers to receive them and counts what
// arrives.
func join(ctx context.Context, api *webrtc.API, server, user string, publish bool) (*peer, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &peer{server: strings.TrimSuffix(server, "/"), http: &http.Client{Timeout: 30 * time.Second}, pc: pc, cancel: cancel}
	if err := p.setup(publish); err != nil {
		p.close()
		return nil, err
	}
	offer, err := p.describe(true)
	if err != nil {
		p.close()
		return nil, err
	}
	var g struct {
		Meeting     string `json:"meeting"`
		Participant string `json:"participant"`
		Token       string `json:"token"`
	}
	if err := p.post(ctx, "/token", map[string]string{"user": user, "fingerprint": fingerprint(offer)}, &g); err != nil {
		p.close()
		return nil, err
	}
	p.pid = g.Participant
	var a struct {
		Answer string `json:"answer"`
	}
	if err := p.post(ctx, "/join", map[string]string{"meeting": g.Meeting, "participant": g.Participant, "token": g.Token, "offer": offer}, &a); err != nil {
		p.close()
		return nil, err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.Answer}); err != nil {
		p.close()
		return nil, err
	}
	p.wg.Go(func() { p.renegotiate(ctx) })
	return p, nil
}

func (p *peer) setup(publish bool) error {
	if !publish {
		p.count = &mediasynth.Counter{}
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			if _, err := p.pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				return err
			}
		}
		p.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			video := tr.Kind() == webrtc.RTPCodecTypeVideo
			buf := make([]byte, 1500)
			var pkt rtp.Packet
			for {
				n, _, err := tr.Read(buf)
				if err != nil {
					return
				}
				if pkt.Unmarshal(buf[:n]) == nil {
					p.count.Add(video, pkt.SequenceNumber, pkt.Payload)
				}
			}
		})
		return nil
	}
	var err error
	p.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "camera")
	if err != nil {
		return err
	}
	p.video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "camera")
	if err != nil {
		return err
	}
	for _, tr := range []*webrtc.TrackLocalStaticRTP{p.audio, p.video} {
		sender, err := p.pc.AddTrack(tr)
		if err != nil {
			return err
		}
		p.wg.Go(func() { // RTCP from the bridge: its NACKs are answered by the interceptor
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		})
	}
	return nil
}

// sink writes the publisher's packets to its tracks.
func (p *peer) sink() mediasynth.Sink {
	var h rtp.Packet
	h.Version = 2
	return func(pkt *mediasynth.Packet) error {
		h.SequenceNumber, h.Timestamp, h.Marker, h.Payload = pkt.Seq, pkt.Timestamp, pkt.Marker, pkt.Payload
		tr := p.audio
		if pkt.Video {
			tr = p.video
		}
		err := tr.WriteRTP(&h)
		if errors.Is(err, io.ErrClosedPipe) {
			return nil // not yet bound: as a browser's track before it connects
		}
		return err
	}
}

// describe makes an offer (or an answer), applies it and returns it with
// every candidate gathered.
func (p *peer) describe(offer bool) (string, error) {
	var d webrtc.SessionDescription
	var err error
	if offer {
		d, err = p.pc.CreateOffer(nil)
	} else {
		d, err = p.pc.CreateAnswer(nil)
	}
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(d); err != nil {
		return "", err
	}
	<-gathered
	return p.pc.LocalDescription().SDP, nil
}

// renegotiate answers the bridge's offers for as long as the session
// lasts.
func (p *peer) renegotiate(ctx context.Context) {
	q := url.Values{"participant": {p.pid}}.Encode()
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.server+"/offer?"+q, nil)
		if err != nil {
			return
		}
		res, err := p.http.Do(req)
		if err != nil {
			return
		}
		body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		_ = res.Body.Close()
		switch {
		case err != nil:
			return
		case res.StatusCode == http.StatusNoContent:
			continue
		case res.StatusCode != http.StatusOK:
			return
		}
		if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(body)}); err != nil {
			return
		}
		answer, err := p.describe(false)
		if err != nil {
			return
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.server+"/answer?"+q, strings.NewReader(answer))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/sdp")
		res, err = p.http.Do(req)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
	}
}

func (p *peer) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.server+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", path, res.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

func (p *peer) close() {
	p.cancel()
	_ = p.pc.Close()
	p.wg.Wait()
}

func fingerprint(sdp string) string {
	for _, line := range strings.Split(sdp, "\r\n") {
		if v, ok := strings.CutPrefix(line, "a=fingerprint:"); ok {
			return v
		}
	}
	return ""
}
