package edge

import (
	"bufio"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun"
	"github.com/pion/turn/v2"
)

var udpTransportAttr = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

func buildReq(method stun.Method, cred *Credential, nonce string, extra ...stun.Setter) []byte {
	s := []stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}
	s = append(s, extra...)
	if cred != nil {
		s = append(s, stun.NewUsername(cred.Username), stun.NewRealm("example.test"), stun.NewNonce(nonce),
			stun.NewLongTermIntegrity(cred.Username, "example.test", cred.Password))
	}
	s = append(s, stun.Fingerprint)
	return stun.MustBuild(s...).Raw
}

func readStun(t *testing.T, br *bufio.Reader, c net.Conn) *stun.Message {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	f, err := readFrame(br)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	m := &stun.Message{Raw: f}
	if err := m.Decode(); err != nil {
		t.Fatal(err)
	}
	return m
}

// tcpNonce opens a TCP connection and gets a nonce.
func tcpNonce(t *testing.T, addr string) (net.Conn, *bufio.Reader, string) {
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	br := bufio.NewReader(c)
	_, _ = c.Write(buildReq(stun.MethodAllocate, nil, "", udpTransportAttr))
	var n stun.Nonce
	if err := n.GetFrom(readStun(t, br, c)); err != nil {
		t.Fatal(err)
	}
	return c, br, n.String()
}

// concurrent Allocates over TCP connections all pass the quota check
// (inspect) before any is counted (track).
func TestRelayQuotaHoldsUnderConcurrentTCPAllocates(t *testing.T) {
	e := newRelay(t, func(c *RelayConfig) { c.AllocationsPerUser = 1 })
	cred := e.secrets.Issue("alice@example.test", time.Hour)
	type cn struct {
		c     net.Conn
		br    *bufio.Reader
		nonce string
	}
	var conns []cn
	for range 32 {
		c, br, n := tcpNonce(t, e.tcp)
		conns = append(conns, cn{c, br, n})
	}
	var wg sync.WaitGroup
	var ok atomic.Int32
	start := make(chan struct{})
	for _, x := range conns {
		wg.Add(1)
		req := buildReq(stun.MethodAllocate, &cred, x.nonce, udpTransportAttr)
		go func() {
			defer wg.Done()
			<-start
			_, _ = x.c.Write(req)
			_ = x.c.SetReadDeadline(time.Now().Add(3 * time.Second))
			f, err := readFrame(x.br)
			if err != nil {
				return
			}
			m := &stun.Message{Raw: f}
			if m.Decode() == nil && m.Type.Class == stun.ClassSuccessResponse {
				ok.Add(1)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(start)
	wg.Wait()
	t.Logf("quota 1: %d successful allocations, metrics %+v", ok.Load(), e.relay.Metrics())
	if ok.Load() > 1 {
		t.Errorf("quota of 1 exceeded: %d allocations", ok.Load())
	}
}

// a TCP client that does not read its responses leaves allocMu held
// (pion blocks writing an Allocate response), and every other Allocate on
// that listener blocks forever.
func TestRelayClientThatDoesNotReadBlocksNobody(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a TCP connection's buffers for about 20 s")
	}
	e := newRelay(t)
	mallory := e.secrets.Issue("mallory@example.test", time.Hour)
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp4", e.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	_, _ = c.Write(buildReq(stun.MethodAllocate, nil, "", udpTransportAttr))
	var n stun.Nonce
	_ = n.GetFrom(readStun(t, br, c))
	// Authenticated Allocates (all but the first get 437), never reading,
	// until the server stops reading them (blocked writing a response).
	req := buildReq(stun.MethodAllocate, &mallory, n.String(), udpTransportAttr)
	sent := 0
	start := time.Now()
	for time.Since(start) < 30*time.Second {
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(req); err != nil {
			break
		}
		sent++
		req = buildReq(stun.MethodAllocate, &mallory, n.String(), udpTransportAttr)
	}
	t.Logf("mallory sent %d Allocates in %v before the server stopped reading", sent, time.Since(start))

	// Alice, well-behaved, on the same listener.
	conn, err := net.Dial("tcp4", e.tcp)
	if err != nil {
		t.Fatal(err)
	}
	alice := make(chan error, 1)
	go func() {
		cl, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: e.tcp, Conn: turn.NewSTUNConn(conn),
			Username: e.secrets.Issue("alice@example.test", time.Hour).Username,
			Password: e.secrets.Issue("alice@example.test", time.Hour).Password, Realm: "example.test", LoggerFactory: quietLoggers()})
		if err != nil {
			alice <- err
			return
		}
		defer cl.Close()
		if err := cl.Listen(); err != nil {
			alice <- err
			return
		}
		rc, err := cl.Allocate()
		if err == nil {
			rc.Close()
		}
		alice <- err
	}()
	select {
	case err := <-alice:
		t.Logf("alice's Allocate: %v", err)
		if err != nil {
			t.Errorf("alice's Allocate failed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("alice's Allocate on the same TCP listener did not complete in 10 s: allocMu is held by mallory's connection")
	}
	_ = conn.Close()
	_ = c.Close()
	_ = e.relay.Close()
	for deadline := time.Now().Add(5 * time.Second); e.relay.Metrics().Allocations != 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	t.Logf("after Close: %+v", e.relay.Metrics())
}

// an allocation made over TCP outlives its connection; the user's quota
// leaks until the allocation's lifetime (up to an hour) ends.
func TestRelayTCPAllocationEndsWithItsConnection(t *testing.T) {
	e := newRelay(t, func(c *RelayConfig) { c.AllocationsPerUser = 2 })
	cred := e.secrets.Issue("alice@example.test", time.Hour)
	for i := range 3 {
		c, br, n := tcpNonce(t, e.tcp)
		_, _ = c.Write(buildReq(stun.MethodAllocate, &cred, n, udpTransportAttr, stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0x0e, 0x0f}}))
		m := readStun(t, br, c)
		var code stun.ErrorCodeAttribute
		_ = code.GetFrom(m)
		t.Logf("connection %d: %v %v; active allocations %d", i, m.Type, code.Code, e.relay.Metrics().Allocations)
		if i == 2 && m.Type.Class != stun.ClassSuccessResponse {
			t.Errorf("third connection (the first two closed) refused: %v %d", m.Type, code.Code)
		}
		_ = c.Close()
		time.Sleep(200 * time.Millisecond)
	}
}

// after EdgeRelay.Close, an already accepted TCP connection still
// allocates relay ports.
func TestRelayClosesAcceptedConnections(t *testing.T) {
	e := newRelay(t)
	cred := e.secrets.Issue("alice@example.test", time.Hour)
	c, br, n := tcpNonce(t, e.tcp)
	_ = e.relay.Close()
	time.Sleep(100 * time.Millisecond)
	_, _ = c.Write(buildReq(stun.MethodAllocate, &cred, n, udpTransportAttr))
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if f, err := readFrame(br); err == nil {
		m := &stun.Message{Raw: f}
		if m.Decode() == nil && m.Type.Class == stun.ClassSuccessResponse {
			t.Errorf("relay allocated after Close")
		}
	}
	if a := e.relay.Metrics().Allocations; a != 0 {
		t.Errorf("%d allocations after Close", a)
	}
	_ = c.Close()
}

// a captured Allocate replayed from other addresses creates
// allocations charged to the victim; the victim then gets 486.
func TestRelayDropsReplayedAllocates(t *testing.T) {
	e := newRelay(t, func(c *RelayConfig) { c.AllocationsPerUser = 3 })
	cred := e.secrets.Issue("alice@example.test", time.Hour)
	server, _ := net.ResolveUDPAddr("udp4", e.udp)
	victim, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer victim.Close()
	read := func(c net.PacketConn) *stun.Message {
		buf := make([]byte, 1500)
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return nil
		}
		m := &stun.Message{Raw: buf[:n]}
		if m.Decode() != nil {
			return nil
		}
		return m
	}
	_, _ = victim.WriteTo(buildReq(stun.MethodAllocate, nil, "", udpTransportAttr), server)
	var nonce stun.Nonce
	_ = nonce.GetFrom(read(victim))
	// The victim's Allocate, seen on the wire.
	captured := buildReq(stun.MethodAllocate, &cred, nonce.String(), udpTransportAttr)
	_, _ = victim.WriteTo(captured, server)
	if m := read(victim); m == nil || m.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("victim's Allocate: %v", m)
	}
	for range 3 {
		attacker, _ := net.ListenPacket("udp4", "127.0.0.1:0")
		defer attacker.Close()
		_, _ = attacker.WriteTo(captured, server)
		if m := read(attacker); m != nil {
			t.Errorf("replay from %s answered: %v", attacker.LocalAddr(), m.Type)
		}
	}
	if mt := e.relay.Metrics(); mt.Replays != 3 || mt.AllocationsTotal != 1 {
		t.Errorf("metrics %+v", mt)
	}
	// The victim's retransmission from its own 5-tuple is still answered.
	_, _ = victim.WriteTo(captured, server)
	if m := read(victim); m == nil {
		t.Error("the victim's retransmission went unanswered")
	}
}

// unsolicited datagrams from hosts without a permission consume the
// allocation's inbound budget: the permitted peer's media is dropped.
func TestRelayStrangersDoNotUseAnAllocationsBandwidth(t *testing.T) {
	e := newRelay(t, func(c *RelayConfig) {
		c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.Bandwidth = 50_000
	})
	peer, _ := echoPeer(t)
	relayConn, err := allocate(t, e.client(e.secrets.Issue("alice@example.test", time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = relayConn.WriteTo([]byte("x"), peer) // permission for 127.0.0.1
	time.Sleep(200 * time.Millisecond)
	_ = relayConn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, _, _ = relayConn.ReadFrom(make([]byte, 1500))
	// 127.0.0.2 has no permission: pion would discard its packets anyway.
	attacker, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Skip(err)
	}
	defer attacker.Close()
	stop := make(chan struct{})
	go func() {
		b := make([]byte, 200)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = attacker.WriteTo(b, relayConn.LocalAddr())
			if time.Now().UnixNano()%4 == 0 {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	before := e.relay.Metrics().PacketsOverLimit
	pc, _ := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, relayConn.LocalAddr().(*net.UDPAddr))
	defer pc.Close()
	got := 0
	for range 20 {
		_, _ = pc.Write(make([]byte, 1000))
		_ = relayConn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, _, err := relayConn.ReadFrom(make([]byte, 1500)); err == nil && n == 1000 {
			got++
		}
	}
	close(stop)
	t.Logf("permitted peer's packets delivered: %d/20; PacketsOverLimit +%d", got, e.relay.Metrics().PacketsOverLimit-before)
	if got < 15 {
		t.Errorf("an unpermitted host's flood starved the permitted peer: %d/20 delivered", got)
	}
}

// a peer's datagram over 1600 bytes reaches the client truncated.
func TestRelayDropsOversizedPeerDatagrams(t *testing.T) {
	e := newRelay(t, func(c *RelayConfig) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	peer, _ := echoPeer(t)
	relayConn, err := allocate(t, e.client(e.secrets.Issue("alice@example.test", time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = relayConn.WriteTo([]byte("x"), peer)
	time.Sleep(100 * time.Millisecond)
	_ = relayConn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, _, _ = relayConn.ReadFrom(make([]byte, 3000))
	pc, _ := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, relayConn.LocalAddr().(*net.UDPAddr))
	defer pc.Close()
	_, _ = pc.Write(make([]byte, 2000))
	_ = relayConn.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err := relayConn.ReadFrom(make([]byte, 3000))
	t.Logf("2000-byte datagram from the peer reached the client as %d bytes (%v)", n, err)
	if err == nil {
		t.Errorf("an oversized datagram was relayed (%d bytes)", n)
	}
}

// setterFunc adapts a function to stun.Setter.
type setterFunc func(*stun.Message) error

func (f setterFunc) AddTo(m *stun.Message) error { return f(m) }
