package edge

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun"
)

// peerCases is the peer filter's table, by the sentence of DESIGN.md or
// the RFC each case checks; the fuzz target starts from it too.
var peerCases = []struct {
	addr   string
	permit bool
	why    string
}{
	{"8.8.8.8", true, "a public IPv4 peer"},
	{"2606:4700::1111", true, "a public IPv6 peer"},
	{"64:ff9b::808:808", true, "NAT64 of a public address"},
	{"2002:808:808::1", true, "6to4 of a public address"},
	{"0.0.0.0", false, "unspecified"},
	{"0.1.2.3", false, "this network, 0.0.0.0/8"},
	{"127.0.0.1", false, "loopback"},
	{"127.255.255.254", false, "loopback, 127/8"},
	{"10.0.0.1", false, "RFC 1918"},
	{"172.16.5.4", false, "RFC 1918"},
	{"192.168.0.1", false, "RFC 1918"},
	{"100.64.0.1", false, "shared address space (CGN)"},
	{"169.254.169.254", false, "link-local (cloud metadata)"},
	{"192.0.0.8", false, "IETF protocol assignments"},
	{"192.0.2.1", false, "documentation, TEST-NET-1"},
	{"198.51.100.7", false, "documentation, TEST-NET-2"},
	{"203.0.113.200", false, "documentation, TEST-NET-3"},
	{"198.18.0.1", false, "benchmarking"},
	{"192.88.99.1", false, "6to4 relay anycast"},
	{"224.0.0.1", false, "multicast"},
	{"239.255.255.250", false, "multicast (SSDP)"},
	{"240.0.0.1", false, "reserved, 240/4"},
	{"255.255.255.255", false, "limited broadcast"},
	{"::", false, "IPv6 unspecified"},
	{"::1", false, "IPv6 loopback"},
	{"fe80::1", false, "IPv6 link-local"},
	{"fd00::1", false, "unique local"},
	{"fec0::1", false, "site-local"},
	{"ff02::1", false, "IPv6 multicast"},
	{"100::1", false, "discard"},
	{"2001:db8::1", false, "IPv6 documentation"},
	{"3fff::1", false, "IPv6 documentation, RFC 9637"},
	{"2001:2::1", false, "IPv6 benchmarking"},
	{"::ffff:127.0.0.1", false, "IPv4-mapped loopback"},
	{"::ffff:10.0.0.1", false, "IPv4-mapped RFC 1918"},
	{"::7f00:1", false, "IPv4-compatible loopback"},
	{"::ffff:0:7f00:1", false, "IPv4-translated loopback (RFC 2765)"},
	{"::ffff:0:a9fe:a9fe", false, "IPv4-translated link-local (RFC 2765)"},
	{"::ffff:0:808:808", true, "IPv4-translated public address"},
	{"64:ff9b::7f00:1", false, "NAT64 of loopback"},
	{"64:ff9b::a9fe:a9fe", false, "NAT64 of link-local"},
	{"64:ff9b:1::808:808", false, "local-use NAT64"},
	{"2002:a00:1::1", false, "6to4 of RFC 1918"},
	{"2002:7f00:1::1", false, "6to4 of loopback"},
	{"2001:0:4136:e378:8000:63bf:f5ff:fffe", false, "Teredo of 10.0.0.1"},
	{"198.19.255.255", false, "benchmarking, upper half"},
	{"93.184.216.34", false, "the relay's configured address (own)"},
	{"::ffff:93.184.216.34", false, "the relay's own address, IPv4-mapped"},
	{"64:ff9b::5db8:d822", false, "the relay's own address through NAT64"},
}

// tableFilter is the filter the table describes: no allow-list, the
// relay's configured address 93.184.216.34.
func tableFilter() *peerFilter {
	return &peerFilter{own: []netip.Addr{netip.MustParseAddr("93.184.216.34")}}
}

func TestPeerFilter(t *testing.T) {
	f := tableFilter()
	for _, c := range peerCases {
		if got := f.permits(net.ParseIP(c.addr)); got != c.permit {
			t.Errorf("%s (%s): permits = %v, want %v", c.addr, c.why, got, c.permit)
		}
	}
	allowed := peerFilter{allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	if !allowed.permits(net.ParseIP("127.0.0.1")) || allowed.permits(net.ParseIP("10.0.0.1")) {
		t.Error("allow-list: loopback named, RFC 1918 not")
	}
	// An allow-list opens a range but never the relay's own address in it.
	lan := peerFilter{allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, own: []netip.Addr{netip.MustParseAddr("10.0.0.5")}}
	if !lan.permits(net.ParseIP("10.0.0.6")) || lan.permits(net.ParseIP("10.0.0.5")) || lan.permits(net.ParseIP("::ffff:10.0.0.5")) {
		t.Error("allow-list 10/8 with the relay on 10.0.0.5: want 10.0.0.6 permitted, 10.0.0.5 refused")
	}
}

// TestHostAddrsFollowTheInterfaces: the host's addresses are read again
// once they are older than the TTL, and a subnet's directed broadcast
// counts as the host's.
func TestHostAddrsFollowTheInterfaces(t *testing.T) {
	current := []net.Addr{&net.IPNet{IP: net.IPv4(8, 8, 4, 4).To4(), Mask: net.CIDRMask(24, 32)}}
	h := &hostAddrs{ttl: time.Hour, read: func() ([]net.Addr, error) { return current, nil }}
	if err := h.refresh(time.Now()); err != nil {
		t.Fatal(err)
	}
	f := peerFilter{host: h}
	for ip, want := range map[string]bool{"8.8.4.4": false, "8.8.4.255": false, "8.8.4.3": true, "::ffff:8.8.4.4": false} {
		if got := f.permits(net.ParseIP(ip)); got != want {
			t.Errorf("%s: permits = %v, want %v", ip, got, want)
		}
	}
	current = []net.Addr{&net.IPNet{IP: net.ParseIP("2606:4700::5"), Mask: net.CIDRMask(64, 128)}}
	h.ttl = 0 // the next check reads them again
	if !f.permits(net.ParseIP("8.8.4.4")) || f.permits(net.ParseIP("2606:4700::5")) {
		t.Error("after the host's address changed: want the old one permitted, the new one refused")
	}
}

// FuzzPeerFilter checks the classification on any address: it never
// panics, an IPv6 form carrying an IPv4 address is refused whenever the
// address itself is, and an allow-list never opens the relay's own
// address.
func FuzzPeerFilter(f *testing.F) {
	for _, c := range peerCases {
		f.Add(netip.MustParseAddr(c.addr).AsSlice())
	}
	f.Add([]byte{1, 2, 3})
	filter := tableFilter()
	own := netip.MustParseAddr("93.184.216.34")
	open := &peerFilter{allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, own: []netip.Addr{own}}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		got := filter.permits(net.IP(b))
		if !ok {
			if len(b) != 4 && len(b) != 16 && got {
				t.Fatalf("%x: not an address, permitted", b)
			}
			return
		}
		v4, carries := embeddedIPv4(a.Unmap())
		isOwn := a.Unmap() == own || carries && v4 == own
		if open.permits(a.AsSlice()) == isOwn {
			t.Fatalf("%v: allow-all filter permits = %v", a, !isOwn)
		}
		if !a.Is4() {
			return
		}
		if got {
			return
		}
		b4 := a.As4()
		for _, form := range []netip.Addr{
			netip.AddrFrom16(a.As16()), // mapped
			netip.AddrFrom16([16]byte{8: 0xff, 9: 0xff, 12: b4[0], 13: b4[1], 14: b4[2], 15: b4[3]}), // translated
			netip.AddrFrom16([16]byte{0: 0, 1: 0x64, 2: 0xff, 3: 0x9b, 12: b4[0], 13: b4[1], 14: b4[2], 15: b4[3]}),
			netip.AddrFrom16([16]byte{0: 0x20, 1: 0x02, 2: b4[0], 3: b4[1], 4: b4[2], 5: b4[3]}),
			netip.AddrFrom16([16]byte{0: 0x20, 1: 0x01, 12: ^b4[0], 13: ^b4[1], 14: ^b4[2], 15: ^b4[3]}),
		} {
			if filter.permits(form.AsSlice()) {
				t.Fatalf("%v refused but its IPv6 form %v permitted", a, form)
			}
		}
	})
}

// relaySession is a client speaking raw STUN to the relay over UDP, with
// an allocation.
type relaySession struct {
	t      *testing.T
	conn   net.PacketConn
	server net.Addr
	cred   Credential
	nonce  string
}

func (e *relayEnv) udpSession(user string) *relaySession {
	t := e.t
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	server, _ := net.ResolveUDPAddr("udp4", e.udp)
	s := &relaySession{t: t, conn: conn, server: server, cred: e.secrets.Issue(user, time.Hour)}
	var nonce stun.Nonce
	if err := nonce.GetFrom(s.ask(buildReq(stun.MethodAllocate, nil, "", udpTransportAttr))); err != nil {
		t.Fatalf("no nonce in the first Allocate's answer: %v", err)
	}
	s.nonce = nonce.String()
	if m := s.ask(buildReq(stun.MethodAllocate, &s.cred, s.nonce, udpTransportAttr)); m.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Allocate: %v (%d)", m.Type, errorCode(m))
	}
	t.Cleanup(func() {
		_, _ = conn.WriteTo(buildReq(stun.MethodRefresh, &s.cred, s.nonce, stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}), server)
	})
	return s
}

// ask sends raw and returns the answer.
func (s *relaySession) ask(raw []byte) *stun.Message {
	s.t.Helper()
	if _, err := s.conn.WriteTo(raw, s.server); err != nil {
		s.t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = s.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := s.conn.ReadFrom(buf)
	if err != nil {
		s.t.Fatalf("no answer: %v", err)
	}
	m := &stun.Message{Raw: buf[:n]}
	if err := m.Decode(); err != nil {
		s.t.Fatal(err)
	}
	return m
}

func peerAttr(ip netip.Addr, port int) stun.Setter {
	return setterFunc(func(m *stun.Message) error {
		return (&stun.XORMappedAddress{IP: ip.AsSlice(), Port: port}).AddToAs(m, stun.AttrXORPeerAddress)
	})
}

func channelAttr(n byte) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{0x40, n, 0, 0}}
}

// createPermission and channelBind ask for a permission toward peer.
func (s *relaySession) createPermission(peer netip.Addr) *stun.Message {
	s.t.Helper()
	return s.ask(buildReq(stun.MethodCreatePermission, &s.cred, s.nonce, peerAttr(peer, 9)))
}

func (s *relaySession) channelBind(peer netip.Addr, channel byte) *stun.Message {
	s.t.Helper()
	return s.ask(buildReq(stun.MethodChannelBind, &s.cred, s.nonce, channelAttr(channel), peerAttr(peer, 9)))
}

// hostAddress returns an address of one of this machine's interfaces
// other than loopback, and its subnet, or skips the test.
func hostAddress(t *testing.T) (netip.Addr, netip.Prefix) {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("reading this machine's interface addresses: %v", err)
	}
	var v6 *net.IPNet
	for _, x := range addrs {
		n, ok := x.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
			continue
		}
		if n.IP.To4() != nil {
			a, _ := netip.AddrFromSlice(n.IP.To4())
			ones, _ := n.Mask.Size()
			return a, netip.PrefixFrom(a, ones).Masked()
		}
		if v6 == nil {
			v6 = n
		}
	}
	if v6 != nil {
		a, _ := netip.AddrFromSlice(v6.IP)
		ones, _ := v6.Mask.Size()
		return a, netip.PrefixFrom(a, ones).Masked()
	}
	t.Skip("this machine has no interface address but loopback and link-local: no host address to try the relay against")
	return netip.Addr{}, netip.Prefix{}
}

// neighbour is another address of p than a, if p has one.
func neighbour(a netip.Addr, p netip.Prefix) (netip.Addr, bool) {
	for _, n := range []netip.Addr{a.Next(), a.Prev()} {
		// Not the subnet's network address nor its last (broadcast) one.
		if n.IsValid() && p.Contains(n) && n != p.Addr() && p.Contains(n.Next()) {
			return n, true
		}
	}
	return netip.Addr{}, false
}

// TestRelayRefusesTheHostsOwnAddresses (issue 25, item 1): with the relay
// on loopback and the subnet of one of the host's interfaces allowed
// (as one allows a LAN of media servers), a permission toward the host's
// own address on that interface is refused over UDP (CreatePermission,
// ChannelBind) and TCP (CreatePermission, Connect), while a neighbour on
// that subnet is permitted.
func TestRelayRefusesTheHostsOwnAddresses(t *testing.T) {
	host, subnet := hostAddress(t)
	t.Logf("host address %v on %v", host, subnet)
	e := newRelay(t, func(c *RelayConfig) { c.AllowPeers = []netip.Prefix{subnet} })
	s := e.udpSession("alice@example.test")
	if m := s.createPermission(host); m.Type.Class != stun.ClassErrorResponse {
		t.Errorf("CreatePermission toward the host's %v: %v", host, m.Type)
	}
	if m := s.channelBind(host, 1); m.Type.Class != stun.ClassErrorResponse {
		t.Errorf("ChannelBind toward the host's %v: %v", host, m.Type)
	}
	if n, ok := neighbour(host, subnet); ok {
		if m := s.createPermission(n); m.Type.Class != stun.ClassSuccessResponse {
			t.Errorf("CreatePermission toward %v, a neighbour on the allowed subnet: %v (%d)", n, m.Type, errorCode(m))
		}
	}

	c := e.tcpClient(e.secrets.Issue("bob@example.test", time.Hour))
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, alloc)
	peer := &net.TCPAddr{IP: host.AsSlice(), Port: 9}
	if err := c.CreatePermission(peer); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("TCP CreatePermission toward the host's %v: %v, want 403", host, err)
	}
	if _, err := alloc.Connect(peer); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("Connect toward the host's %v: %v, want 403", host, err)
	}
}

// TestRelayRefusesIPv4TranslatedPeers (issue 25, item 2): an
// IPv4-translated address (::ffff:0:a.b.c.d, RFC 2765) of a forbidden
// IPv4 address is refused like the other embedded forms.
func TestRelayRefusesIPv4TranslatedPeers(t *testing.T) {
	e := newRelay(t)
	s := e.udpSession("alice@example.test")
	for _, peer := range []string{"::ffff:0:7f00:1", "::ffff:0:a00:1", "::ffff:0:a9fe:a9fe"} {
		if m := s.createPermission(netip.MustParseAddr(peer)); m.Type.Class != stun.ClassErrorResponse {
			t.Errorf("CreatePermission toward %s: %v", peer, m.Type)
		}
		if m := s.channelBind(netip.MustParseAddr(peer), 2); m.Type.Class != stun.ClassErrorResponse {
			t.Errorf("ChannelBind toward %s: %v", peer, m.Type)
		}
	}
}

// TestRelayRefusesDocumentationRanges (issue 25, item 1): the IPv4
// documentation ranges are refused as 2001:db8::/32 is.
func TestRelayRefusesDocumentationRanges(t *testing.T) {
	e := newRelay(t)
	s := e.udpSession("alice@example.test")
	for _, peer := range []string{"192.0.2.1", "198.51.100.7", "203.0.113.200", "2001:db8::1"} {
		if m := s.createPermission(netip.MustParseAddr(peer)); m.Type.Class != stun.ClassErrorResponse {
			t.Errorf("CreatePermission toward %s: %v", peer, m.Type)
		}
	}
}

// TestRelayChannelBindRefusesInternalPeers: the peer filter holds for
// ChannelBind as for CreatePermission (pion's client only ever shows the
// latter).
func TestRelayChannelBindRefusesInternalPeers(t *testing.T) {
	e := newRelay(t)
	cred := e.secrets.Issue("alice@example.test", time.Hour)
	server, _ := net.ResolveUDPAddr("udp4", e.udp)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ask := func(raw []byte) *stun.Message {
		t.Helper()
		_, _ = conn.WriteTo(raw, server)
		buf := make([]byte, 1500)
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		m := &stun.Message{Raw: buf[:n]}
		if err := m.Decode(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	var nonce stun.Nonce
	_ = nonce.GetFrom(ask(buildReq(stun.MethodAllocate, nil, "", udpTransportAttr)))
	if m := ask(buildReq(stun.MethodAllocate, &cred, nonce.String(), udpTransportAttr)); m.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Allocate: %v", m)
	}
	for _, peer := range []string{"127.0.0.1", "10.0.0.1", "169.254.169.254"} {
		xor := &stun.XORMappedAddress{IP: net.ParseIP(peer), Port: 9}
		peerAttr := func(m *stun.Message) error { return xor.AddToAs(m, stun.AttrXORPeerAddress) }
		channel := stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{0x40, 0x01, 0, 0}}
		m := ask(buildReq(stun.MethodChannelBind, &cred, nonce.String(), channel, setterFunc(peerAttr)))
		if errorCode(m) != 403 {
			t.Errorf("ChannelBind to %s: %v %d, want 403", peer, m.Type, errorCode(m))
		}
	}
	if mt := e.relay.Metrics(); mt.PeersRefused != 3 || mt.Permissions != 0 {
		t.Errorf("metrics %+v", mt)
	}
	_ = ask(buildReq(stun.MethodRefresh, &cred, nonce.String(), stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}))
}
