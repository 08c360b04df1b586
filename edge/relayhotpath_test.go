package edge

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/pion/stun"
)

// The relay's per-datagram path: what the guards do for every relayed
// datagram must cost no allocation (the relay's CPU per relayed packet,
// measured beside coturn's in BENCHMARKS.md, depends on it).

// loopbackPair is a UDP socket and a peer connected to it.
func loopbackPair(t *testing.T) (*net.UDPConn, *net.UDPConn) {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	peer, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.Close() })
	return pc, peer
}

// TestRelayGuardPassesChannelDataAndIndicationsWithoutAllocating: the
// listener's guard hands ChannelData and Send indications to pion as
// they came, with their source address, and allocates nothing for them.
func TestRelayGuardPassesChannelDataAndIndicationsWithoutAllocating(t *testing.T) {
	pc, client := loopbackPair(t)
	g := &packetGuard{PacketConn: pc, r: &EdgeRelay{}}
	channelData := make([]byte, 4+160)
	binary.BigEndian.PutUint16(channelData[0:2], 0x4000)
	binary.BigEndian.PutUint16(channelData[2:4], 160)
	send := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		stun.RawAttribute{Type: stun.AttrData, Value: make([]byte, 160)}).Raw
	buf := make([]byte, 1600)
	for name, frame := range map[string][]byte{"ChannelData": channelData, "Send indication": send} {
		var n int
		var from net.Addr
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := client.Write(frame); err != nil {
				t.Fatal(err)
			}
			var err error
			if n, from, err = g.ReadFrom(buf); err != nil {
				t.Fatal(err)
			}
		})
		if n != len(frame) || string(buf[:n]) != string(frame) || from.String() != client.LocalAddr().String() {
			t.Fatalf("%s: got %d bytes from %v, want the %d sent from %v", name, n, from, len(frame), client.LocalAddr())
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per datagram through the guard, want 0", name, allocs)
		}
	}
}

// TestRelaySocketRelaysWithoutAllocating: an allocation's relay socket
// reads a permitted peer's datagram and writes one back to it, counting
// both and charging the bandwidth limit, with no allocation.
func TestRelaySocketRelaysWithoutAllocating(t *testing.T) {
	pc, peer := loopbackPair(t)
	r := &EdgeRelay{}
	rc := &relayConn{PacketConn: pc, r: r, in: newBucket(1 << 30), out: newBucket(1 << 30),
		peers: map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true}}
	payload := make([]byte, 160)
	buf, back := make([]byte, relayInboundMTU), make([]byte, 2048)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := peer.Write(payload); err != nil {
			t.Fatal(err)
		}
		n, from, err := rc.ReadFrom(buf)
		if err != nil || n != len(payload) {
			t.Fatalf("relay socket read %d bytes, %v", n, err)
		}
		if _, err := rc.WriteTo(buf[:n], from); err != nil {
			t.Fatal(err)
		}
		if n, err := peer.Read(back); err != nil || n != len(payload) {
			t.Fatalf("peer read %d bytes, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per datagram relayed each way, want 0", allocs)
	}
	if m := r.Metrics(); m.BytesFromPeers != 101*160 || m.BytesToPeers != 101*160 {
		t.Errorf("metrics %+v: want %d bytes counted each way", m, 101*160)
	}
}

// TestRelayAddrCacheStartsAfreshWhenFull: a sender spraying source
// addresses cannot grow the cache past maxCachedAddrs.
func TestRelayAddrCacheStartsAfreshWhenFull(t *testing.T) {
	pc, _ := loopbackPair(t)
	var c addrCache
	buf := make([]byte, 64)
	for i := range maxCachedAddrs + 10 {
		s, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() }) // open till the end: each its own port
		_, _ = s.Write([]byte("x"))
		_, from, err := c.readFrom(pc, buf)
		if err != nil || from.String() != s.LocalAddr().String() {
			t.Fatalf("datagram %d: from %v (%v), want %v", i, from, err, s.LocalAddr())
		}
		if len(c.m) > maxCachedAddrs {
			t.Fatalf("%d addresses cached", len(c.m))
		}
	}
	if len(c.m) != 10 {
		t.Fatalf("%d addresses cached after a fresh start, want 10", len(c.m))
	}
}
