package edge

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun"
)

// signedReq is a request signed with any user name, password and realm.
func signedReq(method stun.Method, username, pass, realm, nonce string, extra ...stun.Setter) []byte {
	s := []stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}
	s = append(s, extra...)
	s = append(s, stun.NewUsername(username), stun.NewRealm(realm), stun.NewNonce(nonce),
		stun.NewLongTermIntegrity(username, realm, pass), stun.Fingerprint)
	return stun.MustBuild(s...).Raw
}

// signedBy reports whether m carries MESSAGE-INTEGRITY with cred's key.
func signedBy(m *stun.Message, cred Credential) bool {
	return stun.NewLongTermIntegrity(cred.Username, "example.test", cred.Password).Check(m) == nil
}

// TestRelayRefusedPeerIsAnswered403 (issue 25, item 3): CreatePermission
// and ChannelBind toward a peer the filter refuses are answered 403
// Forbidden (RFC 8656 sections 9.2 and 11.2), signed with the user's
// key, and grant nothing, not even the request's other peers.
func TestRelayRefusedPeerIsAnswered403(t *testing.T) {
	e := newRelay(t)
	s := e.udpSession("alice@example.test")
	for _, peer := range []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "::ffff:0:7f00:1", "64:ff9b::a00:1"} {
		ip := netip.MustParseAddr(peer)
		for name, m := range map[string]*stun.Message{"CreatePermission": s.createPermission(ip), "ChannelBind": s.channelBind(ip, 3)} {
			if m.Type.Class != stun.ClassErrorResponse || errorCode(m) != 403 {
				t.Errorf("%s toward %s: %v, code %d; want 403", name, peer, m.Type, errorCode(m))
			}
			if !signedBy(m, s.cred) {
				t.Errorf("%s toward %s: the 403 is not signed with alice's key", name, peer)
			}
		}
	}
	// A public peer and a refused one in one request: 403, none granted.
	m := s.ask(buildReq(stun.MethodCreatePermission, &s.cred, s.nonce,
		peerAttr(netip.MustParseAddr("8.8.8.8"), 9), peerAttr(netip.MustParseAddr("10.0.0.1"), 9)))
	if errorCode(m) != 403 {
		t.Errorf("CreatePermission toward 8.8.8.8 and 10.0.0.1: %v %d, want 403", m.Type, errorCode(m))
	}
	if mt := e.relay.Metrics(); mt.Permissions != 0 || mt.PeersRefused != 11 {
		t.Errorf("metrics %+v: want no permission, 11 refusals", mt)
	}
	if m := s.createPermission(netip.MustParseAddr("8.8.8.8")); m.Type.Class != stun.ClassSuccessResponse {
		t.Errorf("CreatePermission toward 8.8.8.8 alone: %v %d", m.Type, errorCode(m))
	}
	// The same for a UDP allocation made over a TCP connection.
	c, br, nonce := tcpNonce(t, e.tcp)
	bob := e.secrets.Issue("bob@example.test", time.Hour)
	_, _ = c.Write(buildReq(stun.MethodAllocate, &bob, nonce, udpTransportAttr))
	if m := readStun(t, br, c); m.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("bob's Allocate over TCP: %v %d", m.Type, errorCode(m))
	}
	for _, method := range []stun.Method{stun.MethodCreatePermission, stun.MethodChannelBind} {
		_, _ = c.Write(buildReq(method, &bob, nonce, channelAttr(4), peerAttr(netip.MustParseAddr("10.0.0.1"), 9)))
		if m := readStun(t, br, c); errorCode(m) != 403 || !signedBy(m, bob) {
			t.Errorf("%v over TCP toward 10.0.0.1: %v %d, want a signed 403", method, m.Type, errorCode(m))
		}
	}
}

// badUsernames are correctly signed credentials the relay must refuse, by
// what is wrong with their expiry (the user name's first field).
func badUsernames(e *relayEnv) map[string]string {
	now := e.clock.now()
	id := e.secrets.current.id
	return map[string]string{
		"expired":            strconv.FormatInt(now.Add(-time.Minute).Unix(), 10) + ":" + id + ":alice@example.test",
		"lifetime over 8 h":  strconv.FormatInt(now.Add(9*time.Hour).Unix(), 10) + ":" + id + ":alice@example.test",
		"non-numeric expiry": "soon:" + id + ":alice@example.test",
		"negative expiry":    "-1700000000:" + id + ":alice@example.test",
		"empty expiry":       ":" + id + ":alice@example.test",
		"unknown secret":     strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + ":feedf00d:alice@example.test",
	}
}

// TestRelayBadCredentialsAnswered401 (issue 25, item 4): a request with a
// credential the relay refuses is answered 401 with the realm and a fresh
// nonce (RFC 8656 section 7.2, RFC 8489 section 9.2.4), over UDP and TCP;
// the nonce serves the next request.
func TestRelayBadCredentialsAnswered401(t *testing.T) {
	e := newRelay(t)
	server, _ := net.ResolveUDPAddr("udp4", e.udp)
	for why, name := range badUsernames(e) {
		for _, transport := range []string{"udp", "tcp"} {
			var send func([]byte) *stun.Message
			if transport == "udp" {
				conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				s := &relaySession{t: t, conn: conn, server: server}
				send = s.ask
			} else {
				c, err := net.Dial("tcp4", e.tcp)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				br := bufio.NewReader(c)
				send = func(b []byte) *stun.Message { _, _ = c.Write(b); return readStun(t, br, c) }
			}
			var first stun.Nonce
			if err := first.GetFrom(send(buildReq(stun.MethodAllocate, nil, "", udpTransportAttr))); err != nil {
				t.Fatal(err)
			}
			m := send(signedReq(stun.MethodAllocate, name, password(e.secrets.current.key, name), "example.test", first.String(), udpTransportAttr))
			var nonce stun.Nonce
			var realm stun.Realm
			if errorCode(m) != 401 || nonce.GetFrom(m) != nil || realm.GetFrom(m) != nil || realm.String() != "example.test" {
				t.Errorf("%s over %s: %v, code %d, nonce %q, realm %q; want 401 with a nonce and the realm",
					why, transport, m.Type, errorCode(m), nonce, realm)
				continue
			}
			good := e.secrets.Issue("alice@example.test", time.Hour)
			if m := send(buildReq(stun.MethodAllocate, &good, nonce.String(), udpTransportAttr)); m.Type.Class != stun.ClassSuccessResponse {
				t.Errorf("%s over %s: the 401's nonce refused for a good credential: %v %d", why, transport, m.Type, errorCode(m))
			} else {
				_ = send(buildReq(stun.MethodRefresh, &good, nonce.String(), stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}))
			}
		}
	}
	// Another realm's credential: 401 naming ours.
	s := &relaySession{t: t, server: server}
	s.conn, _ = net.ListenPacket("udp4", "127.0.0.1:0")
	defer s.conn.Close()
	var first stun.Nonce
	_ = first.GetFrom(s.ask(buildReq(stun.MethodAllocate, nil, "", udpTransportAttr)))
	cred := e.secrets.Issue("alice@example.test", time.Hour)
	m := s.ask(signedReq(stun.MethodAllocate, cred.Username, cred.Password, "other.test", first.String(), udpTransportAttr))
	var realm stun.Realm
	if errorCode(m) != 401 || realm.GetFrom(m) != nil || realm.String() != "example.test" {
		t.Errorf("another realm: %v %d realm %q, want 401 naming example.test", m.Type, errorCode(m), realm)
	}
	if mt := e.relay.Metrics(); mt.AuthFailures < 13 || mt.AllocationsTotal != 12 {
		t.Errorf("metrics %+v", mt)
	}
}

// staleNonce has the form of pion's nonces, issued two hours ago.
func staleNonce() string {
	b := make([]byte, pionNonceBytes)
	binary.BigEndian.PutUint64(b, uint64(time.Now().Add(-2*time.Hour).UnixMilli()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b)
}

// TestRelayStaleNonceAnswered438 (issue 25, item 4): a good credential
// with a stale or forged nonce gets 438 with a fresh nonce (RFC 8489
// section 9.2.4), before the relay's own answers (441, 403); the fresh
// nonce serves.
func TestRelayStaleNonceAnswered438(t *testing.T) {
	e := newRelay(t)
	s := e.udpSession("alice@example.test")
	bob := e.secrets.Issue("bob@example.test", time.Hour)
	for name, req := range map[string][]byte{
		"Refresh, stale nonce":               buildReq(stun.MethodRefresh, &s.cred, staleNonce()),
		"Refresh, forged nonce":              buildReq(stun.MethodRefresh, &s.cred, "not-a-nonce"),
		"CreatePermission to 10/8, stale":    buildReq(stun.MethodCreatePermission, &s.cred, staleNonce(), peerAttr(netip.MustParseAddr("10.0.0.1"), 9)),
		"bob's Refresh on alice's, stale":    buildReq(stun.MethodRefresh, &bob, staleNonce()),
		"CreatePermission to 8.8.8.8, stale": buildReq(stun.MethodCreatePermission, &s.cred, staleNonce(), peerAttr(netip.MustParseAddr("8.8.8.8"), 9)),
	} {
		m := s.ask(req)
		var nonce stun.Nonce
		if errorCode(m) != 438 || nonce.GetFrom(m) != nil {
			t.Errorf("%s: %v %d, want 438 with a nonce", name, m.Type, errorCode(m))
			continue
		}
		if m := s.ask(buildReq(stun.MethodRefresh, &s.cred, nonce.String())); m.Type.Class != stun.ClassSuccessResponse {
			t.Errorf("%s: the 438's nonce refused: %v %d", name, m.Type, errorCode(m))
		}
	}
	// With a fresh nonce: bob on alice's allocation gets 441, signed with
	// his key.
	m := s.ask(buildReq(stun.MethodCreatePermission, &bob, s.nonce, peerAttr(netip.MustParseAddr("8.8.8.8"), 9)))
	if errorCode(m) != 441 || !signedBy(m, bob) {
		t.Errorf("bob's CreatePermission on alice's allocation: %v %d (signed %v), want 441 signed", m.Type, errorCode(m), signedBy(m, bob))
	}
}

// TestRelayWithTheApplicationsCredentialCheck: RelayConfig.AuthHandler
// replaces the Secrets check, over UDP and for TCP allocations; users it
// refuses get 401, and the quota and the peer filter still hold.
func TestRelayWithTheApplicationsCredentialCheck(t *testing.T) {
	users := map[string]string{"carol": "correct horse", "dave": "battery staple"}
	e := newRelay(t, func(c *RelayConfig) {
		c.Secrets = nil
		c.AllocationsPerUser = 1
		c.AuthHandler = func(username, realm string, _ net.Addr) ([]byte, bool) {
			pass, ok := users[username]
			return LongTermKey(username, realm, pass), ok && realm == "example.test"
		}
	})
	carol := Credential{Username: "carol", Password: "correct horse"}
	rc, err := allocate(t, e.client(carol))
	if err != nil {
		t.Fatalf("carol's allocation: %v", err)
	}
	if _, err := rc.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 9}); err == nil {
		t.Error("carol reached 10.0.0.1")
	}
	if _, err := allocate(t, e.client(carol)); err == nil {
		t.Error("carol's second allocation past a quota of 1")
	}
	alloc, err := e.tcpClient(Credential{Username: "dave", Password: "battery staple"}).AllocateTCP()
	if err != nil {
		t.Fatalf("dave's TCP allocation: %v", err)
	}
	closeAtEnd(t, alloc)
	// Mallory is nobody the application knows; an issued credential means
	// nothing to this relay.
	s := &relaySession{t: t}
	s.server, _ = net.ResolveUDPAddr("udp4", e.udp)
	s.conn, _ = net.ListenPacket("udp4", "127.0.0.1:0")
	defer s.conn.Close()
	var nonce stun.Nonce
	_ = nonce.GetFrom(s.ask(buildReq(stun.MethodAllocate, nil, "", udpTransportAttr)))
	for _, cred := range []Credential{{Username: "mallory", Password: "x"}, NewSecrets(0, nil).Issue("alice@example.test", time.Hour)} {
		if m := s.ask(buildReq(stun.MethodAllocate, &cred, nonce.String(), udpTransportAttr)); errorCode(m) != 401 {
			t.Errorf("%s: %v %d, want 401", cred.Username, m.Type, errorCode(m))
		}
	}
}
