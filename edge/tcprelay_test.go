package edge

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun"
	"github.com/pion/turn/v2"

	"github.com/parleyuc/parley/internal/testpki"
	"github.com/parleyuc/parley/pki"
)

var tcpTransportAttr = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{protoTCP, 0, 0, 0}}

var loopbackPeers = func(c *RelayConfig) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }

// tcpClient is pion's TURN client on a TCP control connection to the
// relay.
func (e *relayEnv) tcpClient(cred Credential) *turn.Client {
	c, _ := e.tcpClientConn(cred)
	return c
}

// tcpClientConn is tcpClient, and its control connection.
func (e *relayEnv) tcpClientConn(cred Credential) (*turn.Client, net.Conn) {
	e.t.Helper()
	conn, err := net.Dial("tcp4", e.tcp)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: e.tcp, Conn: turn.NewSTUNConn(conn), Username: cred.Username,
		Password: cred.Password, Realm: "example.test", LoggerFactory: quietLoggers(), RTO: e.rto})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close(); _ = conn.Close() })
	return c, conn
}

// closeAtEnd closes x when the test ends: a TCP allocation of pion's
// client refreshes itself on timers until it is closed.
func closeAtEnd[T interface{ Close() error }](t *testing.T, x T) T {
	t.Cleanup(func() { _ = x.Close() })
	return x
}

// dataConn is a new connection to the relay for a client data connection.
func (e *relayEnv) dataConn() net.Conn {
	e.t.Helper()
	c, err := net.Dial("tcp4", e.tcp)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// tcpEchoPeer is a loopback TCP server that echoes what it reads; it
// reports each connection's remote address.
func tcpEchoPeer(t *testing.T) (*net.TCPAddr, <-chan net.Addr) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	from := make(chan net.Addr, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			from <- c.RemoteAddr()
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr), from
}

func TestTCPAllocationRelaysAStreamToALoopbackPeerAndBack(t *testing.T) {
	e := newRelay(t, loopbackPeers)
	alloc, err := e.tcpClient(e.secrets.Issue("alice@example.test", time.Hour)).AllocateTCP()
	if err != nil {
		t.Fatalf("AllocateTCP: %v", err)
	}
	closeAtEnd(t, alloc)
	relayed := alloc.Addr().(*net.TCPAddr)
	if relayed.Port < DefaultRelayPortMin || relayed.Port > DefaultRelayPortMax {
		t.Fatalf("relayed address %v: port outside the range", relayed)
	}
	peer, from := tcpEchoPeer(t)

	data, err := alloc.DialTCPWithConn(e.dataConn(), "tcp4", peer)
	if err != nil {
		t.Fatalf("Connect and ConnectionBind: %v", err)
	}
	if got := (<-from).(*net.TCPAddr); got.Port != relayed.Port {
		t.Errorf("the peer sees a connection from %v, want the relayed address %v", got, relayed)
	}
	stream := make([]byte, 256<<10)
	_, _ = rand.Read(stream)
	go func() {
		_, _ = data.Write(stream)
		_ = data.CloseWrite() // the relay passes the half-close on; the peer's echo ends
	}()
	_ = data.SetReadDeadline(time.Now().Add(10 * time.Second))
	back, err := io.ReadAll(data)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if !bytes.Equal(back, stream) {
		t.Fatalf("echo: %d bytes back of %d, equal=%v", len(back), len(stream), bytes.Equal(back, stream))
	}
	mt := e.relay.Metrics()
	if mt.BytesToPeers != int64(len(stream)) || mt.BytesFromPeers != int64(len(stream)) {
		t.Errorf("metrics count %d bytes to and %d from peers, want %d each", mt.BytesToPeers, mt.BytesFromPeers, len(stream))
	}
	waitUntil(t, func() bool { return e.relay.Metrics().TCPConnections == 0 })

	if err := alloc.Close(); err != nil { // Refresh with lifetime 0
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return e.relay.Metrics().Allocations == 0 })
	if c, err := net.DialTimeout("tcp4", relayed.String(), time.Second); err == nil {
		_ = c.Close()
		t.Errorf("the relayed address still listens after the allocation is deleted")
	}
}

func TestTCPAllocationAcceptsPeersWithAPermission(t *testing.T) {
	e := newRelay(t, loopbackPeers)
	c, control := e.tcpClientConn(e.secrets.Issue("alice@example.test", time.Hour))
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, alloc)
	relayed := alloc.Addr().String()

	// Without a permission the relay closes the peer's connection.
	stranger, err := net.Dial("tcp4", relayed)
	if err != nil {
		t.Fatal(err)
	}
	_ = stranger.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := stranger.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("a peer without a permission: read %d, %v; want the connection closed", n, err)
	}
	_ = stranger.Close()

	if err := c.CreatePermission(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}); err != nil {
		t.Fatalf("CreatePermission: %v", err)
	}
	peer, err := net.Dial("tcp4", relayed)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := peer.Write([]byte("hello, relayed")); err != nil {
		t.Fatal(err)
	}
	_ = alloc.SetDeadline(time.Now().Add(5 * time.Second))
	data, err := alloc.AcceptTCPWithConn(e.dataConn())
	if err != nil {
		t.Fatalf("ConnectionAttempt, ConnectionBind: %v", err)
	}
	if data.RemoteAddr().String() != peer.LocalAddr().String() {
		t.Errorf("ConnectionAttempt names %v, the peer is %v", data.RemoteAddr(), peer.LocalAddr())
	}
	buf := make([]byte, 64)
	_ = data.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := io.ReadAtLeast(data, buf, len("hello, relayed"))
	if err != nil || string(buf[:n]) != "hello, relayed" {
		t.Fatalf("client read %q, %v (bytes the peer sent before the bind must wait for it)", buf[:n], err)
	}
	if _, err := data.Write([]byte("hello back")); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err = io.ReadAtLeast(peer, buf, len("hello back"))
	if err != nil || string(buf[:n]) != "hello back" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}

	// Closing the control connection deletes the allocation and closes
	// its data connections.
	_ = control.Close()
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(buf); err == nil {
		t.Errorf("the peer's connection outlived the allocation")
	}
	waitUntil(t, func() bool { m := e.relay.Metrics(); return m.Allocations == 0 && m.TCPConnections == 0 })
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }

func TestTCPAllocationRefusesInternalPeers(t *testing.T) {
	e := newRelay(t) // no allow-list: loopback and private peers refused
	c := e.tcpClient(e.secrets.Issue("alice@example.test", time.Hour))
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, alloc)
	peer, _ := tcpEchoPeer(t)
	for _, p := range []*net.TCPAddr{peer, {IP: net.IPv4(10, 1, 2, 3), Port: 80}} {
		if err := c.CreatePermission(p); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("CreatePermission toward %v: %v, want 403", p, err)
		}
		if _, err := alloc.Connect(p); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("Connect toward %v: %v, want 403", p, err)
		}
	}
	if m := e.relay.Metrics(); m.PeersRefused < 4 || m.TCPConnections != 0 {
		t.Errorf("metrics %+v", m)
	}
}

func TestTCPAllocationConnectFailures(t *testing.T) {
	e := newRelay(t, loopbackPeers)
	alloc, err := e.tcpClient(e.secrets.Issue("alice@example.test", time.Hour)).AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, alloc)
	closed, _ := net.Listen("tcp4", "127.0.0.1:0")
	addr := closed.Addr()
	_ = closed.Close()
	if _, err := alloc.Connect(addr); err == nil || !strings.Contains(err.Error(), "447") {
		t.Errorf("Connect to a closed port: %v, want 447", err)
	}
	peer, _ := tcpEchoPeer(t)
	if _, err := alloc.Connect(peer); err != nil {
		t.Fatal(err)
	}
	if _, err := alloc.Connect(peer); err == nil || !strings.Contains(err.Error(), "446") {
		t.Errorf("a second Connect to the same peer: %v, want 446", err)
	}
}

func TestTCPAllocationOverUDPRefused(t *testing.T) {
	e := newRelay(t)
	c := e.client(e.secrets.Issue("alice@example.test", time.Hour))
	if _, err := c.AllocateTCP(); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("AllocateTCP over UDP: %v, want 400 (RFC 6062 section 5.1)", err)
	}
	if m := e.relay.Metrics(); m.AllocationsTotal != 0 {
		t.Errorf("an allocation was made: %+v", m)
	}
}

func TestTCPAllocationCredentialsAndQuota(t *testing.T) {
	e := newRelay(t, func(c *RelayConfig) { c.AllocationsPerUser = 1 })
	expired := e.secrets.Issue("alice@example.test", time.Minute)
	e.clock.advance(2 * time.Minute)
	expiredClient, expiredConn := e.tcpClientConn(expired)
	a, err := expiredClient.AllocateTCP()
	_ = expiredConn.Close() // no retransmission of its may arrive later
	if err == nil {
		closeAtEnd(t, a)
		t.Errorf("an expired credential got a TCP allocation")
	}

	cred := e.secrets.Issue("alice@example.test", time.Hour)
	c1, control1 := e.tcpClientConn(cred)
	if a, err := c1.AllocateTCP(); err != nil {
		t.Fatal(err)
	} else {
		closeAtEnd(t, a)
	}
	if a, err := e.tcpClient(cred).AllocateTCP(); err == nil {
		closeAtEnd(t, a)
		t.Errorf("a second allocation past a quota of 1 allowed")
	} else if !strings.Contains(err.Error(), "486") {
		t.Errorf("a second allocation past a quota of 1: %v, want 486", err)
	}
	if _, err := allocate(t, e.client(cred)); err == nil {
		t.Errorf("a UDP allocation past the quota, the TCP one counted: allowed")
	}
	_ = control1.Close() // the allocation ends with its control connection
	waitUntil(t, func() bool { return e.relay.Metrics().Allocations == 0 })
	if a, err := e.tcpClient(cred).AllocateTCP(); err != nil {
		t.Errorf("after the first allocation ended: %v", err)
	} else {
		closeAtEnd(t, a)
	}
}

// authedRequest sends a request with cred on c, after the 401 that gives
// it a nonce, and returns the answer.
func authedRequest(t *testing.T, c net.Conn, br *bufio.Reader, cred Credential, method stun.Method, attrs ...stun.Setter) *stun.Message {
	t.Helper()
	_, _ = c.Write(buildReq(method, nil, "", attrs...))
	var n stun.Nonce
	if err := n.GetFrom(readStun(t, br, c)); err != nil {
		t.Fatalf("no nonce in the 401: %v", err)
	}
	_, _ = c.Write(buildReq(method, &cred, n.String(), attrs...))
	return readStun(t, br, c)
}

func errorCode(m *stun.Message) int {
	var code stun.ErrorCodeAttribute
	if m.Type.Class != stun.ClassErrorResponse || code.GetFrom(m) != nil {
		return 0
	}
	return int(code.Code)
}

func TestConnectionBindRefusals(t *testing.T) {
	e := newRelay(t, loopbackPeers)
	alice := e.secrets.Issue("alice@example.test", time.Hour)
	alloc, err := e.tcpClient(alice).AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, alloc)
	peer, _ := tcpEchoPeer(t)
	cid, err := alloc.Connect(peer)
	if err != nil {
		t.Fatal(err)
	}
	idAttr := func(id uint32) stun.Setter {
		v := make([]byte, 4)
		binary.BigEndian.PutUint32(v, id)
		return stun.RawAttribute{Type: stun.AttrConnectionID, Value: v}
	}
	bind := func(cred Credential, id uint32) int {
		c := e.dataConn()
		return errorCode(authedRequest(t, c, bufio.NewReader(c), cred, methodConnectionBind, idAttr(id)))
	}
	if code := bind(e.secrets.Issue("mallory@example.test", time.Hour), uint32(cid)); code != 441 {
		t.Errorf("ConnectionBind with another user's credentials: %d, want 441", code)
	}
	if code := bind(alice, uint32(cid)+1); code != 400 {
		t.Errorf("ConnectionBind with an unknown CONNECTION-ID: %d, want 400", code)
	}
	if code := bind(alice, uint32(cid)); code != 0 {
		t.Errorf("ConnectionBind by the owner: %d", code)
	}
	if code := bind(alice, uint32(cid)); code != 400 {
		t.Errorf("a second ConnectionBind of the same connection: %d, want 400", code)
	}

	// A Connect on a connection without an allocation: 437.
	c := e.dataConn()
	if code := errorCode(authedRequest(t, c, bufio.NewReader(c), alice, methodConnect,
		xorAddress{stun.AttrXORPeerAddress, peer.AddrPort()})); code != 437 {
		t.Errorf("Connect without an allocation: %d, want 437", code)
	}
}

func TestTCPRelayNonces(t *testing.T) {
	tr := newTCPRelays(&EdgeRelay{})
	now := time.Now()
	n := tr.nonce(now)
	if !tr.validNonce(n, now.Add(59*time.Minute)) {
		t.Errorf("a nonce refused within its hour")
	}
	if tr.validNonce(n, now.Add(61*time.Minute)) {
		t.Errorf("a nonce accepted after its hour")
	}
	other := newTCPRelays(&EdgeRelay{})
	if other.validNonce(n, now) {
		t.Errorf("another relay's nonce accepted")
	}
	for _, bad := range []string{"", ".", "zz.00", n[:len(n)-1] + "0", "1" + n} {
		if bad != n && tr.validNonce(bad, now) {
			t.Errorf("nonce %q accepted", bad)
		}
	}
}

// TestTCPAllocationOverTLS: a client that reaches the edge only over TLS
// (TCP 443) gets a TCP relay, its control and data connections both TLS.
// pion's client cannot bind a data connection over TLS, so the test binds
// it with its own ConnectionBind.
func TestTCPAllocationOverTLS(t *testing.T) {
	p := testpki.New(t)
	tlsLn, err := tls.Listen("tcp4", "127.0.0.1:0", pki.ServerTLSConfig(p.Server(t, "relay.example.test"), p.Verifier))
	if err != nil {
		t.Fatal(err)
	}
	e := newRelay(t, loopbackPeers, func(c *RelayConfig) { c.TCP = []net.Listener{tlsLn} })
	e.tcp = tlsLn.Addr().String()
	dialTLS := func() net.Conn {
		c, err := tls.Dial("tcp4", e.tcp, pki.ClientTLSConfig(nil, p.Verifier, "relay.example.test"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	alice := e.secrets.Issue("alice@example.test", time.Hour)
	control := dialTLS()
	c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: e.tcp, Conn: turn.NewSTUNConn(control), Username: alice.Username,
		Password: alice.Password, Realm: "example.test", LoggerFactory: quietLoggers(), RTO: e.rto})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatalf("AllocateTCP over TLS: %v", err)
	}
	closeAtEnd(t, alloc)
	peer, _ := tcpEchoPeer(t)
	cid, err := alloc.Connect(peer)
	if err != nil {
		t.Fatal(err)
	}
	data := dialTLS()
	br := bufio.NewReader(data)
	v := make([]byte, 4)
	binary.BigEndian.PutUint32(v, uint32(cid))
	if res := authedRequest(t, data, br, alice, methodConnectionBind, stun.RawAttribute{Type: stun.AttrConnectionID, Value: v}); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("ConnectionBind over TLS: %v %d", res.Type, errorCode(res))
	}
	if _, err := data.Write([]byte("over TLS and back")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = data.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := io.ReadAtLeast(br, buf, len("over TLS and back"))
	if err != nil || string(buf[:n]) != "over TLS and back" {
		t.Fatalf("echo over TLS: %q, %v", buf[:n], err)
	}
}

func TestTCPAllocationStaleNonceAnswered438(t *testing.T) {
	e := newRelay(t)
	alice := e.secrets.Issue("alice@example.test", time.Hour)
	c := e.dataConn()
	br := bufio.NewReader(c)
	old := newTCPRelays(e.relay).nonce(time.Now()) // another key: as from before a restart
	_, _ = c.Write(buildReq(stun.MethodAllocate, &alice, old, tcpTransportAttr))
	res := readStun(t, br, c)
	var n stun.Nonce
	if errorCode(res) != 438 || n.GetFrom(res) != nil {
		t.Fatalf("an Allocate with a nonce the relay did not issue: %v %d, want 438 with a fresh nonce", res.Type, errorCode(res))
	}
	_, _ = c.Write(buildReq(stun.MethodAllocate, &alice, n.String(), tcpTransportAttr))
	if res := readStun(t, br, c); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("with the fresh nonce: %v %d", res.Type, errorCode(res))
	}
	if m := e.relay.Metrics(); m.Allocations != 1 {
		t.Errorf("allocations %d, want 1", m.Allocations)
	}
}
