package media

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/conference"
)

// Track kinds, as the bridge classifies what participants publish.
const (
	KindAudio  = "audio"
	KindVideo  = "video"
	KindScreen = "screen" // a video track in a stream with the ID "screen"
)

// ScreenStream is the stream ID (the msid) under which a participant
// publishes its screen share; only presenters' is forwarded.
const ScreenStream = "screen"

// ErrGlare is returned by Session.Offer while the bridge's own offer
// awaits the participant's answer: answer it first, then offer again.
var ErrGlare = errors.New("media: the bridge's offer awaits an answer")

// Session is one participant's media in a meeting: a WebRTC peer
// connection whose tracks the bridge forwards to the others, and through
// which it sends the others' tracks.
//
// The bridge renegotiates when others' tracks come and go: its offers
// arrive on Offers, one at a time, and each answer goes back through
// SetAnswer. Read Offers only after the participant has the answer to its
// join offer.
type Session struct {
	r   *room
	pid conference.ParticipantID
	pc  *webrtc.PeerConnection
	est *downlink // its downlink's estimator

	answer string
	offers chan string
	done   chan struct{}
	once   sync.Once

	mu          sync.Mutex // negotiation and senders
	role        conference.Role
	negotiating bool // an offer of the bridge's awaits its answer
	pending     bool // and another is needed after it, or once connected
	senders     map[*forward]*webrtc.RTPSender
	downs       map[*forward]*downTrack          // the video among them
	maxLayers   map[layerKey]Layer               // SetMaxLayer's choices
	byReceiver  map[*webrtc.RTPReceiver]*forward // its video, by receiver: a simulcast track's layers arrive one by one
	published   int
	muted       atomic.Bool // the focus holds the participant's audio (mute all)
	ready       bool        // the join offer is answered: tracks may be added
	// connected: ICE and DTLS are up. The bridge's first offer waits for
	// it: a client that has just applied the join answer may still be
	// starting its transports, and pion's takes an offer arriving then
	// for an ICE restart (new credentials), after which the connection
	// can fail; with 50 joins at once that was 1 client in 350.
	connected bool
	closed    bool
	// A participant in the lobby is sent the music, nothing else, and
	// what it publishes is held back until it is admitted.
	lobby       bool
	musicSender *webrtc.RTPSender
	held        []*forward
}

func newSession(r *room, p conference.Participant) *Session {
	s := &Session{r: r, pid: p.ID, role: p.Role, lobby: p.State == conference.InLobby, offers: make(chan string, 1),
		done: make(chan struct{}), senders: make(map[*forward]*webrtc.RTPSender),
		downs: make(map[*forward]*downTrack), maxLayers: make(map[layerKey]Layer), byReceiver: make(map[*webrtc.RTPReceiver]*forward)}
	s.muted.Store(p.Muted)
	return s
}

// Participant returns the session's participant ID.
func (s *Session) Participant() conference.ParticipantID { return s.pid }

// Answer returns the SDP answer to the participant's join offer.
func (s *Session) Answer() string { return s.answer }

// Offers carries the bridge's offers to the participant. It is closed
// when the session ends.
func (s *Session) Offers() <-chan string { return s.offers }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// start creates the peer connection and answers the join offer.
func (s *Session) start(offer string) error {
	pc, est, err := s.r.b.newPeerConnection()
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed { // the room ended meanwhile
		s.mu.Unlock()
		_ = pc.Close()
		return ErrClosed
	}
	s.pc, s.est = pc, est
	s.mu.Unlock()
	pc.OnTrack(s.onTrack)
	pc.OnDataChannel(func(dc *webrtc.DataChannel) { _ = dc.Close() }) // media only: nothing else over DTLS
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			s.mu.Lock()
			s.connected = true
			offer := s.pending && !s.negotiating
			if offer {
				s.pending = false
			}
			s.mu.Unlock()
			if offer {
				s.negotiate()
			}
			s.requestKeyframes()
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			go s.r.remove(s.pid, "its connection "+st.String())
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	answer, err := s.answerOffer(offer)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRefused, err)
	}
	s.answer = answer
	s.ready = true
	return nil
}

// answerOffer applies a participant's offer and returns the answer, with
// every ICE candidate in it.
func (s *Session) answerOffer(offer string) (string, error) {
	if len(offer) > maxOfferSize {
		return "", fmt.Errorf("offer over %d bytes", maxOfferSize)
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	if s.lobby && s.musicSender == nil {
		// On the audio the participant offered to receive: switching to
		// the meeting later needs no new transceiver for it.
		sender, err := s.pc.AddTrack(s.r.b.music.track)
		if err != nil {
			return "", err
		}
		s.musicSender = sender
	}
	answer, err := s.pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(answer); err != nil {
		return "", err
	}
	<-gathered
	return s.pc.LocalDescription().SDP, nil
}

// Offer applies a later offer of the participant's (it starts or stops
// publishing a track) and returns the answer.
func (s *Session) Offer(sdp string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return "", ErrClosed
	case s.negotiating:
		return "", ErrGlare
	}
	return s.answerOffer(sdp)
}

// SetAnswer applies the participant's answer to the bridge's last offer.
func (s *Session) SetAnswer(sdp string) error {
	if len(sdp) > maxOfferSize {
		return fmt.Errorf("media: answer over %d bytes", maxOfferSize)
	}
	s.mu.Lock()
	if !s.negotiating {
		s.mu.Unlock()
		return errors.New("media: no offer awaits an answer")
	}
	err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
	s.negotiating = false
	again := s.pending
	s.pending = false
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	if again {
		s.negotiate()
	}
	s.requestKeyframes() // the tracks just added start with a keyframe
	return nil
}

// negotiate sends the participant an offer for the tracks it should now
// receive, or notes that one is needed once the outstanding one is
// answered, or once the connection is up.
func (s *Session) negotiate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.ready {
		return
	}
	if s.negotiating || !s.connected {
		s.pending = true
		return
	}
	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		s.r.b.log.Warn("media: offer failed", "participant", s.pid, "err", err)
		return
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(offer); err != nil {
		s.r.b.log.Warn("media: offer failed", "participant", s.pid, "err", err)
		return
	}
	<-gathered
	s.negotiating = true
	s.offers <- s.pc.LocalDescription().SDP // never full: one offer at a time
}

// subscribe adds f to the tracks the session sends; it reports whether
// an offer is needed.
func (s *Session) subscribe(f *forward) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.ready || s.lobby || s.senders[f] != nil || f.owner == s {
		return false // one not yet ready or in the lobby subscribes to everything once it is in
	}
	var track webrtc.TrackLocal = f.local
	var down *downTrack
	if f.local == nil { // video: the subscriber's own stream of the layer chosen for it
		max, ok := s.maxLayers[layerKey{f.owner.pid, f.kind}]
		if !ok {
			max = LayerHigh
		}
		down = newDownTrack(f, max)
		down.est = s.est
		track = down
	}
	sender, err := s.pc.AddTrack(track)
	if err != nil {
		s.r.b.log.Warn("media: cannot send a track", "participant", s.pid, "track", track.ID(), "err", err)
		return false
	}
	s.senders[f] = sender
	if down != nil {
		s.downs[f] = down
		f.addDown(down)
	}
	s.r.b.wg.Add(1)
	go func() { // RTCP from the subscriber: NACKs are answered by the interceptor, keyframe requests go to the publisher
		defer s.r.b.wg.Done()
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				switch p := p.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					if down != nil {
						down.subscriberKeyframeRequest(time.Now().UnixNano())
					}
				case *rtcp.ReceiverReport:
					if down != nil {
						now := time.Now()
						for _, rr := range p.Reports {
							down.receiverReport(rr.SSRC, rr.FractionLost, now.UnixNano())
							if rtt, ok := reportRoundTrip(rr, now); ok {
								down.roundTrip(rtt)
							}
						}
					}
				}
			}
		}
	}()
	return true
}

// unsubscribe stops sending f; it reports whether an offer is needed.
func (s *Session) unsubscribe(f *forward) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sender := s.senders[f]
	if sender == nil || s.closed {
		return false
	}
	delete(s.senders, f)
	if d := s.downs[f]; d != nil {
		delete(s.downs, f)
		f.removeDown(d)
	}
	_ = s.pc.RemoveTrack(sender)
	return true
}

// requestKeyframes asks the publishers of the video the session receives
// for a keyframe, so that its decoders start.
func (s *Session) requestKeyframes() {
	s.mu.Lock()
	ds := make([]*downTrack, 0, len(s.downs))
	for _, d := range s.downs {
		ds = append(ds, d)
	}
	s.mu.Unlock()
	for _, d := range ds {
		d.requestKeyframe()
	}
}

// onTrack starts forwarding a track the participant publishes, if its
// role and the bridge's limits allow it. The layers of a simulcast video
// track arrive one by one, on the same receiver: the first starts its
// forward, the others join it.
func (s *Session) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	kind := KindAudio
	if remote.Kind() == webrtc.RTPCodecTypeVideo {
		kind = KindVideo
		if remote.StreamID() == ScreenStream {
			kind = KindScreen
		}
	}
	_, known := layerOf(remote.RID())
	s.mu.Lock()
	f := s.byReceiver[receiver]
	refuse := ""
	switch {
	case s.closed:
		refuse = "session closed"
	case !known:
		refuse = "unknown simulcast RID " + remote.RID()
	case f != nil: // another layer
	case kind == KindScreen && !s.role.Leader():
		refuse = "only presenters share their screen"
	case s.published >= s.r.b.cfg.MaxTracks:
		refuse = "too many tracks"
	default:
		s.published++
		f = &forward{owner: s, kind: kind, remote: remote, interval: s.r.b.cfg.KeyframeInterval, stopped: make(chan struct{}), ended: make(chan struct{}), since: time.Now().UnixNano(),
			trackID: string(s.pid) + "-" + kind, codec: remote.Codec().RTPCodecCapability}
		if kind != KindAudio {
			s.byReceiver[receiver] = f
			f.vp8 = strings.EqualFold(f.codec.MimeType, webrtc.MimeTypeVP8)
			f.single = remote.RID() == ""
		}
		remote = nil // the new forward's first
	}
	s.mu.Unlock()
	if refuse == "" && remote != nil { // a further layer
		if !f.addLayer(remote) {
			refuse = "a layer of a stopped track, or a layer again"
		} else {
			return
		}
	}
	if refuse != "" {
		s.r.b.log.Info("media: track not forwarded", "meeting", s.r.id, "participant", s.pid, "kind", kind, "rid", remote.RID(), "reason", refuse)
		s.r.b.wg.Add(1)
		go func() { defer s.r.b.wg.Done(); drain(remote) }()
		return
	}
	if f.kind == KindAudio {
		local, err := webrtc.NewTrackLocalStaticRTP(f.codec, f.trackID, string(s.pid))
		if err != nil {
			s.r.b.log.Warn("media: cannot forward a track", "participant", s.pid, "err", err)
			s.mu.Lock()
			s.published--
			s.mu.Unlock()
			return
		}
		f.local = local
	}
	s.mu.Lock()
	held := s.lobby
	if held {
		s.held = append(s.held, f) // read and dropped until the participant is admitted
	}
	s.mu.Unlock()
	if !held && !s.r.publish(f) {
		return
	}
	s.r.b.wg.Add(1)
	go func() {
		defer s.r.b.wg.Done()
		if f.kind == KindAudio {
			f.run()
		} else {
			f.addLayer(f.remote)
			f.waitLayers()
		}
		s.r.unpublish(f)
		s.mu.Lock()
		s.published--
		delete(s.byReceiver, receiver)
		s.mu.Unlock()
	}()
}

// admit takes the session out of the lobby: the music stops, and it
// returns the tracks the participant published while waiting, to be
// forwarded now. ok is false if the session was not in the lobby.
func (s *Session) admit(role conference.Role) (held []*forward, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.lobby {
		return nil, false
	}
	s.lobby, s.role = false, role
	if s.musicSender != nil {
		// The sender stays, silent (a track never written to, with the
		// music's IDs): stopping it needs no renegotiation.
		if err := s.musicSender.ReplaceTrack(s.r.b.music.silence); err != nil {
			s.r.b.log.Warn("media: cannot stop the lobby music", "participant", s.pid, "err", err)
		}
	}
	held, s.held = s.held, nil
	return held, true
}

// drain reads a track that is not forwarded until it ends.
func drain(t *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := t.Read(buf); err != nil {
			return
		}
	}
}

// Close ends the participant's media session, as when it hangs up or its
// signaling connection drops. The focus is not told: leaving the meeting
// is the focus's business.
func (s *Session) Close() error {
	s.r.remove(s.pid, "closed")
	return nil
}

// close ends the session's peer connection.
func (s *Session) close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		pc := s.pc
		for f, d := range s.downs {
			f.removeDown(d)
		}
		clear(s.downs)
		est := s.est
		s.mu.Unlock()
		end := func() {
			if pc != nil {
				_ = pc.Close()
			}
			if est != nil {
				_ = est.Close() // its pacer's timer, whatever pion did
			}
		}
		if pc != nil && pc.ICEConnectionState() == webrtc.ICEConnectionStateChecking {
			// pion/webrtc v3.3.6: a close while ICE is checking races
			// with ICETransport.Start. Should the pair connect as the
			// close stops the transport, the agent's "connected" state
			// overwrites "closed", Start then sets the transport's mux
			// (read by the close without the lock) and the mux is never
			// closed: a data race (the race detector caught it in CI, in
			// TestLeadersHearRecordedNames) and a leaked reader. So a
			// session closed while ICE checks is closed on a goroutine
			// of the bridge's once ICE has connected or failed, or after
			// 3 s.
			s.r.b.wg.Go(func() {
				for deadline := time.Now().Add(3 * time.Second); pc.ICEConnectionState() == webrtc.ICEConnectionStateChecking && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
				}
				end()
			})
		} else {
			end()
		}
		close(s.done)
		close(s.offers)
	})
}

// forward is one published track and what sends it on: audio on one
// local track bound to every subscriber's peer connection; video, a
// layer or several (simulcast), on one downTrack per subscriber.
type forward struct {
	owner    *Session
	kind     string
	trackID  string
	codec    webrtc.RTPCodecCapability
	remote   *webrtc.TrackRemote         // audio's, or video's first layer
	local    *webrtc.TrackLocalStaticRTP // audio
	interval time.Duration
	stopped  chan struct{}
	stopOnce sync.Once
	live     atomic.Bool // published: in the room's tracks
	since    int64       // when it was published, unix nanoseconds
	meter    rateMeter   // audio's bitrate (video's is its layers')

	// video
	vp8           bool // its packets' descriptors are read
	single        bool // not simulcast: one layer, forwarded from any packet
	layers        [numLayers]atomic.Pointer[layer]
	downs         atomic.Pointer[[]*downTrack]
	layerMu       sync.Mutex // layers added and downs changed
	layersRunning int
	layersRan     bool
	ended         chan struct{} // closed when the last layer's reader ends
}

// run copies the publisher's RTP to the subscribers until the track ends
// or is stopped.
func (f *forward) run() {
	go func() { <-f.stopped; _ = f.remote.SetReadDeadline(time.Now()) }()
	for {
		pkt, _, err := f.remote.ReadRTP()
		if err != nil {
			f.stop()
			return
		}
		select {
		case <-f.stopped:
			return
		default:
		}
		if f.kind == KindAudio && f.owner.muted.Load() {
			continue // held back by the focus: the audience is muted
		}
		f.meter.add(pkt.MarshalSize())
		if m := f.owner.r.mix.Load(); m != nil && f.kind == KindAudio && f.live.Load() {
			m.feed(f, pkt) // the meeting's calls hear it too
		}
		if err := f.local.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			f.owner.r.b.log.Debug("media: forwarding failed", "track", f.local.ID(), "err", err)
		}
	}
}

// stop ends forwarding (a demoted presenter's screen share).
func (f *forward) stop() { f.stopOnce.Do(func() { close(f.stopped) }) }
