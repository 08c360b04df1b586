package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/dtls/v2"
	"github.com/pion/dtls/v2/pkg/crypto/elliptic"
	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/conference"
)

// Errors of Join. Every refusal of a participant wraps ErrRefused.
var (
	ErrRefused = errors.New("media: refused")
	ErrClosed  = errors.New("media: bridge closed")
)

// Tokens verifies media tokens: a [conference.TokenIssuer] holding the key
// the focus signs them with.
type Tokens interface {
	Verify(token string, want conference.MediaClaims) (*conference.MediaClaims, error)
}

// Meetings is what the bridge asks of the focus: who is in a meeting, in
// which role, until when, and what changes. [*conference.Focus] is one.
type Meetings interface {
	Meeting(ctx context.Context, id conference.MeetingID) (*conference.Meeting, error)
	Participant(id conference.MeetingID, pid conference.ParticipantID) (conference.Participant, error)
	Watch(ctx context.Context, id conference.MeetingID, fn func(conference.Event)) (stop func(), err error)
}

// BridgeConfig configures a [Bridge]. Tokens, Meetings and UDP are
// required.
type BridgeConfig struct {
	Tokens   Tokens
	Meetings Meetings
	// UDP is the socket all participants' media arrives on (ICE, DTLS and
	// SRTP multiplexed by ICE username): one port to open in a firewall.
	// The bridge does not close it.
	UDP net.PacketConn
	// PublicIPs, if set, are the addresses announced in ICE candidates
	// instead of UDP's own (the bridge behind a 1:1 NAT).
	PublicIPs []string
	// MaxTracks bounds the tracks one participant may publish. Default 3:
	// audio, video and screen share.
	MaxTracks int
	// KeyframeInterval is the least time between two keyframe requests
	// (PLI) sent to one publisher's track. Default 500 ms.
	KeyframeInterval time.Duration
	// LobbyMusic is an Ogg Opus file played, looped, to participants who
	// wait in a lobby with a lobby media token. Default: the music
	// generated for Parley (media/music).
	LobbyMusic []byte
	// CallTimeout ends a SIP participant's call when nothing has come
	// from it for this long. Default 30 s.
	CallTimeout time.Duration
	// Allocator shares each subscriber's downlink bandwidth estimate
	// among the videos it receives. Default: DefaultAllocator.
	Allocator Allocator
	Logger    *slog.Logger
}

// maxOfferSize bounds an SDP offer or answer from a participant.
const maxOfferSize = 64 << 10

// Bridge is the A/V conferencing server for WebRTC participants: one
// session per meeting, into which participants are admitted only with a
// valid media token from the focus, checked before any offer is
// answered, and whose audio, video and screen-share tracks it forwards to
// the others (an SFU). Media is DTLS-SRTP with replay protection; ICE
// runs on one UDP port. It follows the focus: an ejected or departed
// participant's media stops, a demoted presenter's screen share stops, and
// everyone's media stops when the meeting ends. It is safe for concurrent
// use; Close ends every session.
type Bridge struct {
	cfg   BridgeConfig
	api   *webrtc.API
	mux   ice.UDPMux
	log   *slog.Logger
	music *music
	done  chan struct{} // closed by Close

	// pcMu is held while a peer connection is made: its estimator,
	// made within, is left in built.
	pcMu  sync.Mutex
	built *downlink

	mu     sync.Mutex
	rooms  map[conference.MeetingID]*room
	calls  map[*Call]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewBridge returns a bridge, or an error naming the missing field.
func NewBridge(cfg BridgeConfig) (*Bridge, error) {
	switch {
	case cfg.Tokens == nil:
		return nil, errors.New("media: BridgeConfig.Tokens is required")
	case cfg.Meetings == nil:
		return nil, errors.New("media: BridgeConfig.Meetings is required")
	case cfg.UDP == nil:
		return nil, errors.New("media: BridgeConfig.UDP is required")
	case cfg.MaxTracks < 0:
		return nil, errors.New("media: BridgeConfig.MaxTracks must not be negative")
	}
	if cfg.MaxTracks == 0 {
		cfg.MaxTracks = 3
	}
	if cfg.KeyframeInterval <= 0 {
		cfg.KeyframeInterval = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.Allocator == nil {
		cfg.Allocator = DefaultAllocator{}
	}
	if cfg.LobbyMusic == nil {
		cfg.LobbyMusic = defaultLobbyMusic
	}
	m, err := newMusic(cfg.LobbyMusic)
	if err != nil {
		return nil, fmt.Errorf("media: BridgeConfig.LobbyMusic: %w", err)
	}
	b := &Bridge{cfg: cfg, log: cfg.Logger, rooms: make(map[conference.MeetingID]*room), calls: make(map[*Call]struct{}), music: m, done: make(chan struct{})}
	networks := announcedNetworks(cfg.UDP.LocalAddr(), cfg.PublicIPs)
	b.mux = familyMux{webrtc.NewICEUDPMux(nil, cfg.UDP), networks}
	api, err := newAPI(webrtcSettings{mux: b.mux, publicIPs: cfg.PublicIPs, networks: networks, downlinks: func(d *downlink) {
		b.built = d // under pcMu
	}})
	if err != nil {
		_ = b.mux.Close()
		return nil, err
	}
	b.api = api
	b.wg.Go(func() { m.play(b.done) })
	return b, nil
}

// webrtcSettings are what differs between the bridge's peer connections
// and a test client's.
type webrtcSettings struct {
	mux       ice.UDPMux
	publicIPs []string
	networks  []webrtc.NetworkType // default UDP4 and UDP6
	// downlinks, if set, is handed each connection's downlink bandwidth
	// estimator as it is made: the connection's outgoing packets then
	// carry transport-wide sequence numbers, and its peer's feedback
	// feeds the estimator.
	downlinks func(*downlink)
}

// newPeerConnection returns a new participant's peer connection and the
// estimator of its downlink.
func (b *Bridge) newPeerConnection() (*webrtc.PeerConnection, *downlink, error) {
	b.pcMu.Lock()
	defer b.pcMu.Unlock()
	b.built = nil
	pc, err := b.api.NewPeerConnection(webrtc.Configuration{})
	est := b.built
	b.built = nil
	return pc, est, err
}

// familyMux is the bridge's UDP mux announcing addresses of the given
// families only: the ICE agent takes a mux's listen addresses as its
// host candidates whatever the network types it is set to.
type familyMux struct {
	ice.UDPMux
	networks []webrtc.NetworkType // nil: every family
}

func (m familyMux) GetListenAddresses() []net.Addr {
	all := m.UDPMux.GetListenAddresses()
	if m.networks == nil {
		return all
	}
	var out []net.Addr
	for _, a := range all {
		ua, ok := a.(*net.UDPAddr)
		nt := webrtc.NetworkTypeUDP6
		if ok && ua.IP.To4() != nil {
			nt = webrtc.NetworkTypeUDP4
		}
		if slices.Contains(m.networks, nt) {
			out = append(out, a)
		}
	}
	return out
}

// announcedNetworks are the address families the bridge announces
// candidates of: with PublicIPs, theirs (the public addresses are where
// clients reach the bridge; the machine's other addresses are not
// announced); otherwise those its socket can answer on (an IPv4 socket
// bound to 0.0.0.0 does not receive what is sent to the machine's IPv6
// addresses; only one bound to "::" is dual stack).
func announcedNetworks(a net.Addr, publicIPs []string) []webrtc.NetworkType {
	if len(publicIPs) > 0 {
		var out []webrtc.NetworkType
		for _, s := range publicIPs {
			nt := webrtc.NetworkTypeUDP6
			if ip := net.ParseIP(s); ip != nil && ip.To4() != nil {
				nt = webrtc.NetworkTypeUDP4
			}
			if !slices.Contains(out, nt) {
				out = append(out, nt)
			}
		}
		return out
	}
	ua, ok := a.(*net.UDPAddr)
	switch {
	case !ok:
		return nil
	case ua.IP.To4() != nil:
		return []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	case !ua.IP.IsUnspecified():
		return []webrtc.NetworkType{webrtc.NetworkTypeUDP6}
	}
	return nil
}

// opusCapability is the bridge's audio codec for WebRTC participants.
var opusCapability = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}

// newAPI builds the WebRTC stack: Opus and VP8 only (what every browser
// sends, so any participant can receive any other), NACK, RTCP reports
// and transport-wide congestion control feedback, and DTLS and SRTP
// restricted to FIPS-approved choices with replay protection on. Tests'
// clients tweak the settings.
func newAPI(s webrtcSettings, tweaks ...func(*webrtc.SettingEngine)) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	for _, c := range []struct {
		params webrtc.RTPCodecParameters
		kind   webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: opusCapability, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "ccm", Parameter: "fir"}}}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
	} {
		if err := m.RegisterCodec(c.params, c.kind); err != nil {
			return nil, err
		}
	}
	// Simulcast: the MID and RID header extensions name the layer of each
	// incoming stream (RFC 8852).
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if s.downlinks != nil {
		// Before the others: the last to see a packet, it numbers also
		// what the NACK responder sends again. (The extension and the
		// feedback are negotiated by RegisterDefaultInterceptors.)
		ir.Add(downlinkFactory{made: s.downlinks})
	}
	// NACK: pion's generator asks publishers for what did not arrive;
	// the bridge's own retransmitter (rtxbuffer.go) answers subscribers,
	// keeping what it sent them by their round trip rather than pion
	// responder's 1,024 packets a stream.
	generator, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, err
	}
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	ir.Add(retransmitterFactory{})
	ir.Add(generator)
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCSender(m, ir); err != nil { // feedback on what arrives
		return nil, err
	}
	var se webrtc.SettingEngine
	se.SetDTLSEllipticCurves(elliptic.P256, elliptic.P384) // no X25519: FIPS-approved curves only
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	se.SetSRTPReplayProtectionWindow(64)
	se.SetSRTCPReplayProtectionWindow(64)
	se.SetDTLSReplayProtectionWindow(64)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	if s.networks == nil {
		s.networks = []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	}
	se.SetNetworkTypes(s.networks)
	if s.mux != nil {
		se.SetICEUDPMux(s.mux)
	} else {
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	}
	if len(s.publicIPs) > 0 {
		se.SetNAT1To1IPs(s.publicIPs, webrtc.ICECandidateTypeHost)
	}
	for _, t := range tweaks {
		t(&se)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// JoinRequest is a participant's request for media: what the focus
// granted it (meeting, participant, token) and its SDP offer.
type JoinRequest struct {
	Meeting     conference.MeetingID
	Participant conference.ParticipantID
	Token       string
	Offer       string
}

// Join admits a participant to its meeting's media session: the token
// must be valid, for this meeting and participant, bound (if it is bound)
// to the DTLS fingerprint in the offer, and the participant must be in
// the meeting now, or in its lobby with a lobby token
// ([conference.LobbyRole]). All of this is checked before anything of the
// offer is acted upon; a refusal wraps ErrRefused. The returned Session's
// Answer is the SDP answer.
//
// A participant in the lobby hears the lobby music and nothing else, and
// nothing it sends is forwarded. When the focus admits it, the music stops
// and the bridge offers it the meeting's tracks on the same connection
// (Session.Offers), and forwards its own.
func (b *Bridge) Join(ctx context.Context, req JoinRequest) (*Session, error) {
	if req.Token == "" {
		return nil, fmt.Errorf("%w: no media token", ErrRefused)
	}
	if len(req.Offer) > maxOfferSize {
		return nil, fmt.Errorf("%w: offer over %d bytes", ErrRefused, maxOfferSize)
	}
	fp, err := offerFingerprint(req.Offer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	claims, err := b.cfg.Tokens.Verify(req.Token, conference.MediaClaims{Meeting: req.Meeting, Participant: req.Participant, Binding: fp})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	p, err := b.cfg.Meetings.Participant(claims.Meeting, claims.Participant)
	switch {
	case err != nil, p.State == conference.Gone:
		return nil, fmt.Errorf("%w: %s is not in meeting %s", ErrRefused, claims.Participant, claims.Meeting)
	case p.State == conference.InLobby && claims.Role != conference.LobbyRole:
		return nil, fmt.Errorf("%w: %s waits in the lobby of %s", ErrRefused, claims.Participant, claims.Meeting)
	}
	r, err := b.room(ctx, claims.Meeting)
	if err != nil {
		return nil, err
	}
	s, err := r.join(p, req)
	if err != nil {
		r.releaseIfEmpty()
		return nil, err
	}
	return s, nil
}

// offerFingerprint returns the DTLS certificate fingerprint an offer
// names ("sha-256 AB:..."), the one a bound token must carry. An offer
// naming none, or two different ones, is refused: its DTLS could not be
// tied to the token.
func offerFingerprint(offer string) (string, error) {
	var d sdp.SessionDescription
	if err := d.Unmarshal([]byte(offer)); err != nil {
		return "", fmt.Errorf("unreadable offer: %v", err)
	}
	var fps []string
	if v, ok := d.Attribute("fingerprint"); ok {
		fps = append(fps, v)
	}
	for _, m := range d.MediaDescriptions {
		if v, ok := m.Attribute("fingerprint"); ok {
			fps = append(fps, v)
		}
	}
	if len(fps) == 0 {
		return "", errors.New("the offer has no DTLS fingerprint")
	}
	for _, f := range fps {
		if fields := strings.Fields(f); len(fields) != 2 {
			return "", fmt.Errorf("unreadable DTLS fingerprint %q", f)
		}
	}
	for _, f := range fps[1:] {
		if !strings.EqualFold(f, fps[0]) {
			return "", errors.New("the offer has two DTLS fingerprints")
		}
	}
	return fps[0], nil
}

// room returns meeting id's session, starting it (and its watch of the
// focus, and its timer for the meeting's end) if it is the first.
func (b *Bridge) room(ctx context.Context, id conference.MeetingID) (*room, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if r := b.rooms[id]; r != nil {
		return r, nil
	}
	m, err := b.cfg.Meetings.Meeting(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	r := &room{b: b, id: id, sessions: make(map[conference.ParticipantID]*Session), calls: make(map[conference.ParticipantID]*Call), events: make(chan conference.Event, 256),
		lost: make(chan struct{}), done: make(chan struct{})}
	stop, err := b.cfg.Meetings.Watch(ctx, id, func(ev conference.Event) {
		select {
		case r.events <- ev:
		default: // the room is far behind: end it rather than miss an ejection
			r.overflow()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	r.stopWatch = stop
	r.ends = time.AfterFunc(time.Until(m.Expires), func() { r.end("the meeting ended") })
	b.rooms[id] = r
	b.wg.Add(1)
	go r.run()
	return r, nil
}

// forget drops an ended room.
func (b *Bridge) forget(r *room) {
	b.mu.Lock()
	if b.rooms[r.id] == r {
		delete(b.rooms, r.id)
	}
	b.mu.Unlock()
}

// Participants returns the participants with media in meeting id:
// WebRTC sessions and SIP calls.
func (b *Bridge) Participants(id conference.MeetingID) []conference.ParticipantID {
	b.mu.Lock()
	r := b.rooms[id]
	b.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]conference.ParticipantID, 0, len(r.sessions)+len(r.calls))
	for pid := range r.sessions {
		out = append(out, pid)
	}
	for pid := range r.calls {
		out = append(out, pid)
	}
	return out
}

// BridgeMetrics is what the bridge carries now, for monitoring.
type BridgeMetrics struct {
	Rooms    int // meetings with media
	Sessions int // WebRTC participants
	Calls    int // SIP participants' calls, the dial-in IVR's included
}

// Metrics counts the bridge's rooms, WebRTC sessions and SIP calls.
func (b *Bridge) Metrics() BridgeMetrics {
	b.mu.Lock()
	rooms := make([]*room, 0, len(b.rooms))
	for _, r := range b.rooms {
		rooms = append(rooms, r)
	}
	m := BridgeMetrics{Rooms: len(rooms), Calls: len(b.calls)}
	b.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		m.Sessions += len(r.sessions)
		r.mu.Unlock()
	}
	return m
}

// Shutdown closes the bridge like Close, for a server that drains: every
// room ends (WebRTC sessions and SIP calls close, their peers told by DTLS
// close_notify and, for calls, by the focus's BYE), lobby music stops and
// the UDP mux is released. It returns when that is done, or with ctx's
// error when ctx ends first, the close then finishing on its own.
func (b *Bridge) Shutdown(ctx context.Context) error { return closeWithin(ctx, b.Close) }

// closeWithin runs closeFn and waits for it until ctx ends.
func closeWithin(ctx context.Context, closeFn func() error) error {
	done := make(chan error, 1)
	go func() { done <- closeFn() }()
	if err := ctx.Err(); err != nil {
		return err // ended before the close began
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends every room and call at once and releases the bridge's
// goroutines and its UDP mux.
func (b *Bridge) Close() error {
	b.mu.Lock()
	if !b.closed {
		close(b.done)
	}
	b.closed = true
	rooms := make([]*room, 0, len(b.rooms))
	for _, r := range b.rooms {
		rooms = append(rooms, r)
	}
	calls := make([]*Call, 0, len(b.calls))
	for c := range b.calls {
		calls = append(calls, c)
	}
	b.mu.Unlock()
	for _, r := range rooms {
		r.end("the bridge closed")
	}
	for _, c := range calls {
		c.close()
	}
	b.wg.Wait()
	return b.mux.Close()
}
