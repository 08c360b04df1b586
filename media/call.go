package media

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v2"

	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/media/audio"
)

const (
	frameDuration = 20 * time.Millisecond
	// maxRecording bounds a recorded name.
	maxRecording = 10 * time.Second
)

// Call is a SIP participant's media: one audio stream on a UDP port of its
// own, SRTP with the keys exchanged in the SDP (SDES, RFC 4568), or plain
// RTP for a trusted gateway configured for it. The bridge sends to where
// the caller's authenticated packets come from (symmetric RTP), starting
// with the address its offer names. Until it joins a meeting the call
// plays prompts and records (an IVR's work); joined, it hears the mix of
// every other speaker of the meeting, and the meeting hears it. It
// implements [conference.Call].
type Call struct {
	b      *Bridge
	conn   *net.UDPConn
	offer  *sipOffer
	answer string
	rx, tx *srtp.Context // nil for plain RTP
	remote atomic.Pointer[netip.AddrPort]
	src    *source
	muted  atomic.Bool

	// The sending side: one goroutine at a time (the IVR loop, then the
	// meeting's mixer).
	enc     audio.Encoder
	ssrc    uint32
	seq     uint16
	ts      uint32
	tsStep  uint32
	started bool
	pkt     []byte // the RTP packet being sent
	sealed  []byte // and as SRTP

	digits  chan byte
	pressed chan struct{}       // a key was pressed since Play began
	dtmf    audio.DigitDetector // read loop only

	ivrMu     sync.Mutex
	prompt    []int16
	promptEnd chan struct{}
	recording []int16
	recMax    int
	recDone   chan struct{}

	handoff chan *room // to the IVR loop: stop, the call joins r
	ivrDone chan struct{}

	mu   sync.Mutex
	room *room
	pid  conference.ParticipantID

	done chan struct{}
	once sync.Once
}

// AnswerCall answers a SIP participant's SDP offer, opening its media
// port; plain allows plain RTP (a trusted gateway's). A refused offer
// wraps ErrRefused. The call plays prompts and records until it Joins a
// meeting. It implements [conference.Media].
func (b *Bridge) AnswerCall(offer string, plain bool) (conference.Call, error) {
	c, err := b.newCall(offer, plain)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// newCall is AnswerCall returning the *Call.
func (b *Bridge) newCall(offer string, plain bool) (*Call, error) {
	o, err := parseSIPOffer(offer, plain)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	local, ok := b.cfg.UDP.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil, errors.New("media: BridgeConfig.UDP is not a UDP socket")
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: local.IP})
	if err != nil {
		return nil, fmt.Errorf("media: call port: %w", err)
	}
	c := &Call{b: b, conn: conn, offer: o, digits: make(chan byte, 32), pressed: make(chan struct{}, 1), handoff: make(chan *room),
		ivrDone: make(chan struct{}), done: make(chan struct{}), pkt: make([]byte, 0, 1500)}
	fail := func(err error) (*Call, error) { _ = conn.Close(); return nil, err }
	announce := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	announce = netip.AddrPortFrom(announce.Addr().Unmap(), announce.Port()) // c=IN IP4, not ::ffff:
	if len(b.cfg.PublicIPs) > 0 {
		ip, err := netip.ParseAddr(b.cfg.PublicIPs[0])
		if err != nil {
			return fail(fmt.Errorf("media: BridgeConfig.PublicIPs: %w", err))
		}
		announce = netip.AddrPortFrom(ip, announce.Port())
	}
	if !announce.Addr().IsValid() || announce.Addr().IsUnspecified() {
		return fail(errors.New("media: calls need BridgeConfig.UDP bound to an address, or BridgeConfig.PublicIPs"))
	}
	remote := o.remote
	c.remote.Store(&remote)
	var key cryptoAttr
	if o.secure {
		if key, err = newCrypto(o.crypto.tag, o.crypto.suite); err != nil {
			return fail(err)
		}
		// Replay protection on what arrives (RFC 3711 section 3.3.2).
		if c.rx, err = srtp.CreateContext(o.crypto.key, o.crypto.salt, o.crypto.suite.profile,
			srtp.SRTPReplayProtection(128), srtp.SRTCPReplayProtection(128)); err != nil {
			return fail(fmt.Errorf("%w: the caller's key: %v", ErrRefused, err))
		}
		if c.tx, err = srtp.CreateContext(key.key, key.salt, key.suite.profile); err != nil {
			return fail(err)
		}
	}
	dec, err := audio.NewDecoder(o.codec.name)
	if err != nil {
		return fail(err)
	}
	if c.enc, err = audio.NewEncoder(o.codec.name); err != nil {
		return fail(err)
	}
	c.tsStep = o.codec.clock / 50
	c.src = newSource(o.codec.clock, dec)
	var r [10]byte
	_, _ = rand.Read(r[:])
	c.ssrc, c.seq = binary.BigEndian.Uint32(r[:4]), binary.BigEndian.Uint16(r[4:6])
	c.ts = binary.BigEndian.Uint32(r[6:])
	c.answer = o.answer(announce, key, uint64(c.ssrc))

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fail(ErrClosed)
	}
	b.calls[c] = struct{}{}
	b.wg.Add(2)
	b.mu.Unlock()
	go func() { defer b.wg.Done(); c.read() }()
	go func() { defer b.wg.Done(); c.ivr() }()
	return c, nil
}

// Answer returns the SDP answer to the caller's offer.
func (c *Call) Answer() string { return c.answer }

// Done is closed when the call's media has ended.
func (c *Call) Done() <-chan struct{} { return c.done }

// Digits carries the keys the caller presses.
func (c *Call) Digits() <-chan byte { return c.digits }

// Press adds a key pressed outside the media (a SIP INFO).
func (c *Call) Press(digit byte) {
	select {
	case c.digits <- digit:
	default: // nobody reads them: the oldest matter more
	}
	select {
	case c.pressed <- struct{}{}:
	default:
	}
}

// Play plays prompt p and returns when it has been played, when the
// caller presses a key, or when ctx is done.
func (c *Call) Play(ctx context.Context, p conference.Prompt) error {
	pcm, ok := prompts[p]
	if !ok {
		return fmt.Errorf("media: no prompt %q", p)
	}
	select {
	case <-c.pressed:
	default:
	}
	if len(c.digits) > 0 {
		return nil // the caller typed ahead: no need to hear the question
	}
	end := make(chan struct{})
	c.ivrMu.Lock()
	c.prompt, c.promptEnd = pcm, end
	c.ivrMu.Unlock()
	stop := func() {
		c.ivrMu.Lock()
		if c.promptEnd == end {
			c.prompt, c.promptEnd = nil, nil
		}
		c.ivrMu.Unlock()
	}
	select {
	case <-end:
		return nil
	case <-ctx.Done():
		stop()
		return ctx.Err()
	case <-c.done:
		return ErrClosed
	case <-c.ivrDone:
		return ErrClosed
	case <-c.pressed:
		stop() // barge-in: the key stays in Digits for the caller's answer
		return nil
	}
}

// Record records the caller for at most max (and at most 10 s), ending
// early on # or when ctx is done, and returns it as a WAV file at 8 kHz.
func (c *Call) Record(ctx context.Context, max time.Duration) ([]byte, error) {
	max = min(max, maxRecording)
	done := make(chan struct{})
	c.ivrMu.Lock()
	c.recording, c.recMax, c.recDone = make([]int16, 0, int(max/frameDuration)*audio.FrameSamples), int(max/frameDuration)*audio.FrameSamples, done
	c.ivrMu.Unlock()
	var err error
wait:
	for {
		select {
		case <-done:
			break wait
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-c.done:
			return nil, ErrClosed
		case <-c.ivrDone:
			return nil, ErrClosed
		case d := <-c.digits:
			if d == '#' {
				break wait
			}
		}
	}
	c.ivrMu.Lock()
	pcm := c.recording
	c.recording, c.recDone = nil, nil
	c.ivrMu.Unlock()
	if err != nil {
		return nil, err
	}
	return audio.WriteWAV(pcm, audio.Rate), nil
}

// Join hands the call to meeting's media: the token must be the focus's
// grant for participant in meeting, and the participant in the meeting
// (not its lobby). From then on the caller hears the meeting.
func (c *Call) Join(ctx context.Context, meeting conference.MeetingID, participant conference.ParticipantID, token string) error {
	claims, err := c.b.cfg.Tokens.Verify(token, conference.MediaClaims{Meeting: meeting, Participant: participant})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRefused, err)
	}
	if claims.Role == conference.LobbyRole {
		return fmt.Errorf("%w: %s waits in the lobby of %s", ErrRefused, participant, meeting)
	}
	p, err := c.b.cfg.Meetings.Participant(meeting, participant)
	if err != nil || p.State != conference.Joined {
		return fmt.Errorf("%w: %s is not in meeting %s", ErrRefused, participant, meeting)
	}
	r, err := c.b.room(ctx, meeting)
	if err != nil {
		return err
	}
	select {
	case c.handoff <- r:
	case <-c.ivrDone:
		r.releaseIfEmpty()
		return ErrClosed
	}
	<-c.ivrDone
	c.muted.Store(p.Muted)
	if err := r.addCall(c, participant); err != nil {
		r.releaseIfEmpty()
		c.close()
		return err
	}
	return nil
}

// Close ends the call's media.
func (c *Call) Close() error {
	c.end("closed")
	return nil
}

// end takes the call out of its meeting, if it is in one, and closes it.
func (c *Call) end(why string) {
	c.mu.Lock()
	r, pid := c.room, c.pid
	c.mu.Unlock()
	if r != nil {
		r.mu.Lock()
		mine := r.calls[pid] == c
		r.mu.Unlock()
		if mine {
			r.remove(pid, why)
		}
	}
	c.close()
}

// close releases the call's port; its goroutines end.
func (c *Call) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.conn.Close()
		c.mu.Lock()
		pid := c.pid
		c.mu.Unlock()
		c.src.mu.Lock()
		st, delay := c.src.jb.Stats(), c.src.jb.Delay()
		c.src.mu.Unlock()
		c.b.log.Info("media: call closed", "participant", pid, "lost", st.Lost, "late", st.Late,
			"duplicates", st.Duplicates, "dropped", st.Dropped, "jitter_delay", delay)
		c.b.mu.Lock()
		delete(c.b.calls, c)
		c.b.mu.Unlock()
	})
}

// read takes the caller's packets until the call ends: SRTCP is checked
// and dropped, SRTP is authenticated, checked against replays and
// decrypted, telephone events become digits, and audio goes to the
// jitter buffer. Only authenticated packets teach it where the caller is.
func (c *Call) read() {
	why := "closed"
	defer func() { c.end(why) }()
	buf := make([]byte, 1500)
	plain := make([]byte, 0, 1500)
	timeout := c.b.cfg.CallTimeout
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
		n, src, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				why = "nothing from the caller for " + timeout.String()
			}
			return
		}
		if n < 12 || buf[0]>>6 != 2 {
			continue
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if c.rx == nil && src.Addr() != c.offer.remote.Addr() {
			continue // plain RTP: only from the address the gateway named
		}
		pkt := buf[:n]
		if pt := pkt[1]; pt >= 192 && pt <= 223 { // RTCP (RFC 5761 section 4)
			if c.rx != nil {
				var h rtcp.Header
				if _, err := c.rx.DecryptRTCP(plain[:0], pkt, &h); err != nil {
					continue
				}
			}
			c.learn(src)
			continue
		}
		var h rtp.Header
		if c.rx != nil {
			out, err := c.rx.DecryptRTP(plain[:0], pkt, &h)
			if err != nil {
				continue // forged, replayed or damaged
			}
			pkt = out
		}
		var p rtp.Packet
		if err := p.Unmarshal(pkt); err != nil {
			continue
		}
		c.learn(src)
		switch {
		case c.offer.dtmf != nil && p.PayloadType == c.offer.dtmf.pt:
			ev, err := audio.ParseEvent(p.Payload)
			if err != nil {
				continue
			}
			if d, ok := c.dtmf.Feed(p.Timestamp, ev); ok {
				c.Press(d)
			}
		case p.PayloadType == c.offer.codec.pt:
			c.src.push(p.SequenceNumber, p.Timestamp, p.Payload)
		}
	}
}

// learn sends to where the caller's packets come from (symmetric RTP).
func (c *Call) learn(src netip.AddrPort) {
	if cur := c.remote.Load(); *cur != src {
		c.remote.Store(&src)
	}
}

// ivr runs the call before it joins a meeting: every 20 ms it sends the
// prompt playing (or silence) and adds what it hears to a recording.
func (c *Call) ivr() {
	defer close(c.ivrDone)
	t := time.NewTicker(frameDuration)
	defer t.Stop()
	in := make([]int16, 0, audio.FrameSamples)
	out := make([]int16, audio.FrameSamples)
	for {
		select {
		case <-c.done:
			return
		case r := <-c.handoff:
			c.mu.Lock()
			c.room = r
			c.mu.Unlock()
			return
		case <-t.C:
		}
		in = c.src.frame(in[:0])
		c.ivrMu.Lock()
		if c.recDone != nil {
			if len(in) == 0 {
				c.recording = append(c.recording, make([]int16, audio.FrameSamples)...)
			} else {
				c.recording = append(c.recording, in...)
			}
			if len(c.recording) >= c.recMax {
				close(c.recDone)
				c.recDone = nil
			}
		}
		clear(out)
		if len(c.prompt) > 0 {
			n := copy(out, c.prompt)
			c.prompt = c.prompt[n:]
			if len(c.prompt) == 0 {
				close(c.promptEnd)
				c.prompt, c.promptEnd = nil, nil
			}
		}
		c.ivrMu.Unlock()
		c.send(out)
	}
}

// send encodes one frame and sends it to the caller.
func (c *Call) send(pcm []int16) {
	if !c.offer.sends() {
		return // the caller receives nothing (sendonly, inactive)
	}
	payload, err := c.enc.Encode(c.pkt[12:12], pcm)
	if err != nil {
		c.b.log.Debug("media: encoding failed", "err", err)
		return
	}
	h := rtp.Header{Version: 2, PayloadType: c.offer.codec.pt, SequenceNumber: c.seq, Timestamp: c.ts, SSRC: c.ssrc, Marker: !c.started}
	c.started = true
	c.seq++
	c.ts += c.tsStep
	raw := c.pkt[:12+len(payload)]
	if _, err := h.MarshalTo(raw); err != nil {
		return
	}
	if c.tx != nil {
		if c.sealed, err = c.tx.EncryptRTP(c.sealed[:0], raw, &h); err != nil {
			return
		}
		raw = c.sealed
	}
	dst := *c.remote.Load()
	if !dst.Addr().IsValid() || dst.Addr().IsUnspecified() {
		return // nowhere known to send to yet (on hold); the stream still advances
	}
	_, _ = c.conn.WriteToUDPAddrPort(raw, dst)
}

// source is one speaker's audio on its way to a mixer: packets in a
// jitter buffer, decoded one 20 ms frame at a time.
type source struct {
	mu  sync.Mutex
	jb  *audio.JitterBuffer
	dec audio.Decoder
	pcm []int16 // decoded and not yet mixed
}

func newSource(clock uint32, dec audio.Decoder) *source {
	return &source{jb: audio.NewJitterBuffer(int(clock), clock/50), dec: dec}
}

// push adds a packet as it arrives.
func (s *source) push(seq uint16, ts uint32, payload []byte) {
	s.mu.Lock()
	s.jb.Push(seq, ts, time.Now(), payload)
	s.mu.Unlock()
}

// frame appends the next 20 ms of the speaker to dst: decoded, concealed
// where a packet is lost, or nothing before anything has arrived.
func (s *source) frame(dst []int16) []int16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pcm) < audio.FrameSamples {
		lost := s.jb.Stats().Lost
		payload, ok := s.jb.Pop()
		switch {
		case ok:
			out, err := s.dec.Decode(s.pcm, payload)
			if err == nil {
				s.pcm = out
			} else {
				s.pcm = s.dec.Conceal(s.pcm, audio.FrameSamples) // a damaged packet is a lost one
			}
		case s.jb.Stats().Lost > lost: // a packet missing in the sequence, not a pause
			s.pcm = s.dec.Conceal(s.pcm, audio.FrameSamples)
		}
	}
	if len(s.pcm) < audio.FrameSamples {
		return dst
	}
	dst = append(dst, s.pcm[:audio.FrameSamples]...)
	s.pcm = append(s.pcm[:0], s.pcm[audio.FrameSamples:]...)
	return dst
}
