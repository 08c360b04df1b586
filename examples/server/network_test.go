package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/stun"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/parleytest"
)

// publicIP is the address the network tests announce: a loopback
// address other than the one dialed, so that what carries it can only
// have come from -public.
const publicIP = "127.0.0.9"

// TestPublicAddressAnnounced: a server bound to every interface with
// -public announces the public address, never the unspecified one:
// the TURN URIs of relay credentials, an Allocate's relayed address,
// the join link, the bridge's answer to a SIP caller and its ICE
// candidates for a browser.
func TestPublicAddressAnnounced(t *testing.T) {
	data := t.TempDir()
	args := []string{"-data", data, "-listen", "0.0.0.0", "-public", publicIP}
	for _, l := range []string{"http", "https", "sip-tls", "sip-wss", "edge", "edge-users", "turn", "turns", "media"} {
		args = append(args, "-"+l, ":0")
	}
	s := startServerArgs(t, data, args)
	for name, addr := range s.listeners {
		if !strings.HasPrefix(addr, "0.0.0.0:") && !strings.HasPrefix(addr, "[::]:") {
			t.Fatalf("%s listens on %s, not on every interface", name, addr)
		}
		s.listeners[name] = "127.0.0.1:" + portOf(mustTCPAddr(t, addr)) // where the test dials it
	}

	c := s.httpsClient(t)
	cred := relayCredentials(t, s, "alice", s.passwords["sip:alice@example.test"])
	turnPort, turnsPort := portOf(mustTCPAddr(t, s.listeners["turn"])), portOf(mustTCPAddr(t, s.listeners["turns"]))
	want := []string{"turn:" + publicIP + ":" + turnPort + "?transport=udp", "turn:" + publicIP + ":" + turnPort + "?transport=tcp",
		"turns:" + publicIP + ":" + turnsPort + "?transport=tcp"}
	if strings.Join(cred.URIs, " ") != strings.Join(want, " ") {
		t.Fatalf("TURN URIs %q, want %q", cred.URIs, want)
	}

	_, relayed, err := turnAllocate(t, s, cred)
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	if ip := relayed.LocalAddr().(*net.UDPAddr).IP.String(); ip != publicIP {
		t.Fatalf("XOR-RELAYED-ADDRESS %s, want the public address %s", relayed.LocalAddr(), publicIP)
	}

	var m struct {
		scheduled
		JoinURL string `json:"join_url"`
	}
	res := digestDo(t, c, "POST", "https://"+s.listeners["https"]+"/api/meetings", "alice", s.passwords["sip:alice@example.test"],
		[]byte(`{"subject":"Public","access":"organization"}`))
	if res.StatusCode != http.StatusCreated || json.NewDecoder(res.Body).Decode(&m) != nil {
		t.Fatalf("schedule: %s", res.Status)
	}
	res.Body.Close()
	if !strings.HasPrefix(m.JoinURL, "https://"+publicIP+":"+portOf(mustTCPAddr(t, s.listeners["https"]))+"/") {
		t.Fatalf("join URL %q does not name the public address", m.JoinURL)
	}

	// A SIP caller's answer from the bridge.
	alice := s.sipUser(t, "alice", s.passwords["sip:alice@example.test"], "localhost")
	phone := newTestPhone(t)
	invite := alice.request(sip.INVITE, m.Focus, sip.NewHeader("Contact", "<sip:alice-dev@127.0.0.1;transport=tls>"),
		sip.NewHeader("Content-Type", "application/sdp"))
	invite.SetBody([]byte(phone.Offer()))
	in, err := alice.do(invite)
	if err != nil || in.StatusCode != 200 {
		t.Fatalf("alice joins over SIP: %v %v", in, err)
	}
	if body := string(in.Body()); !strings.Contains(body, "c=IN IP4 "+publicIP+"\r\n") {
		t.Fatalf("the bridge's SIP answer does not carry the public address:\n%s", body)
	}

	// A browser's answer: its ICE candidates.
	answer := browserAnswer(t, s, c, m.ID)
	cands := regexp.MustCompile(`a=candidate:\S+ \d+ udp \d+ (\S+) \d+ typ host`).FindAllStringSubmatch(answer, -1)
	if len(cands) == 0 {
		t.Fatalf("no host candidate in the bridge's answer:\n%s", answer)
	}
	for _, c := range cands {
		if c[1] != publicIP {
			t.Fatalf("ICE candidate with %s, want only the public address:\n%s", c[1], answer)
		}
	}
}

// browserAnswer joins meeting as alice through the web client's
// signaling, as a browser would, and returns the bridge's SDP answer.
func browserAnswer(t *testing.T, s *server, c *http.Client, meeting string) string {
	t.Helper()
	res := digestDo(t, c, "POST", "https://"+s.listeners["https"]+"/api/meetings/"+meeting+"/ticket", "alice",
		s.passwords["sip:alice@example.test"], []byte(`{}`))
	var tk struct{ Ticket string }
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&tk) != nil {
		t.Fatalf("ticket: %s", res.Status)
	}
	res.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+s.listeners["https"]+"/api/signaling/socket?ticket="+tk.Ticket, &websocket.DialOptions{HTTPClient: c})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	msg, _ := json.Marshal(map[string]string{"type": "offer", "sdp": offer.SDP})
	if err := ws.Write(ctx, websocket.MessageText, msg); err != nil {
		t.Fatal(err)
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for the answer: %v", err)
		}
		var m struct{ Type, SDP, Error string }
		if json.Unmarshal(data, &m) == nil && m.Type == "answer" {
			return m.SDP
		}
		if m.Type == "error" || m.Type == "ended" {
			t.Fatalf("signaling: %s", data)
		}
	}
}

func mustTCPAddr(t *testing.T, s string) net.Addr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestIPv6: a server on the IPv6 loopback signs users in and relays
// over IPv6: its TURN URIs and relayed addresses are IPv6, and the CRL
// its certificates name is reached over IPv6 too.
func TestIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	data := t.TempDir()
	args := []string{"-data", data, "-listen", "::1"}
	for _, l := range []string{"http", "https", "sip-tls", "sip-wss", "edge", "edge-users", "turn", "turns", "media"} {
		args = append(args, "-"+l, ":0")
	}
	s := startServerArgs(t, data, args)
	alice, err := parleytest.Dial(parleytest.ClientConfig{Addr: s.listeners["sip-tls"], ServerName: "localhost", Verifier: s.verifier(t),
		Domain: demoDomain, User: "alice", Password: s.passwords["sip:alice@example.test"]})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.HangUp()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := alice.SignIn(ctx); err != nil {
		t.Fatalf("sign-in over IPv6: %v", err)
	}
	cred, err := alice.RelayCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cred.URIs[0], "turn:[::1]:") {
		t.Fatalf("TURN URIs over IPv6: %q", cred.URIs)
	}
	// pion/turn v2's client resolves servers as IPv4 only: the Allocate
	// is made by hand (RFC 8656: a 401 with realm and nonce, then the
	// request with long-term credentials).
	conn, err := net.Dial("udp6", s.listeners["turn"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	roundTrip := func(method stun.Method, setters ...stun.Setter) *stun.Message {
		t.Helper()
		req := stun.MustBuild(append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, setters...)...)
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(req.Raw); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("the relay over IPv6: %v", err)
		}
		res := &stun.Message{Raw: buf[:n]}
		if err := res.Decode(); err != nil {
			t.Fatal(err)
		}
		return res
	}
	udp := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	challenge := roundTrip(stun.MethodAllocate, udp)
	var realm stun.Realm
	var nonce stun.Nonce
	if err := realm.GetFrom(challenge); err != nil {
		t.Fatalf("no realm in %v", challenge)
	}
	if err := nonce.GetFrom(challenge); err != nil {
		t.Fatalf("no nonce in %v", challenge)
	}
	integrity := stun.NewLongTermIntegrity(cred.Username, realm.String(), cred.Password)
	res := roundTrip(stun.MethodAllocate, udp, stun.NewUsername(cred.Username), realm, nonce, integrity, stun.Fingerprint)
	var relayedAddr stun.XORMappedAddress
	if err := relayedAddr.GetFromAs(res, stun.AttrXORRelayedAddress); err != nil {
		var code stun.ErrorCodeAttribute
		_ = code.GetFrom(res)
		t.Fatalf("allocate over IPv6: %v %v (%v)", res, code, err)
	}
	if !relayedAddr.IP.Equal(net.IPv6loopback) {
		t.Fatalf("relayed address %s, want ::1", relayedAddr)
	}
	// Deallocate (a Refresh with lifetime 0), as a client leaving does.
	zero := stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}
	if res := roundTrip(stun.MethodRefresh, zero, stun.NewUsername(cred.Username), realm, nonce, integrity, stun.Fingerprint); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("deallocate: %v", res)
	}
}

// TestEdgeBetweenTwoNetworks: the Access Edge's listeners on the
// external interface (127.0.0.2 here), the SIP listeners on the
// internal one (127.0.0.3): a remote user reaches the edge only, and
// through it a user signed in on the internal network.
func TestEdgeBetweenTwoNetworks(t *testing.T) {
	data := t.TempDir()
	args := []string{"-data", data, "-listen", "127.0.0.3", "-edge", "127.0.0.2:0", "-edge-users", "127.0.0.2:0", "-turn", "127.0.0.2:0",
		"-turns", "127.0.0.2:0"}
	for _, l := range []string{"http", "https", "sip-tls", "sip-wss", "media"} {
		args = append(args, "-"+l, ":0")
	}
	s := startServerArgs(t, data, args)
	for _, l := range []string{"edge", "edge-users", "turn", "turns"} {
		if !strings.HasPrefix(s.listeners[l], "127.0.0.2:") {
			t.Fatalf("%s on %s, not the external interface", l, s.listeners[l])
		}
	}
	if !strings.HasPrefix(s.listeners["sip-tls"], "127.0.0.3:") {
		t.Fatalf("sip-tls on %s, not the internal interface", s.listeners["sip-tls"])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	dial := func(user, addr, serverName string) *parleytest.Client {
		t.Helper()
		c, err := parleytest.Dial(parleytest.ClientConfig{Addr: addr, ServerName: serverName, Verifier: s.verifier(t),
			Domain: demoDomain, User: user, Password: s.passwords["sip:"+user+"@example.test"]})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.HangUp)
		if err := c.SignIn(ctx); err != nil {
			t.Fatalf("%s signs in at %s: %v", user, addr, err)
		}
		return c
	}
	bob := dial("bob", s.listeners["sip-tls"], "localhost")
	alice := dial("alice", s.listeners["edge-users"], edgeName) // remote, through the edge
	if err := alice.Send(ctx, "bob", "from outside"); err != nil {
		t.Fatalf("the remote user's MESSAGE: %v", err)
	}
	select {
	case m := <-bob.Messages():
		if m.Text != "from outside" {
			t.Fatalf("bob got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("bob did not get the remote user's MESSAGE")
	}
}
