package media

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
	"go.uber.org/goleak"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	goleak.VerifyTestMain(m,
		// pion/webrtc v3.3.6 starts this goroutine for each track it
		// receives, to read the track's first packet; when the peer
		// connection closes while that receiver is still starting (a test
		// that hangs up right after answering), the read it blocks in is
		// never released. Every other goroutine of that connection ends:
		// it is pion's, not a connection left open.
		goleak.IgnoreAnyFunction("github.com/pion/webrtc/v3.(*PeerConnection).startReceiver.func1"))
}

// env is a focus with one meeting organized by alice (only she presents
// on entering) and a bridge on a loopback UDP port, sharing the token key.
type env struct {
	t        testing.TB
	focus    *conference.Focus
	tokens   *conference.TokenIssuer
	bridge   *Bridge
	udp      net.PacketConn
	meeting  *conference.Meeting
	dir      *auth.MemoryDirectory
	meetings *conference.MemoryMeetings
}

func newEnv(t testing.TB, expires time.Time) *env {
	t.Helper()
	return newEnvLobby(t, expires, nil)
}

// newEnvLobby is newEnv with the focus's lobby (nil: the default).
func newEnvLobby(t testing.TB, expires time.Time, lobby *conference.Lobby) *env {
	t.Helper()
	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test"})
	users := []string{"alice", "bob", "carol", "dave", "erin"}
	for i := range 60 {
		users = append(users, fmt.Sprintf("u%d", i))
	}
	for _, u := range users {
		_ = dir.PutUser(auth.User{URI: "sip:" + u + "@example.test", Tenant: "example.test", Enabled: true, MeetingLicense: true, Company: "Example Corp"})
	}
	tokens, err := conference.NewTokenIssuer(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	meetings := conference.NewMemoryMeetings()
	focus, err := conference.NewFocus(conference.FocusConfig{Meetings: meetings, Directory: dir, Tokens: tokens,
		JoinURL: "https://meet.example.test", MediaServer: "127.0.0.1", Lobby: lobby})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = focus.Close() })
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = udp.Close() })
	bridge, err := NewBridge(BridgeConfig{Tokens: tokens, Meetings: focus, UDP: udp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bridge.Close() })
	m, err := focus.Schedule(context.Background(), identity("alice"), conference.MeetingOptions{
		Access: conference.AccessOrganization, Presenter: conference.PresentersOrganizer, Expires: expires})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, focus: focus, tokens: tokens, bridge: bridge, udp: udp, meeting: m, dir: dir, meetings: meetings}
}

func identity(user string) *auth.Identity {
	return &auth.Identity{URI: "sip:" + user + "@example.test", Tenant: "example.test", Kind: auth.Internal, Method: auth.MethodDigest}
}

// enter joins user to the meeting at the focus.
func (e *env) enter(user string) *conference.Participant {
	e.t.Helper()
	p, err := e.focus.Join(context.Background(), e.meeting.ID, conference.JoinRequest{Identity: identity(user)})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// client is a participant's WebRTC client on pion: it publishes the
// tracks asked for (RTP packets with consecutive sequence numbers, every
// 20 ms) and counts what it receives per track.
type client struct {
	t    testing.TB
	pc   *webrtc.PeerConnection
	sess *Session
	stop chan struct{}
	wg   sync.WaitGroup

	locals []*webrtc.TrackLocalStaticRTP // what it publishes
	sim    *simPublisher                 // its simulcast video, if it publishes that

	mu       sync.Mutex
	received map[string]*trackStats // by stream ID + "/" + track ID
}

type trackStats struct {
	packets, gaps, repeats int
	last                   uint16
	seen                   map[uint16]bool
}

// total returns how many packets the client has received on all tracks.
func (c *client) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.received {
		n += s.packets
	}
	return n
}

// stats returns a copy of what was received on the track with the given
// key.
func (c *client) stats(key string) trackStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.received[key]; s != nil {
		return *s
	}
	return trackStats{}
}

type clientOptions struct {
	publish   []string // KindAudio, KindVideo, KindScreen
	noReplay  bool     // the client's own SRTP replay protection off, to see what the bridge forwards
	noSend    bool     // the caller writes to the client's tracks (locals) itself
	udp       net.PacketConn
	tokenHook func(conference.MediaClaims) string // makes the token instead of the focus
	relay     []webrtc.ICEServer                  // TURN servers the client must relay through
	onRTP     func(key string, pkt *rtp.Packet)   // sees every packet received
	simulcast bool                                // publishes video in three layers (simPublisher)
	simBody   [numLayers]int                      // the payload size of each layer's packets (0: 100 bytes)
	simKey    [numLayers]int                      // the payload size of each layer's keyframes (0: two packets as others)
	audioBody int                                 // the payload size of its audio packets (0: 200 bytes)
	onSession func(*Session)                      // runs once joined, before the client has the answer
}

// newClient creates a client's peer connection and offer, and gets a
// media token from the focus bound to the offer's DTLS fingerprint.
func (e *env) newClient(p *conference.Participant, o clientOptions) (*client, string, string) {
	e.t.Helper()
	c, sdpOffer := e.newPeer(o)
	fp := fingerprintOf(sdpOffer)
	var token string
	if o.tokenHook != nil {
		token = o.tokenHook(conference.MediaClaims{Meeting: e.meeting.ID, Participant: p.ID, Subject: p.URI, Role: p.Role.String(), Binding: fp})
	} else {
		g, err := e.focus.AddUser(e.meeting.ID, p.ID, fp)
		if err != nil {
			e.t.Fatal(err)
		}
		token = g.Token
	}
	return c, sdpOffer, token
}

// newPeer creates a client's peer connection, publishing what o asks,
// and its offer.
func (e *env) newPeer(o clientOptions) (*client, string) {
	e.t.Helper()
	var settings webrtcSettings
	if o.udp != nil {
		settings.mux = webrtc.NewICEUDPMux(nil, o.udp)
		e.t.Cleanup(func() { _ = settings.mux.Close() })
	}
	api, err := newAPI(settings, func(se *webrtc.SettingEngine) {
		if o.noReplay {
			se.DisableSRTPReplayProtection(true)
		}
	})
	if err != nil {
		e.t.Fatal(err)
	}
	config := webrtc.Configuration{}
	if o.relay != nil {
		config.ICEServers, config.ICETransportPolicy = o.relay, webrtc.ICETransportPolicyRelay
	}
	pc, err := api.NewPeerConnection(config)
	if err != nil {
		e.t.Fatal(err)
	}
	c := &client{t: e.t, pc: pc, stop: make(chan struct{}), received: map[string]*trackStats{}}
	e.t.Cleanup(c.close)
	var locals []*webrtc.TrackLocalStaticRTP
	for _, kind := range o.publish {
		codec, stream := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "camera"
		switch kind {
		case KindAudio:
			codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
		case KindScreen:
			stream = ScreenStream
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(codec, kind, stream)
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := pc.AddTrack(tr); err != nil {
			e.t.Fatal(err)
		}
		locals = append(locals, tr)
	}
	if o.simulcast {
		c.sim = newSimPublisher(e.t, pc)
		c.sim.body, c.sim.keyBody = o.simBody, o.simKey
	}
	if len(o.publish) == 0 && !o.simulcast { // a listener: it offers to receive
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		key := tr.StreamID() + "/" + tr.ID()
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			c.count(key, pkt)
			if o.onRTP != nil {
				o.onRTP(key, pkt)
			}
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		e.t.Fatal(err)
	}
	<-gathered
	c.locals = locals
	if c.sim != nil {
		c.sim.start(c)
	}
	for _, tr := range locals {
		if !o.noSend {
			c.wg.Add(1)
			go c.send(tr, o.audioBody)
		}
	}
	return c, pc.LocalDescription().SDP
}

// join does the whole join: token, offer, answer, and the bridge's later
// offers answered for as long as the session lasts.
func (e *env) join(p *conference.Participant, o clientOptions) *client {
	e.t.Helper()
	c, offer, token := e.newClient(p, o)
	s, err := e.bridge.Join(context.Background(), JoinRequest{Meeting: e.meeting.ID, Participant: p.ID, Token: token, Offer: offer})
	if err != nil {
		e.t.Fatal(err)
	}
	c.sess = s
	if o.onSession != nil {
		o.onSession(s)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.Answer()}); err != nil {
		e.t.Fatal(err)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for offer := range s.Offers() {
			if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
				return
			}
			answer, err := c.pc.CreateAnswer(nil)
			if err != nil {
				return
			}
			gathered := webrtc.GatheringCompletePromise(c.pc)
			if err := c.pc.SetLocalDescription(answer); err != nil {
				return
			}
			<-gathered
			if err := s.SetAnswer(c.pc.LocalDescription().SDP); err != nil {
				return
			}
		}
	}()
	return c
}

func fingerprintOf(sdp string) string {
	for _, line := range strings.Split(sdp, "\r\n") {
		if v, ok := strings.CutPrefix(line, "a=fingerprint:"); ok {
			return v
		}
	}
	return ""
}

func (c *client) count(key string, pkt *rtp.Packet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.received[key]
	if s == nil {
		s = &trackStats{seen: map[uint16]bool{}}
		c.received[key] = s
	} else {
		switch {
		case s.seen[pkt.SequenceNumber]:
			s.repeats++
		case pkt.SequenceNumber != s.last+1:
			s.gaps++
		}
	}
	s.seen[pkt.SequenceNumber] = true
	s.packets++
	s.last = pkt.SequenceNumber
}

// send writes a packet every 20 ms until the client closes, of body
// bytes of payload (0: 200) if it is audio.
func (c *client) send(tr *webrtc.TrackLocalStaticRTP, body int) {
	defer c.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	pt := uint8(96)
	if tr.Kind() == webrtc.RTPCodecTypeAudio {
		pt = 111
	}
	var seq uint16 = 1000
	payload := make([]byte, 200)
	if tr.Kind() == webrtc.RTPCodecTypeAudio && body > 0 {
		payload = make([]byte, body)
	}
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		seq++
		_ = tr.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: uint32(seq) * 960, SSRC: 1}, Payload: payload})
	}
}

func (c *client) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	if c.sess != nil {
		_ = c.sess.Close()
	}
	if c.sim != nil {
		c.sim.stopReading()
	}
	// pion/webrtc v3.3.6's ICETransport.stop reads the transport's mux
	// without the lock ICETransport.Start sets it under, once ICE
	// connects: a close while the connection is still being made races
	// with it (the race detector caught it in CI, in
	// TestSignalingRaisedHand). So the close waits, a little, for the
	// connection to be made or to fail.
	for deadline := time.Now().Add(3 * time.Second); c.pc.ConnectionState() == webrtc.PeerConnectionStateConnecting && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	_ = c.pc.Close()
	c.wg.Wait()
}

// eventually polls cond for up to d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
