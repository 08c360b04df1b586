package edge

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun"
	"github.com/pion/turn/v2"
)

func freeTCPPort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return uint16(p)
}

// Two TCP allocations must never share a relayed transport address. The
// listener sets SO_REUSEPORT, so a second listen on a port another
// allocation already listens on succeeds: with a one-port range both
// allocations get the same relayed address, and the kernel spreads the
// peers' connections between the two users' listeners.
func TestTCPAllocationsDoNotShareARelayedPort(t *testing.T) {
	port := freeTCPPort(t)
	e := newRelay(t, loopbackPeers, func(c *RelayConfig) { c.PortMin, c.PortMax = port, port })
	alice, err := e.tcpClient(e.secrets.Issue("alice@example.test", time.Hour)).AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, alice)
	bob, err := e.tcpClient(e.secrets.Issue("bob@example.test", time.Hour)).AllocateTCP()
	if err == nil {
		closeAtEnd(t, bob)
		t.Fatalf("alice's relayed address %v and bob's %v: the same port given to two users' allocations", alice.Addr(), bob.Addr())
	}
}

// The consequence: bob, sharing alice's relayed port, with a permission for
// the peer, receives the peer connections meant for alice.
func TestTCPRelayPeerConnectionsReachOnlyTheirAllocation(t *testing.T) {
	port := freeTCPPort(t)
	e := newRelay(t, loopbackPeers, func(c *RelayConfig) { c.PortMin, c.PortMax = port, port })
	ac, _ := e.tcpClientConn(e.secrets.Issue("alice@example.test", time.Hour))
	alice, err := ac.AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, alice)
	bc, _ := e.tcpClientConn(e.secrets.Issue("bob@example.test", time.Hour))
	bob, err := bc.AllocateTCP()
	if err != nil {
		t.Skipf("no shared port: %v", err)
	}
	closeAtEnd(t, bob)
	if err := bc.CreatePermission(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}); err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 1)
	go func() {
		_ = bob.SetDeadline(time.Now().Add(5 * time.Second))
		if c, err := bob.AcceptTCPWithConn(e.dataConn()); err == nil {
			_ = c.Close()
			got <- struct{}{}
		}
	}()
	// A peer of alice's connects to alice's relayed address, a few times.
	for i := 0; i < 16; i++ {
		c, err := net.Dial("tcp4", alice.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	select {
	case <-got:
		t.Fatalf("bob's allocation accepted a connection made to alice's relayed address %v", alice.Addr())
	case <-time.After(3 * time.Second):
	}
}

// A peer that sends without end.
func floodPeer(t *testing.T) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr)
}

func (e *relayEnv) acceptedConns() int {
	g := e.relay.streams[0]
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Deleting a TCP allocation (its control connection closes) must close its
// client data connections. A data connection whose client does not read
// stays open: pc.close closes only the peer side, the copy toward the
// client is blocked in Write, the copy from it in Read.
func TestTCPRelayDataConnectionEndsWithItsAllocation(t *testing.T) {
	e := newRelay(t, loopbackPeers, func(c *RelayConfig) { c.Bandwidth = 1 << 30 })
	c, control := e.tcpClientConn(e.secrets.Issue("alice@example.test", time.Hour))
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, alloc)
	data, err := alloc.DialTCPWithConn(e.dataConn(), "tcp4", floodPeer(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = data
	time.Sleep(500 * time.Millisecond) // the relay's write toward the client blocks
	_ = control.Close()
	waitUntil(t, func() bool { m := e.relay.Metrics(); return m.Allocations == 0 && m.TCPConnections == 0 })
	time.Sleep(time.Second)
	if n := e.acceptedConns(); n != 0 {
		t.Fatalf("%d client connection(s) still open on the relay after the allocation was deleted", n)
	}
}

// RFC 6062 section 5.4: a ConnectionBind on a connection that is a
// control connection (holds an allocation) is answered 400; the relay only
// checks for TCP allocations, so a connection holding a UDP allocation
// becomes a data connection, pion's Data indications then interleaved with
// the relayed byte stream.
func TestTCPRelayConnectionBindOnAUDPAllocationsConnection(t *testing.T) {
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
	c := e.dataConn()
	br := bufio.NewReader(c)
	if res := authedRequest(t, c, br, alice, stun.MethodAllocate, udpTransportAttr); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("UDP Allocate over TCP: %v %d", res.Type, errorCode(res))
	}
	v := make([]byte, 4)
	binary.BigEndian.PutUint32(v, uint32(cid))
	res := authedRequest(t, c, br, alice, methodConnectionBind, stun.RawAttribute{Type: stun.AttrConnectionID, Value: v})
	if errorCode(res) != 400 {
		t.Fatalf("ConnectionBind on a connection holding a UDP allocation: %v %d, want 400", res.Type, errorCode(res))
	}
}

// RFC 8656 section 7.3: a Refresh asking for less than the default
// lifetime gets the default lifetime.
func TestTCPRelayRefreshLifetimeAtLeastTheDefault(t *testing.T) {
	e := newRelay(t)
	alice := e.secrets.Issue("alice@example.test", time.Hour)
	c := e.dataConn()
	br := bufio.NewReader(c)
	if res := authedRequest(t, c, br, alice, stun.MethodAllocate, tcpTransportAttr); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Allocate: %v %d", res.Type, errorCode(res))
	}
	res := authedRequest(t, c, br, alice, stun.MethodRefresh, lifetimeAttr(30*time.Second))
	v, err := res.Get(stun.AttrLifetime)
	if err != nil || len(v) != 4 || time.Duration(binary.BigEndian.Uint32(v))*time.Second < tcpDefaultLifetime {
		t.Fatalf("Refresh for 30 s: %v %d, lifetime %x (%v), want at least %v", res.Type, errorCode(res), v, err, tcpDefaultLifetime)
	}
}

func (e *relayEnv) perUserTotal() int {
	e.relay.mu.Lock()
	defer e.relay.mu.Unlock()
	n := 0
	for _, v := range e.relay.perUser {
		n += v
	}
	return n + len(e.relay.owner)
}

func TestTCPRelayQuotaOnFailurePaths(t *testing.T) {
	port := freeTCPPort(t)
	busy, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	e := newRelay(t, loopbackPeers, func(c *RelayConfig) { c.PortMin, c.PortMax = port, port; c.AllocationsPerUser = 1 })
	alice := e.secrets.Issue("alice@example.test", time.Hour)

	// listen failure: 508, nothing kept
	c := e.dataConn()
	br := bufio.NewReader(c)
	if res := authedRequest(t, c, br, alice, stun.MethodAllocate, tcpTransportAttr); errorCode(res) != 508 {
		t.Fatalf("Allocate on a busy port: %v %d", res.Type, errorCode(res))
	}
	if n := e.perUserTotal(); n != 0 || e.relay.Metrics().Allocations != 0 {
		t.Fatalf("after a listen failure: quota %d, metrics %+v", n, e.relay.Metrics())
	}
	// bad attribute: 400
	if res := authedRequest(t, c, br, alice, stun.MethodAllocate, tcpTransportAttr, stun.RawAttribute{Type: stun.AttrDontFragment}); errorCode(res) != 400 {
		t.Fatalf("DONT-FRAGMENT: %v %d", res.Type, errorCode(res))
	}
	if n := e.perUserTotal(); n != 0 {
		t.Fatalf("after a 400: quota %d", n)
	}
	_ = busy.Close()

	// retransmission: one allocation
	c2 := e.dataConn()
	br2 := bufio.NewReader(c2)
	_, _ = c2.Write(buildReq(stun.MethodAllocate, nil, "", tcpTransportAttr))
	var nonce stun.Nonce
	if err := nonce.GetFrom(readStun(t, br2, c2)); err != nil {
		t.Fatal(err)
	}
	req := buildReq(stun.MethodAllocate, &alice, nonce.String(), tcpTransportAttr)
	_, _ = c2.Write(req)
	first := readStun(t, br2, c2)
	_, _ = c2.Write(req)
	second := readStun(t, br2, c2)
	if first.Type.Class != stun.ClassSuccessResponse || string(first.Raw) != string(second.Raw) {
		t.Fatalf("retransmission: %v then %v %d", first.Type, second.Type, errorCode(second))
	}
	if m := e.relay.Metrics(); m.Allocations != 1 {
		t.Fatalf("allocations %d", m.Allocations)
	}
	// 437 on a conn with a UDP allocation (quota 1 is used: 486 expected before 437? use a second user)
	bob := e.secrets.Issue("bob@example.test", time.Hour)
	c3 := e.dataConn()
	br3 := bufio.NewReader(c3)
	if res := authedRequest(t, c3, br3, bob, stun.MethodAllocate, udpTransportAttr); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("bob UDP over TCP: %v %d", res.Type, errorCode(res))
	}
	if res := authedRequest(t, c3, br3, bob, stun.MethodAllocate, tcpTransportAttr); errorCode(res) != 437 {
		t.Fatalf("bob TCP on a UDP allocation's connection: %v %d", res.Type, errorCode(res))
	}
	_ = c2.Close()
	_ = c3.Close()
	waitUntil(t, func() bool { return e.relay.Metrics().Allocations == 0 && e.perUserTotal() == 0 })
}

// a loopback listener whose accept queue is full: connecting to it hangs.
func blackholePeer(t *testing.T) *net.TCPAddr {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp4", addr.String(), 300*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	return addr
}

func TestTCPRelayCloseDuringConnectDialAndThrottledData(t *testing.T) {
	e := newRelay(t, loopbackPeers, func(c *RelayConfig) { c.Bandwidth = 1000 })
	alice := e.secrets.Issue("alice@example.test", time.Hour)
	alloc, err := e.tcpClient(alice).AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, alloc)
	data, err := alloc.DialTCPWithConn(e.dataConn(), "tcp4", floodPeer(t))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, data) }()
	go func() { _, _ = alloc.Connect(blackholePeer(t)) }()
	time.Sleep(time.Second)
	done := make(chan struct{})
	go func() { _ = e.relay.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("EdgeRelay.Close blocked with a Connect dialling and data throttled")
	}
	waitUntil(t, func() bool { m := e.relay.Metrics(); return m.Allocations == 0 && m.TCPConnections == 0 })
}

func TestTCPRelayPeerFilterAndLimits(t *testing.T) {
	e := newRelay(t) // loopback refused
	alice := e.secrets.Issue("alice@example.test", time.Hour)
	c := e.dataConn()
	br := bufio.NewReader(c)
	if res := authedRequest(t, c, br, alice, stun.MethodAllocate, tcpTransportAttr); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatal(errorCode(res))
	}
	peer, _ := tcpEchoPeer(t)
	for _, ip := range []string{"::ffff:127.0.0.1", "64:ff9b::7f00:1", "::127.0.0.1", "2002:7f00:1::1", "::ffff:10.0.0.1"} {
		a := netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(peer.Port))
		for _, m := range []stun.Method{methodConnect, stun.MethodCreatePermission} {
			if res := authedRequest(t, c, br, alice, m, xorAddress{stun.AttrXORPeerAddress, a}); errorCode(res) != 403 {
				t.Errorf("%v toward %v: %v %d, want 403", m, a, res.Type, errorCode(res))
			}
		}
	}
}

func TestTCPRelayConnectLimit(t *testing.T) {
	e := newRelay(t, loopbackPeers)
	alloc, err := e.tcpClient(e.secrets.Issue("alice@example.test", time.Hour)).AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, alloc)
	var peers []*net.TCPAddr
	for i := 0; i < tcpMaxPeerConns+1; i++ {
		p, _ := tcpEchoPeer(t)
		peers = append(peers, p)
	}
	for i, p := range peers {
		_, err := alloc.Connect(p)
		if i < tcpMaxPeerConns && err != nil {
			t.Fatalf("Connect %d: %v", i, err)
		}
		if i == tcpMaxPeerConns && err == nil {
			t.Fatalf("Connect %d allowed", i)
		}
	}
	if n := e.relay.Metrics().TCPConnections; n != tcpMaxPeerConns {
		t.Fatalf("TCPConnections %d", n)
	}
}

func TestTCPRelayConcurrentAllocationsRace(t *testing.T) {
	e := newRelay(t, loopbackPeers, func(c *RelayConfig) { c.AllocationsPerUser = 100 })
	peer, from := tcpEchoPeer(t)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-from:
			case <-stop:
				return
			}
		}
	}()
	done := make(chan struct{}, 6)
	for i := 0; i < 6; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			cred := e.secrets.Issue("alice@example.test", time.Hour)
			conn, err := net.Dial("tcp4", e.tcp)
			if err != nil {
				return
			}
			defer conn.Close()
			c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: e.tcp, Conn: turn.NewSTUNConn(conn), Username: cred.Username,
				Password: cred.Password, Realm: "example.test", LoggerFactory: quietLoggers(), RTO: e.rto})
			if err != nil {
				return
			}
			defer c.Close()
			if c.Listen() != nil {
				return
			}
			alloc, err := c.AllocateTCP()
			if err != nil {
				t.Error(err)
				return
			}
			for j := 0; j < 3; j++ {
				dc, err := net.Dial("tcp4", e.tcp)
				if err != nil {
					return
				}
				d, err := alloc.DialTCPWithConn(dc, "tcp4", peer)
				if err != nil {
					_ = dc.Close()
					continue
				}
				_, _ = d.Write([]byte("x"))
				_ = d.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, _ = d.Read(make([]byte, 1))
				_ = d.Close()
			}
			if j := len(done); j%2 == 0 {
				_ = alloc.Close() // Refresh(0)
				_ = conn.Close()
			} else {
				_ = conn.Close()  // the control connection goes first
				_ = alloc.Close() // stops the client's refresh timers
			}
		}()
	}
	for i := 0; i < 6; i++ {
		<-done
	}
	waitUntil(t, func() bool { m := e.relay.Metrics(); return m.Allocations == 0 && m.TCPConnections == 0 })
}

// The same with a peer that half-closes (sends, then FIN) and an idle
// client: the copy from the peer ended cleanly, the copy from the client
// waits in Read on a connection nothing closes.
func TestTCPRelayDataConnectionEndsWithItsAllocationAfterHalfClose(t *testing.T) {
	e := newRelay(t, loopbackPeers)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = c.Write([]byte("bye"))
		_ = c.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, c) // until the relay closes it
		_ = c.Close()
	}()
	c, control := e.tcpClientConn(e.secrets.Issue("alice@example.test", time.Hour))
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, alloc)
	data, err := alloc.DialTCPWithConn(e.dataConn(), "tcp4", ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	_ = data.SetReadDeadline(time.Now().Add(3 * time.Second))
	if b, err := io.ReadAll(data); string(b) != "bye" {
		t.Fatalf("read %q, %v", b, err)
	}
	_ = control.Close()
	waitUntil(t, func() bool { m := e.relay.Metrics(); return m.Allocations == 0 && m.TCPConnections == 0 })
	time.Sleep(time.Second)
	if n := e.acceptedConns(); n != 0 {
		t.Fatalf("%d client connection(s) still open on the relay after the allocation was deleted", n)
	}
}
