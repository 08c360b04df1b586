package media

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v2"

	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/internal/phone"
	"github.com/parleyuc/parley/media/audio"
)

// dial puts user in the meeting with a SIP phone's media: the phone's
// offer answered by the bridge, and the call joined with the focus's
// grant.
func (e *env) dial(user string, ph *phone.Phone) *Call {
	e.t.Helper()
	p := e.enter(user)
	c, err := e.bridge.newCall(ph.Offer(), false)
	if err != nil {
		e.t.Fatal(err)
	}
	g, err := e.focus.AddUser(e.meeting.ID, p.ID, "")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.Join(context.Background(), e.meeting.ID, p.ID, g.Token); err != nil {
		e.t.Fatal(err)
	}
	if err := ph.Accept(c.Answer()); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func newPhone(t testing.TB, plain bool) *phone.Phone {
	t.Helper()
	ph, err := phone.New(plain)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ph.Close)
	return ph
}

// hears waits until ph hears mostly freq among the candidates.
func hears(t testing.TB, ph *phone.Phone, who string, freq float64, candidates ...float64) {
	t.Helper()
	eventually(t, 5*time.Second, who+" hears its tone", func() bool {
		f, share := ph.Dominant(candidates...)
		return f == freq && share > 0.95
	})
}

func TestCallsHearEveryoneButThemselves(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	a, b, c := newPhone(t, false), newPhone(t, false), newPhone(t, false)
	a.Tone(440)
	b.Tone(1000)
	e.dial("alice", a)
	e.dial("bob", b)
	e.dial("carol", c) // silent
	tones := []float64{440, 1000}
	hears(t, a, "alice", 1000, tones...)
	hears(t, b, "bob", 440, tones...)
	// carol hears both, at their own level: nothing of hers is added.
	eventually(t, 5*time.Second, "carol hears both", func() bool {
		pcm := c.Received()
		pcm = pcm[max(0, len(pcm)-1600):]
		pa, pb := phone.Power(pcm, 440), phone.Power(pcm, 1000)
		return pa > 0 && pb > 0 && pa/pb > 0.5 && pa/pb < 2
	})
	if got := len(e.bridge.Participants(e.meeting.ID)); got != 3 {
		t.Fatalf("bridge has %d participants with media, want 3", got)
	}
}

func TestMutedCallIsNotMixed(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	a, b := newPhone(t, false), newPhone(t, false)
	a.Tone(440)
	e.dial("alice", a)
	e.dial("bob", b)
	eventually(t, 5*time.Second, "bob hears alice", func() bool { rms, _ := b.Heard(); return rms > 1000 })
	// alice organizes; bob is an attendee: he mutes nobody but himself. So
	// bob speaks and alice mutes the audience.
	a.Tone(0)
	b.Tone(1000)
	eventually(t, 5*time.Second, "alice hears bob", func() bool { rms, _ := a.Heard(); return rms > 1000 })
	parts := e.focus.Participants(e.meeting.ID)
	var alice string
	for _, p := range parts {
		if strings.Contains(p.URI, "alice") {
			alice = string(p.ID)
		}
	}
	if err := e.focus.MuteAll(context.Background(), e.meeting.ID, conference.ParticipantID(alice), true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "bob's audio held back", func() bool { rms, _ := a.Heard(); return rms < 50 })
}

func TestCallOfferRefused(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	ph := newPhone(t, true)
	cases := []struct{ name, offer, want string }{
		{"plain RTP", ph.Offer(), "plain RTP refused"},
		{"no key", strings.Replace(newPhone(t, false).Offer(), "a=crypto", "a=x-crypto", 1), "without a=crypto"},
		{"a 32-bit tag only", strings.Replace(newPhone(t, false).Offer(), "AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", 1), "unsupported"},
		{"DTLS-SRTP", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n", "want RTP/SAVP"},
		{"video only", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 4000 RTP/SAVP 96\r\n", "no audio"},
		{"no common codec", strings.NewReplacer("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 G729/8000", "m=audio", "m=audio").Replace(strings.Replace(newPhone(t, false).Offer(), " 0 101", " 18 101", 1)), "no codec in common"},
	}
	for _, c := range cases {
		_, err := e.bridge.newCall(c.offer, false)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrRefused saying %q", c.name, err, c.want)
		}
	}
	// A trusted gateway's plain RTP is taken.
	call, err := e.bridge.newCall(ph.Offer(), true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(call.Answer(), "a=crypto") || !strings.Contains(call.Answer(), "RTP/AVP") || !strings.Contains(call.Answer(), "c=IN IP4 127.0.0.1\r\n") {
		t.Fatalf("plain answer:\n%s", call.Answer())
	}
	_ = call.Close()
	// A token for someone else, or a lobby token, joins nothing.
	p := e.enter("bob")
	call, err = e.bridge.newCall(newPhone(t, false).Offer(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	g, _ := e.focus.AddUser(e.meeting.ID, p.ID, "")
	if err := call.Join(context.Background(), e.meeting.ID, "someone-else", g.Token); !errors.Is(err, ErrRefused) {
		t.Fatalf("join with another's token: %v", err)
	}
}

// An attacker who replays the caller's packets from elsewhere must not
// draw the caller's audio to itself (symmetric RTP learns only from
// fresh, authenticated packets), and packets it forges are dropped.
func TestCallReplayAndForgeryDoNotMoveMedia(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	a, b := newPhone(t, false), newPhone(t, false)
	a.Tone(440)
	e.dial("alice", a)
	e.dial("bob", b)
	// alice's phone has sent 40 packets (sequence numbers 0 to 39) when
	// bob has heard 40.
	eventually(t, 5*time.Second, "bob hears alice", func() bool { rms, n := b.Heard(); return rms > 1000 && n > 40 })
	callPort := answerPort(t, e, a)

	atk, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer atk.Close()
	key := a.Key()
	enc, err := srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatal(err)
	}
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: callPort}
	for seq := uint16(1); seq < 20; seq++ { // already sent by alice's phone
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: phone.PTPCMU, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0x5eed}, Payload: make([]byte, 160)}
		raw, _ := pkt.Marshal()
		out, err := enc.EncryptRTP(nil, raw, &pkt.Header)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = atk.WriteTo(out, to)
		out[len(out)-1] ^= 1 // and a forgery
		_, _ = atk.WriteTo(out, to)
	}
	_ = atk.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 1500)
	if n, _, err := atk.ReadFrom(buf); err == nil {
		t.Fatalf("the attacker received %d bytes of alice's media", n)
	}
	_, before := a.Heard()
	eventually(t, 2*time.Second, "alice still hears", func() bool { _, n := a.Heard(); return n > before+10 })
}

// answerPort finds the port of ph's call in the bridge.
func answerPort(t testing.TB, e *env, ph *phone.Phone) int {
	t.Helper()
	e.bridge.mu.Lock()
	defer e.bridge.mu.Unlock()
	for c := range e.bridge.calls {
		if c.offer.remote == ph.Addr() {
			return c.conn.LocalAddr().(*net.UDPAddr).Port
		}
	}
	t.Fatal("no call for the phone")
	return 0
}

func TestSilentCallerTimesOut(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	bridge, err := NewBridge(BridgeConfig{Tokens: e.tokens, Meetings: e.focus, UDP: udp, CallTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer bridge.Close()
	p := e.enter("bob")
	ph := newPhone(t, false)
	c, err := bridge.newCall(ph.Offer(), false)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := e.focus.AddUser(e.meeting.ID, p.ID, "")
	if err := c.Join(context.Background(), e.meeting.ID, p.ID, g.Token); err != nil {
		t.Fatal(err)
	}
	// The phone never starts: nothing arrives.
	select {
	case <-c.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("a silent call did not end")
	}
	eventually(t, time.Second, "the call left the bridge", func() bool { return len(bridge.Participants(e.meeting.ID)) == 0 })
}

func TestCallIVR(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	ph := newPhone(t, false)
	c, err := e.bridge.newCall(ph.Offer(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := ph.Accept(c.Answer()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The prompt plays until a key interrupts it.
	played := make(chan error, 1)
	go func() { played <- c.Play(ctx, conference.PromptConferenceID) }()
	eventually(t, 3*time.Second, "the phone hears the prompt", func() bool { rms, _ := ph.Heard(); return rms > 300 })
	if err := ph.Digits("42"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-played:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a key did not interrupt the prompt")
	}
	for _, want := range "42" {
		select {
		case d := <-c.Digits():
			if d != byte(want) {
				t.Fatalf("digit %c, want %c", d, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("digit %c not detected", want)
		}
	}
	select {
	case d := <-c.Digits():
		t.Fatalf("extra digit %c: a key press reported twice", d)
	case <-time.After(200 * time.Millisecond):
	}
	// A recording ends on #; it holds what the caller said.
	ph.Tone(700)
	rec := make(chan []byte, 1)
	go func() {
		wav, err := c.Record(ctx, 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		rec <- wav
	}()
	time.Sleep(600 * time.Millisecond)
	if err := ph.Digits("#"); err != nil {
		t.Fatal(err)
	}
	wav := <-rec
	pcm, rate, err := audio.ReadWAV(wav)
	if err != nil || rate != 8000 {
		t.Fatalf("recording: %v rate %d", err, rate)
	}
	if d := time.Duration(len(pcm)) * time.Second / 8000; d < 300*time.Millisecond || d > 2*time.Second {
		t.Fatalf("recording lasts %v; # after 600 ms should end it", d)
	}
	if phone.Power(pcm[len(pcm)/2:], 700) < 100*phone.Power(pcm[len(pcm)/2:], 440) {
		t.Fatal("the recording does not hold the caller's tone")
	}
}
