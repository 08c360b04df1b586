package media_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/media"
)

// A bridge beside a focus: alice joins her meeting at the focus, gets a
// media token bound to her DTLS certificate, and the bridge answers her
// offer; without a token it refuses before acting on the offer.
func Example() {
	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test"})
	_ = dir.PutUser(auth.User{URI: "sip:alice@example.test", Tenant: "example.test", Enabled: true, MeetingLicense: true})
	tokens, _ := conference.NewTokenIssuer(nil, nil) // the key the focus and the bridge share
	focus, _ := conference.NewFocus(conference.FocusConfig{Meetings: conference.NewMemoryMeetings(), Directory: dir, Tokens: tokens,
		JoinURL: "https://meet.example.test", MediaServer: "127.0.0.1"})
	defer focus.Close()

	udp, _ := net.ListenPacket("udp4", "127.0.0.1:0") // every participant's media, on one port
	defer udp.Close()
	bridge, err := media.NewBridge(media.BridgeConfig{Tokens: tokens, Meetings: focus, UDP: udp})
	if err != nil {
		panic(err)
	}
	defer bridge.Close()

	ctx := context.Background()
	alice := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal, Method: auth.MethodDigest}
	m, _ := focus.Schedule(ctx, alice, conference.MeetingOptions{})
	p, _ := focus.Join(ctx, m.ID, conference.JoinRequest{Identity: alice})

	// alice's client: a WebRTC peer connection that sends audio.
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	me := &webrtc.MediaEngine{}
	_ = me.RegisterDefaultCodecs()
	pc, _ := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	defer pc.Close()
	mic, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "alice")
	_, _ = pc.AddTrack(mic)
	offer, _ := pc.CreateOffer(nil)
	gathered := webrtc.GatheringCompletePromise(pc)
	_ = pc.SetLocalDescription(offer)
	<-gathered
	sdp := pc.LocalDescription().SDP
	fingerprint := ""
	for _, line := range strings.Split(sdp, "\r\n") {
		if v, ok := strings.CutPrefix(line, "a=fingerprint:"); ok {
			fingerprint = v
		}
	}

	_, err = bridge.Join(ctx, media.JoinRequest{Meeting: m.ID, Participant: p.ID, Offer: sdp})
	fmt.Println("without a token:", errors.Is(err, media.ErrRefused))

	grant, _ := focus.AddUser(m.ID, p.ID, fingerprint) // what the focus answers add-user with
	s, err := bridge.Join(ctx, media.JoinRequest{Meeting: m.ID, Participant: p.ID, Token: grant.Token, Offer: sdp})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	fmt.Println("answered:", pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.Answer()}) == nil)
	// Output:
	// without a token: true
	// answered: true
}
