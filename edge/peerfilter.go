package edge

import (
	"net"
	"net/netip"
)

// deniedPeers are the peer addresses a relay refuses by default: a relay
// that reaches them lets anyone on the Internet into the network behind it
// (the bug class of CVE-2020-26262).
var deniedPeers = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",      // "this network", unspecified
		"10.0.0.0/8",     // RFC 1918
		"100.64.0.0/10",  // shared address space (CGN)
		"127.0.0.0/8",    // loopback
		"169.254.0.0/16", // link-local
		"172.16.0.0/12",  // RFC 1918
		"192.0.0.0/24",   // IETF protocol assignments
		"192.168.0.0/16", // RFC 1918
		"198.18.0.0/15",  // benchmarking
		"224.0.0.0/4",    // multicast
		"240.0.0.0/4",    // reserved, broadcast
		"::/128",         // unspecified
		"::1/128",        // loopback
		"fc00::/7",       // unique local
		"fe80::/10",      // link-local
		"ff00::/8",       // multicast
		"100::/64",       // discard
		"2001:db8::/32",  // documentation
		"64:ff9b:1::/48", // local-use NAT64
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// embeddedIPv4 returns the IPv4 address an IPv6 address carries in the
// forms that reach IPv4 hosts: IPv4-mapped and -compatible, NAT64
// (64:ff9b::/96), 6to4 (2002::/16) and Teredo (2001::/32, the client
// address inverted).
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case a.Is4In6():
		return a.Unmap(), true
	case netip.MustParsePrefix("64:ff9b::/96").Contains(a), netip.MustParsePrefix("::/96").Contains(a):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case netip.MustParsePrefix("2002::/16").Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	case netip.MustParsePrefix("2001::/32").Contains(a):
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}), true
	}
	return netip.Addr{}, false
}

// peerFilter decides which peers a relay may reach: not the denied
// ranges, nor the relay's own addresses, unless the allow-list names them.
type peerFilter struct {
	allow []netip.Prefix
	own   []netip.Addr
}

// permits reports whether the relay may send to ip.
func (f *peerFilter) permits(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range f.allow {
		if p.Contains(a) {
			return true
		}
	}
	addrs := []netip.Addr{a}
	if v4, ok := embeddedIPv4(a); ok {
		addrs = append(addrs, v4)
	}
	for _, x := range addrs {
		for _, p := range deniedPeers {
			if p.Contains(x) {
				return false
			}
		}
		for _, o := range f.own {
			if o == x {
				return false
			}
		}
	}
	return true
}
