package edge

import (
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/pion/stun"
)

// TestListenUDPSharedSpreadsClients: two sockets on one address serve
// one relay; the kernel spreads 16 clients over both, and each client's
// allocation relays through the socket it was made on.
func TestListenUDPSharedSpreadsClients(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_REUSEPORT spreads datagrams on Linux only")
	}
	pcs, err := ListenUDPShared("udp4", "127.0.0.1:0", 2, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if pcs[0].LocalAddr().String() != pcs[1].LocalAddr().String() {
		t.Fatalf("sockets on %v and %v, want one address", pcs[0].LocalAddr(), pcs[1].LocalAddr())
	}
	e := newRelay(t, func(c *RelayConfig) {
		c.UDP = pcs
		c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.AllocationsPerUser = 32
	})
	e.udp = pcs[0].LocalAddr().String()
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	port := peer.LocalAddr().(*net.UDPAddr).Port
	guards := map[*packetGuard]int{}
	for i := range 16 {
		s := e.udpSession("alice")
		f := &fastEnv{relayEnv: e, s: s, peer: peer}
		if m := s.ask(buildReq(stun.MethodChannelBind, &s.cred, s.nonce, channelAttr(1), peerAttr(loopback, port))); m.Type.Class != stun.ClassSuccessResponse {
			t.Fatalf("client %d: ChannelBind: %v", i, m.Type)
		}
		guards[f.fast().g]++
		if _, err := s.conn.WriteTo(channelData(0x4001, []byte{byte(i)}), s.server); err != nil {
			t.Fatal(err)
		}
		if got, _, err := readFrom(peer); err != nil || len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("client %d: peer got %x (%v)", i, got, err)
		}
	}
	if len(guards) != 2 {
		t.Fatalf("16 clients' allocations on %d of the 2 sockets: %v", len(guards), guards)
	}
}

// TestListenUDPSharedValidates: n below 1 is refused, naming n.
func TestListenUDPSharedValidates(t *testing.T) {
	if _, err := ListenUDPShared("udp4", "127.0.0.1:0", 0, 0, 0); err == nil {
		t.Fatal("n 0 accepted")
	}
}
