package media

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/media/audio"
)

const alicePassword = "alice's password"

// sigEnv is env with the browser signaling on an HTTPS test server,
// behind a real Authenticator: alice signs in with Digest, guests with the
// meeting's conference key.
type sigEnv struct {
	*env
	sig *Signaling
	srv *httptest.Server
}

func newSigEnv(t *testing.T, ttl time.Duration) *sigEnv {
	return newSigEnvConfig(t, SignalingConfig{TicketTTL: ttl})
}

// newSigEnvConfig is newSigEnv with more of the signaling's settings
// (Focus and Bridge are the environment's).
func newSigEnvConfig(t *testing.T, cfg SignalingConfig) *sigEnv {
	return newSigEnvLobby(t, cfg, nil)
}

// newSigEnvLobby is newSigEnvConfig with the focus's lobby (nil: the
// default).
func newSigEnvLobby(t *testing.T, cfg SignalingConfig, lobby *conference.Lobby) *sigEnv {
	e := newEnvLobby(t, time.Time{}, lobby)
	alice, err := e.dir.User(context.Background(), "sip:alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetPassword(alicePassword); err != nil {
		t.Fatal(err)
	}
	_ = e.dir.PutUser(*alice)
	authn, err := auth.New(auth.Config{Directory: e.dir, Realm: "example.test", Conferences: conference.Keys(e.meetings, nil)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Focus, cfg.Bridge = e.focus, e.bridge
	sig, err := NewSignaling(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /meetings/{meeting}/ticket", authn.HTTPForMeeting(func(r *http.Request) string { return r.PathValue("meeting") }, sig.TicketHandler()))
	mux.Handle("GET /socket", sig.SocketHandler())
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(func() {
		_ = sig.Close()
		srv.Close()
		_ = authn.Close()
	})
	return &sigEnv{env: e, sig: sig, srv: srv}
}

// ticket asks for a ticket with Digest credentials (RFC 7616, SHA-256);
// it returns the ticket, or "" and the status.
func (e *sigEnv) ticket(meeting, user, password, name string) (string, int) {
	e.t.Helper()
	return e.ticketFrom("", meeting, user, password, name)
}

// ticketFrom is ticket asked for from the loopback address ip ("": the
// default).
func (e *sigEnv) ticketFrom(ip, meeting, user, password, name string) (string, int) {
	e.t.Helper()
	client := e.srv.Client()
	if ip != "" {
		tr := client.Transport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr}
	}
	path := "/meetings/" + meeting + "/ticket"
	body, _ := json.Marshal(map[string]string{"display_name": name})
	post := func(authorization string) *http.Response {
		req, _ := http.NewRequest("POST", e.srv.URL+path, bytes.NewReader(body))
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		res, err := client.Do(req)
		if err != nil {
			e.t.Fatal(err)
		}
		return res
	}
	res := post("")
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		return "", res.StatusCode
	}
	var realm, nonce string
	for _, h := range res.Header.Values("WWW-Authenticate") {
		if strings.Contains(h, "SHA-256") {
			for _, m := range regexp.MustCompile(`(\w+)="([^"]*)"`).FindAllStringSubmatch(h, -1) {
				switch m[1] {
				case "realm":
					realm = m[2]
				case "nonce":
					nonce = m[2]
				}
			}
		}
	}
	h := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	response := h(h(user+":"+realm+":"+password) + ":" + nonce + ":00000001:c0ffee:auth:" + h("POST:"+path))
	res = post(fmt.Sprintf(`Digest username=%q, realm=%q, nonce=%q, uri=%q, algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c0ffee", response=%q`,
		user, realm, nonce, path, response))
	defer res.Body.Close()
	var out struct{ Ticket string }
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&out) != nil {
		return "", res.StatusCode
	}
	return out.Ticket, res.StatusCode
}

// browser is a participant of the signaling: its socket and its pion
// peer connection, which answers the bridge's offers by itself. The
// other messages are on msgs.
type browser struct {
	t    *testing.T
	conn *websocket.Conn
	peer *client
	msgs chan message
}

func (e *sigEnv) dial(ticket string, header http.Header) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return websocket.Dial(ctx, "wss"+strings.TrimPrefix(e.srv.URL, "https")+"/socket?ticket="+ticket,
		&websocket.DialOptions{HTTPClient: e.srv.Client(), HTTPHeader: header})
}

// open joins through a ticket's socket and offers media publishing audio
// and video.
func (e *sigEnv) open(ticket string) *browser {
	e.t.Helper()
	conn, _, err := e.dial(ticket, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	b := &browser{t: e.t.(*testing.T), conn: conn, msgs: make(chan message, 64)}
	e.t.Cleanup(func() { _ = conn.CloseNow() })
	peer, offer := e.newPeer(clientOptions{publish: []string{KindAudio, KindVideo}})
	b.peer = peer
	go b.pump()
	b.send(message{Type: "offer", SDP: offer})
	return b
}

func (b *browser) send(m message) {
	data, _ := json.Marshal(m)
	_ = b.conn.Write(context.Background(), websocket.MessageText, data)
}

// pump reads the socket until it closes.
func (b *browser) pump() {
	defer close(b.msgs)
	pc := b.peer.pc
	for {
		_, data, err := b.conn.Read(context.Background())
		if err != nil {
			return
		}
		var m message
		if err := json.Unmarshal(data, &m); err != nil {
			return
		}
		switch m.Type {
		case "answer":
			_ = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP})
		case "offer":
			if pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}) != nil {
				return
			}
			answer, err := pc.CreateAnswer(nil)
			if err != nil {
				return
			}
			gathered := webrtc.GatheringCompletePromise(pc)
			_ = pc.SetLocalDescription(answer)
			<-gathered
			b.send(message{Type: "answer", SDP: pc.LocalDescription().SDP})
		default:
			select {
			case b.msgs <- m:
			default: // a test not reading: drop
			}
		}
	}
}

// await returns the first message for which ok holds, within 5 s.
func (b *browser) await(what string, ok func(message) bool) message {
	b.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m, open := <-b.msgs:
			if !open {
				b.t.Fatalf("socket closed waiting for %s", what)
			}
			if ok(m) {
				return m
			}
		case <-deadline:
			b.t.Fatalf("no %s within 5 s", what)
		}
	}
}

func inState(state string) func(message) bool {
	return func(m message) bool { return m.Type == "state" && m.State == state }
}

// A user and a guest join from their browsers: the guest waits in the
// lobby (alice sees her there, she cannot let herself in or eject alice),
// alice admits her and media flows both ways; when the guest's socket
// closes she is out of the meeting.
func TestSignalingThroughTheLobby(t *testing.T) {
	e := newSigEnv(t, 0)
	tk, status := e.ticket(string(e.meeting.ID), "alice", alicePassword, "")
	if tk == "" {
		t.Fatalf("alice's ticket: %d", status)
	}
	alice := e.open(tk)
	me := alice.await("alice joined", inState("joined"))
	if me.Role != "organizer" {
		t.Fatalf("alice is %q", me.Role)
	}

	if _, status := e.ticket(string(e.meeting.ID), auth.AnonymousPrefix+string(e.meeting.ID), "not the key", "Gina"); status != http.StatusUnauthorized {
		t.Fatalf("a guest with a wrong key: %d, want 401", status)
	}
	tk, status = e.ticket(string(e.meeting.ID), auth.AnonymousPrefix+string(e.meeting.ID), e.meeting.Key, "Gina")
	if tk == "" {
		t.Fatalf("the guest's ticket: %d", status)
	}
	gina := e.open(tk)
	g := gina.await("the guest in the lobby", inState("lobby"))
	roster := alice.await("alice sees the lobby", func(m message) bool {
		return m.Type == "roster" && len(m.Participants) == 2
	})
	for _, p := range roster.Participants {
		if p.ID == g.Participant && (p.State != "lobby" || p.Name != "Gina" || p.Type != "anonymous") {
			t.Fatalf("the guest in alice's roster: %+v", p)
		}
	}
	gina.send(message{Type: "admit", Participant: g.Participant})
	gina.await("a refusal", func(m message) bool { return m.Type == "error" })
	gina.send(message{Type: "eject", Participant: me.Participant})
	gina.await("a refusal", func(m message) bool { return m.Type == "error" })
	eventually(t, 5*time.Second, "the guest hears the lobby music", func() bool { return gina.peer.stats(musicKey).packets > 10 })

	alice.send(message{Type: "admit", Participant: g.Participant})
	gina.await("the guest admitted", inState("joined"))
	for _, kind := range []string{KindAudio, KindVideo} {
		eventually(t, 5*time.Second, "the guest receives alice's "+kind, func() bool {
			return gina.peer.stats(string(me.Participant)+"/"+string(me.Participant)+"-"+kind).packets >= 10
		})
		eventually(t, 5*time.Second, "alice receives the guest's "+kind, func() bool {
			return alice.peer.stats(string(g.Participant)+"/"+string(g.Participant)+"-"+kind).packets >= 10
		})
	}

	_ = gina.conn.Close(websocket.StatusNormalClosure, "bye")
	eventually(t, 5*time.Second, "the guest is out of the meeting", func() bool {
		_, err := e.focus.Participant(e.meeting.ID, g.Participant)
		return err != nil
	})
	alice.await("alice's roster without the guest", func(m message) bool { return m.Type == "roster" && len(m.Participants) == 1 })
}

// Tickets open one socket, for a while, from the page's own origin; a
// guest's key opens its meeting only.
func TestSignalingTickets(t *testing.T) {
	e := newSigEnv(t, 300*time.Millisecond)
	other, err := e.focus.Schedule(context.Background(), identity("bob"), conference.MeetingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, status := e.ticket(string(other.ID), auth.AnonymousPrefix+string(e.meeting.ID), e.meeting.Key, "Gina"); status != http.StatusForbidden {
		t.Fatalf("a guest's ticket for another meeting: %d, want 403", status)
	}
	if _, _, err := e.dial("made-up", nil); err == nil {
		t.Fatal("a socket without a valid ticket")
	}

	tk, _ := e.ticket(string(e.meeting.ID), "alice", alicePassword, "")
	if _, res, err := e.dial(tk, http.Header{"Origin": {"https://elsewhere.example"}}); err == nil || res == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("a socket from another origin: %v", err)
	}
	tk, _ = e.ticket(string(e.meeting.ID), "alice", alicePassword, "")
	conn, _, err := e.dial(tk, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if _, _, err := e.dial(tk, nil); err == nil {
		t.Fatal("a ticket used twice")
	}
	tk, _ = e.ticket(string(e.meeting.ID), "alice", alicePassword, "")
	time.Sleep(400 * time.Millisecond)
	if _, _, err := e.dial(tk, nil); err == nil {
		t.Fatal("an expired ticket")
	}
}

// What the socket answers when things go wrong: a ticket for a meeting
// that does not exist ends the socket saying so; an unreadable message, an
// unknown one, an answer with no offer pending and a control from an
// attendee are refused with an error, and the socket stays.
func TestSignalingRefusals(t *testing.T) {
	e := newSigEnv(t, 0)
	tk, _ := e.ticket("no-such-meeting", "alice", alicePassword, "")
	conn, _, err := e.dial(tk, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	_, data, err := conn.Read(context.Background())
	var m message
	if err != nil || json.Unmarshal(data, &m) != nil || m.Type != "ended" || m.Reason != "no such meeting" {
		t.Fatalf("socket for a missing meeting: %s %v", data, err)
	}

	tk, _ = e.ticket(string(e.meeting.ID), "alice", alicePassword, "")
	alice := e.open(tk)
	alice.await("alice joined", inState("joined"))
	guestTicket, _ := e.ticket(string(e.meeting.ID), auth.AnonymousPrefix+string(e.meeting.ID), e.meeting.Key, "Gina")
	gina := e.open(guestTicket)
	g := gina.await("the guest in the lobby", inState("lobby"))
	alice.send(message{Type: "admit", Participant: g.Participant})
	gina.await("the guest admitted", inState("joined"))

	_ = alice.conn.Write(context.Background(), websocket.MessageText, []byte("{not json"))
	alice.await("an unreadable message refused", func(m message) bool { return m.Type == "error" && strings.Contains(m.Error, "unreadable") })
	alice.send(message{Type: "dance"})
	alice.await("an unknown message refused", func(m message) bool { return m.Type == "error" && strings.Contains(m.Error, "dance") })
	alice.send(message{Type: "answer", SDP: "v=0\r\n"})
	alice.await("an answer without an offer refused", func(m message) bool { return m.Type == "error" })
	gina.send(message{Type: "mute-all"})
	gina.await("an attendee's mute-all refused", func(m message) bool { return m.Type == "error" })
	if p, err := e.focus.Participant(e.meeting.ID, g.Participant); err != nil || p.Muted {
		t.Fatalf("after the refused mute-all: %+v %v", p, err)
	}
	alice.send(message{Type: "eject", Participant: g.Participant})
	if end := gina.await("the ejected guest's socket ends", func(m message) bool { return m.Type == "ended" }); end.Reason != "ejected" {
		t.Fatalf("ended: %q", end.Reason)
	}
}

// A dial-in caller's recorded name is announced to leaders in their
// roster and played to them on request; an attendee gets neither.
func TestLeadersHearRecordedNames(t *testing.T) {
	e := newSigEnv(t, 0)
	tk, _ := e.ticket(string(e.meeting.ID), "alice", alicePassword, "")
	alice := e.open(tk)
	me := alice.await("alice joined", inState("joined"))
	var phase float64
	wav := audio.WriteWAV(audio.Tone(nil, 500, 8000, 8000, &phase), audio.Rate)
	caller, err := e.focus.Join(context.Background(), e.meeting.ID, conference.JoinRequest{DialIn: true, RecordedName: wav,
		Identity: &auth.Identity{URI: "sip:x@anonymous.invalid", Kind: auth.Anonymous, Meeting: string(e.meeting.ID)}})
	if err != nil {
		t.Fatal(err)
	}
	alice.await("alice sees the caller's recorded name", func(m message) bool {
		for _, p := range m.Participants {
			if p.ID == caller.ID && p.RecordedName {
				return true
			}
		}
		return false
	})
	alice.send(message{Type: "recorded-name", Participant: caller.ID})
	got := alice.await("the recording", func(m message) bool { return m.Type == "recorded-name" })
	if got.Participant != caller.ID || !bytes.Equal(got.Audio, wav) {
		t.Fatalf("recorded name: %s, %d bytes", got.Participant, len(got.Audio))
	}
	alice.send(message{Type: "recorded-name", Participant: me.Participant})
	alice.await("no recording for alice", func(m message) bool { return m.Type == "error" })
	if _, err := e.focus.RecordedName(context.Background(), e.meeting.ID, caller.ID, caller.ID); !errors.Is(err, conference.ErrForbidden) {
		t.Fatalf("an attendee asks for a recorded name: %v, want ErrForbidden", err)
	}
}

// A cross-origin attempt is refused before the ticket is looked at, so
// it cannot burn the ticket of the user it was taken from.
func TestSignalingRefusedOriginKeepsTicket(t *testing.T) {
	e := newSigEnv(t, 5*time.Second)
	tk, _ := e.ticket(string(e.meeting.ID), "alice", alicePassword, "")
	if _, res, err := e.dial(tk, http.Header{"Origin": {"https://elsewhere.example"}}); err == nil || res == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("a socket from another origin: %v", err)
	}
	conn, _, err := e.dial(tk, nil)
	if err != nil {
		t.Fatalf("the ticket after a refused cross-origin attempt: %v", err)
	}
	conn.CloseNow()
}

// The tickets waiting are bounded per source and per meeting, so that
// one conference key from a few addresses cannot take every ticket.
func TestSignalingTicketBounds(t *testing.T) {
	e := newSigEnvConfig(t, SignalingConfig{TicketTTL: 30 * time.Second, MaxTicketsPerSource: 3, MaxTicketsPerMeeting: 5})
	other, err := e.focus.Schedule(context.Background(), identity("bob"), conference.MeetingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	meeting, guest, key := string(e.meeting.ID), auth.AnonymousPrefix+string(e.meeting.ID), e.meeting.Key
	for i := range 3 {
		if _, status := e.ticketFrom("127.0.0.2", meeting, guest, key, "Gina"); status != http.StatusOK {
			t.Fatalf("ticket %d from one source: %d", i, status)
		}
	}
	if _, status := e.ticketFrom("127.0.0.2", meeting, guest, key, "Gina"); status != http.StatusTooManyRequests {
		t.Fatalf("a ticket over the source's share: %d, want 429", status)
	}
	for i := range 2 {
		if _, status := e.ticketFrom("127.0.0.3", meeting, guest, key, "Gina"); status != http.StatusOK {
			t.Fatalf("ticket %d from a second source: %d", i, status)
		}
	}
	if _, status := e.ticketFrom("127.0.0.4", meeting, guest, key, "Gina"); status != http.StatusServiceUnavailable {
		t.Fatalf("a ticket over the meeting's share: %d, want 503", status)
	}
	if _, status := e.ticketFrom("127.0.0.4", string(other.ID), "alice", alicePassword, ""); status != http.StatusOK {
		t.Fatalf("a ticket for another meeting: %d, want 200", status)
	}
	for _, bad := range []SignalingConfig{{MaxTicketsPerMeeting: -1}, {MaxTicketsPerSource: -1}} {
		bad.Focus, bad.Bridge = e.focus, e.bridge
		if _, err := NewSignaling(bad); err == nil {
			t.Fatalf("%+v accepted", bad)
		}
	}
}

// A frame declaring more than the socket's message limit (here 2^62
// bytes) closes the socket when its header arrives: the server does not
// wait for a payload that will never come.
func TestSignalingRefusesOversizedFrameAtHeader(t *testing.T) {
	e := newSigEnv(t, 5*time.Second)
	tk, _ := e.ticket(string(e.meeting.ID), "alice", alicePassword, "")
	host := strings.TrimPrefix(e.srv.URL, "https://")
	c, err := tls.Dial("tcp", host, e.srv.Client().Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET /socket?ticket=" + tk + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	hdr := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	binary.BigEndian.PutUint64(hdr[2:10], 1<<62)
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = io.Copy(io.Discard, br)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a frame declaring 2^62 bytes left the socket waiting for its payload")
	}
}

// SignOut ends the sockets of a user whose rights were withdrawn: they
// leave the meeting, and a guest's socket stays.
func TestSignalingSignOut(t *testing.T) {
	e := newSigEnv(t, 0)
	tk, _ := e.ticket(string(e.meeting.ID), "alice", alicePassword, "")
	alice := e.open(tk)
	joined := alice.await("alice joined", inState("joined"))
	guestTicket, _ := e.ticket(string(e.meeting.ID), auth.AnonymousPrefix+string(e.meeting.ID), e.meeting.Key, "Gina")
	gina := e.open(guestTicket)
	g := gina.await("the guest in the lobby", inState("lobby"))
	alice.send(message{Type: "admit", Participant: g.Participant})
	gina.await("the guest admitted", inState("joined"))

	if n := e.sig.SignOut("sip:alice@example.test"); n != 1 {
		t.Fatalf("SignOut ended %d sockets, want alice's one", n)
	}
	deadline := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-alice.msgs:
		case <-deadline:
			t.Fatal("alice's socket still open after SignOut")
		}
	}
	for {
		if _, err := e.focus.Participant(e.meeting.ID, joined.Participant); err != nil {
			break
		}
		select {
		case <-deadline:
			t.Fatal("alice is still in the meeting after SignOut")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if p, err := e.focus.Participant(e.meeting.ID, g.Participant); err != nil {
		t.Fatalf("the guest after alice's sign-out: %+v %v", p, err)
	}
	if n := e.sig.SignOut("sip:alice@example.test"); n != 0 {
		t.Fatalf("a second SignOut ended %d sockets", n)
	}
}
