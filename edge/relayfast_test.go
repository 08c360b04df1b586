package edge

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/pion/stun"
	"golang.org/x/net/ipv4"
)

// The fast path (relayfast.go): what it relays, what it leaves to pion,
// and that it allocates nothing.

var loopback = netip.MustParseAddr("127.0.0.1")

// fastEnv is a relay allowing loopback peers, a client's UDP allocation
// and a peer socket on loopback.
type fastEnv struct {
	*relayEnv
	s    *relaySession
	peer *net.UDPConn
}

func newFastEnv(t *testing.T) *fastEnv {
	e := newRelay(t, func(c *RelayConfig) {
		c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.Close() })
	return &fastEnv{relayEnv: e, s: e.udpSession("alice"), peer: peer}
}

func (f *fastEnv) peerPort() int { return f.peer.LocalAddr().(*net.UDPAddr).Port }

// bind binds channel 0x40nn to the peer socket.
func (f *fastEnv) bind(n byte) {
	f.t.Helper()
	m := f.s.ask(buildReq(stun.MethodChannelBind, &f.s.cred, f.s.nonce, channelAttr(n), peerAttr(loopback, f.peerPort())))
	if m.Type.Class != stun.ClassSuccessResponse {
		f.t.Fatalf("ChannelBind: %v (%d)", m.Type, errorCode(m))
	}
}

// fast returns the fast path's copy of the session's allocation.
func (f *fastEnv) fast() *fastAlloc {
	f.t.Helper()
	r := f.relay
	r.mu.Lock()
	defer r.mu.Unlock()
	rc := r.relays["udp|"+f.s.conn.LocalAddr().String()]
	if rc == nil || rc.fast == nil {
		f.t.Fatal("the allocation has no fast path")
	}
	return rc.fast
}

func channelData(n uint16, payload []byte) []byte {
	b := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint16(b[0:2], n)
	binary.BigEndian.PutUint16(b[2:4], uint16(len(payload)))
	copy(b[4:], payload)
	return b
}

// receives reads one datagram from c within d, or returns nil.
func receives(c net.PacketConn, d time.Duration) []byte {
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// TestRelayFastPathRelaysChannelDataBothWays: once pion has answered a
// ChannelBind, the fast path holds the binding, and ChannelData reaches
// the bound peer and the peer's answer comes back as ChannelData on the
// channel, both counted.
func TestRelayFastPathRelaysChannelDataBothWays(t *testing.T) {
	f := newFastEnv(t)
	f.bind(1)
	if _, ok := f.fast().peerOf(0x4001, relayNow()); !ok {
		t.Fatal("the fast path did not learn the channel pion bound")
	}
	payload := []byte("hello, peer: seventeen")
	if _, err := f.s.conn.WriteTo(channelData(0x4001, payload), f.s.server); err != nil {
		t.Fatal(err)
	}
	got, from, err := readFrom(f.peer)
	if err != nil || string(got) != string(payload) {
		t.Fatalf("peer got %q (%v), want %q", got, err, payload)
	}
	if _, err := f.peer.WriteToUDPAddrPort([]byte("and back"), from); err != nil {
		t.Fatal(err)
	}
	back := receives(f.s.conn, 3*time.Second)
	if len(back) < 4 || binary.BigEndian.Uint16(back) != 0x4001 || binary.BigEndian.Uint16(back[2:]) != 8 ||
		string(back[4:12]) != "and back" || len(back)%4 != 0 {
		t.Fatalf("client got %x, want ChannelData 0x4001 carrying %q padded to 4 bytes", back, "and back")
	}
	if m := f.relay.Metrics(); m.BytesToPeers != int64(len(payload)) || m.BytesFromPeers != 8 {
		t.Fatalf("metrics %+v: want %d bytes to peers and 8 from them", m, len(payload))
	}
}

func readFrom(c *net.UDPConn) ([]byte, netip.AddrPort, error) {
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	return buf[:n], from, err
}

// TestRelayFastPathRelaysWithoutAllocating: a round trip through the
// relay, ChannelData from the client to its peer and back, costs the
// whole process (relay and test) no allocation.
func TestRelayFastPathRelaysWithoutAllocating(t *testing.T) {
	f := newFastEnv(t)
	f.bind(2)
	client := f.s.conn.(*net.UDPConn)
	server := f.s.server.(*net.UDPAddr).AddrPort()
	frame := channelData(0x4002, make([]byte, 160))
	buf := make([]byte, 2048)
	_ = f.peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := client.WriteToUDPAddrPort(frame, server); err != nil {
			t.Fatal(err)
		}
		n, from, err := f.peer.ReadFromUDPAddrPort(buf)
		if err != nil || n != 160 {
			t.Fatalf("peer read %d bytes, %v", n, err)
		}
		if _, err := f.peer.WriteToUDPAddrPort(buf[:n], from); err != nil {
			t.Fatal(err)
		}
		if n, _, err := client.ReadFromUDPAddrPort(buf); err != nil || n != 4+160 {
			t.Fatalf("client read %d bytes, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round trip through the relay, want 0", allocs)
	}
}

// TestRelayFastPathRelaysSendIndications: a Send indication toward a
// peer with a permission reaches it; one toward a peer without a
// permission does not (neither the fast path nor pion relays it).
func TestRelayFastPathRelaysSendIndications(t *testing.T) {
	f := newFastEnv(t)
	if m := f.s.ask(buildReq(stun.MethodCreatePermission, &f.s.cred, f.s.nonce, peerAttr(loopback, f.peerPort()))); m.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("CreatePermission: %v (%d)", m.Type, errorCode(m))
	}
	if !f.fast().permitted(loopback, relayNow()) {
		t.Fatal("the fast path did not learn the permission pion granted")
	}
	send := func(to netip.Addr, port int, data string) {
		raw := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
			peerAttr(to, port), stun.RawAttribute{Type: stun.AttrData, Value: []byte(data)}).Raw
		frame := append([]byte(nil), raw...)
		peer, payload, ok := parseSend(frame)
		if !ok || peer != netip.AddrPortFrom(to, uint16(port)) || string(payload) != data {
			t.Fatalf("parseSend: %v %q %v", peer, payload, ok)
		}
		if _, err := f.s.conn.WriteTo(frame, f.s.server); err != nil {
			t.Fatal(err)
		}
	}
	send(loopback, f.peerPort(), "permitted")
	if got := receives(f.peer, 3*time.Second); string(got) != "permitted" {
		t.Fatalf("peer got %q, want %q", got, "permitted")
	}
	other := netip.MustParseAddr("127.0.0.2")
	if f.fast().permitted(other, relayNow()) {
		t.Fatal("a peer without a permission is permitted")
	}
	o, err := net.ListenUDP("udp4", &net.UDPAddr{IP: other.AsSlice()})
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	defer o.Close()
	send(other, o.LocalAddr().(*net.UDPAddr).Port, "refused")
	if got := receives(o, 300*time.Millisecond); got != nil {
		t.Fatalf("a peer without a permission got %q", got)
	}
}

// TestRelayFastPathRefusesWhatPionDidNotGrant: ChannelData on an unbound
// channel, from another 5-tuple, or toward a binding refused by the peer
// filter or by pion (a channel bound to another peer) reaches nobody,
// and the fast path holds only what pion granted.
func TestRelayFastPathRefusesWhatPionDidNotGrant(t *testing.T) {
	f := newFastEnv(t)
	f.bind(3)
	// A binding the peer filter refuses: 403, nothing learned.
	if m := f.s.ask(buildReq(stun.MethodChannelBind, &f.s.cred, f.s.nonce, channelAttr(4),
		peerAttr(netip.MustParseAddr("10.1.2.3"), 9))); m.Type.Class != stun.ClassErrorResponse {
		t.Fatalf("ChannelBind toward 10.1.2.3: %v, want an error", m.Type)
	}
	// The same channel toward another peer: pion answers 400.
	if m := f.s.ask(buildReq(stun.MethodChannelBind, &f.s.cred, f.s.nonce, channelAttr(3),
		peerAttr(loopback, f.peerPort()+1))); m.Type.Class != stun.ClassErrorResponse {
		t.Fatalf("rebinding channel 0x4003: %v, want an error", m.Type)
	}
	fa := f.fast()
	now := relayNow()
	if _, ok := fa.peerOf(0x4004, now); ok {
		t.Fatal("the fast path holds a binding the peer filter refused")
	}
	if p, ok := fa.peerOf(0x4003, now); !ok || p.Port() != uint16(f.peerPort()) {
		t.Fatalf("channel 0x4003 is bound to %v (%v) in the fast path, want the first peer", p, ok)
	}
	// Unbound channel.
	_, _ = f.s.conn.WriteTo(channelData(0x4005, []byte("unbound")), f.s.server)
	// Another 5-tuple: a client without the allocation, same channel.
	stranger, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	_, _ = stranger.WriteTo(channelData(0x4003, []byte("stranger")), f.s.server)
	if got := receives(f.peer, 300*time.Millisecond); got != nil {
		t.Fatalf("peer got %q", got)
	}
	// The bound channel still works.
	_, _ = f.s.conn.WriteTo(channelData(0x4003, []byte("bound")), f.s.server)
	if got := receives(f.peer, 3*time.Second); string(got) != "bound" {
		t.Fatalf("peer got %q, want %q", got, "bound")
	}
}

// TestRelayFastPathLeavesExpiringGrantsToPion: a binding or permission
// whose copy has expired, or is within fastExpiryMargin of it, is not
// relayed by the fast path (pion decides), and a refresh racing the
// expiry drops the copy.
func TestRelayFastPathLeavesExpiringGrantsToPion(t *testing.T) {
	f := newFastEnv(t)
	f.bind(6)
	fa := f.fast()
	src := f.s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	frame := channelData(0x4006, []byte("x"))
	if !relays(fa.g, frame, src) {
		t.Fatal("the fast path refused a live binding")
	}
	if relays(fa.g, frame, netip.AddrPortFrom(src.Addr(), src.Port()+1)) {
		t.Fatal("the fast path relayed ChannelData from another 5-tuple")
	}
	now := relayNow()
	set := func(chExp, permExp int64) {
		fa.mu.Lock()
		c := fa.channels[0x4006]
		c.expires = chExp
		fa.channels[0x4006] = c
		fa.perms[loopback] = permExp
		fa.mu.Unlock()
	}
	far := now + int64(time.Hour)
	for name, exp := range map[string][2]int64{
		"binding expired":         {now - 1, far},
		"binding expiring":        {now + int64(fastExpiryMargin)/2, far},
		"permission expired":      {far, now - 1},
		"permission about to end": {far, now + int64(fastExpiryMargin)/2},
	} {
		set(exp[0], exp[1])
		if relays(fa.g, frame, src) {
			t.Errorf("%s: the fast path relayed it", name)
		}
		if _, ok := fa.channelOf(netip.AddrPortFrom(loopback, uint16(f.peerPort())), relayNow()); ok {
			t.Errorf("%s: the fast path would relay the peer's datagrams", name)
		}
	}
	// A refresh read when the copy is about to expire drops it.
	set(now+int64(fastExpiryMargin)/2, now+int64(fastExpiryMargin)/2)
	fa.commit(&fastGrant{fa: fa, method: stun.MethodChannelBind, channel: 0x4006,
		peers: []netip.AddrPort{netip.AddrPortFrom(loopback, uint16(f.peerPort()))}, at: now})
	fa.mu.RLock()
	_, ch := fa.channels[0x4006]
	_, perm := fa.perms[loopback]
	fa.mu.RUnlock()
	if ch || perm {
		t.Fatalf("a refresh racing the expiry kept the copy (channel %v, permission %v)", ch, perm)
	}
	// pion's next refresh, well after, is learned again.
	f.bind(6)
	if !relays(fa.g, frame, src) {
		t.Fatal("the fast path did not learn the binding again")
	}
}

// TestRelayFastPathEndsWithTheAllocation: a Refresh of 0 ends the
// allocation and the fast path's copy with it.
func TestRelayFastPathEndsWithTheAllocation(t *testing.T) {
	f := newFastEnv(t)
	f.bind(7)
	fa := f.fast()
	src := f.s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if m := f.s.ask(buildReq(stun.MethodRefresh, &f.s.cred, f.s.nonce,
		stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}})); m.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Refresh 0: %v (%d)", m.Type, errorCode(m))
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		fa.g.fmu.RLock()
		_, held := fa.g.fast[src]
		fa.g.fmu.RUnlock()
		if !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fast path still holds the allocation pion deleted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if relays(fa.g, channelData(0x4007, []byte("x")), src) {
		t.Fatal("the fast path relayed for a deleted allocation")
	}
}

// TestRelayFastPathBatchesBursts: a burst of ChannelData each way is
// relayed whole and in order, read in batches of more than one datagram
// by the listener and by the relay socket (recvmmsg, on Linux), and
// written to peers and client in batches.
//
// Each burst is written in one call (sendmmsg, on Linux) so that it is
// queued faster than a reader takes it; even so a reader that wakes
// quickly can take a burst one datagram at a time (stop 33's CI, with
// single writes), so up to five bursts are sent before batching is
// judged absent.
func TestRelayFastPathBatchesBursts(t *testing.T) {
	f := newFastEnv(t)
	f.bind(8)
	const burst = 200
	// The first datagram from the peer turns the relay socket's batching on.
	_, _ = f.s.conn.WriteTo(channelData(0x4008, []byte{0, 0}), f.s.server)
	_, from, err := readFrom(f.peer)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.peer.WriteToUDPAddrPort([]byte{0, 0}, from)
	if receives(f.s.conn, 3*time.Second) == nil {
		t.Fatal("no answer from the peer")
	}
	fa := f.fast()
	if fa.g.rb == nil {
		t.Skip("no batched reads on this platform")
	}
	toPeer := make([]ipv4.Message, burst)
	toClient := make([]ipv4.Message, burst)
	for i := range burst {
		toPeer[i] = ipv4.Message{Buffers: [][]byte{channelData(0x4008, []byte{byte(i >> 8), byte(i)})}, Addr: f.s.server}
		toClient[i] = ipv4.Message{Buffers: [][]byte{{byte(i >> 8), byte(i)}}, Addr: net.UDPAddrFromAddrPort(from)}
	}
	client, peer := ipv4.NewPacketConn(f.s.conn), ipv4.NewPacketConn(f.peer)
	for round := 0; round < 5; round++ {
		writeAll(t, client, toPeer)
		for i := range burst {
			got, _, err := readFrom(f.peer)
			if err != nil || len(got) != 2 || int(got[0])<<8|int(got[1]) != i {
				t.Fatalf("peer's datagram %d: %x (%v)", i, got, err)
			}
		}
		writeAll(t, peer, toClient)
		for i := range burst {
			got := receives(f.s.conn, 3*time.Second)
			if len(got) != 8 || binary.BigEndian.Uint16(got) != 0x4008 || int(got[4])<<8|int(got[5]) != i {
				t.Fatalf("client's datagram %d: %x", i, got)
			}
		}
		if rb := fa.batching.Load(); fa.g.rb.largest() >= 2 && rb != nil && rb.largest() >= 2 {
			return
		}
	}
	if fa.g.rb.largest() < 2 {
		t.Errorf("the listener read at most %d datagram a call during 5 bursts of %d", fa.g.rb.largest(), burst)
	}
	if rb := fa.batching.Load(); rb == nil || rb.largest() < 2 {
		t.Errorf("the relay socket did not read 5 bursts of %d in batches", burst)
	}
}

// writeAll writes ms, in as few calls as the platform allows.
func writeAll(t *testing.T, c *ipv4.PacketConn, ms []ipv4.Message) {
	t.Helper()
	for len(ms) > 0 {
		n, err := c.WriteBatch(ms, 0)
		if err != nil {
			t.Fatal(err)
		}
		ms = ms[n:]
	}
}

// relays reports whether the fast path would relay b from src (what
// relayFast does, without sending: relayFast belongs to the listener's
// goroutine).
func relays(g *packetGuard, b []byte, src netip.AddrPort) bool {
	_, _, _, ok := g.route(b, src)
	return ok
}

// TestRelayFastPathOnDualStackRelaySockets: with relay sockets bound to
// "::" (IPv4 peers read as mapped addresses), a peer's datagrams still
// take the fast path to the client.
func TestRelayFastPathOnDualStackRelaySockets(t *testing.T) {
	probe, err := net.ListenPacket("udp", "[::]:0")
	if err != nil {
		t.Skipf("no dual-stack UDP here: %v", err)
	}
	_ = probe.Close()
	e := newRelay(t, func(c *RelayConfig) {
		c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.RelayBind = "::"
	})
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	f := &fastEnv{relayEnv: e, s: e.udpSession("alice"), peer: peer}
	f.bind(9)
	_, _ = f.s.conn.WriteTo(channelData(0x4009, []byte("ping")), f.s.server)
	got, from, err := readFrom(peer)
	if err != nil || string(got) != "ping" {
		t.Fatalf("peer got %q (%v)", got, err)
	}
	_, _ = peer.WriteToUDPAddrPort([]byte("pong"), from)
	back := receives(f.s.conn, 3*time.Second)
	if len(back) < 8 || binary.BigEndian.Uint16(back) != 0x4009 || string(back[4:8]) != "pong" {
		t.Fatalf("client got %x", back)
	}
	if runtime.GOOS == "linux" && f.fast().batching.Load() == nil {
		t.Fatal("the peer's datagram went through pion, not the fast path")
	}
}
