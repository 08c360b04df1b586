package edge

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// deniedPeers are the peer addresses a relay refuses by default: a relay
// that reaches them lets anyone on the Internet into the network behind it
// (the bug class of CVE-2020-26262). RelayConfig.AllowPeers overrides them.
var deniedPeers = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network", unspecified
		"10.0.0.0/8",      // RFC 1918
		"100.64.0.0/10",   // shared address space (CGN)
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local
		"172.16.0.0/12",   // RFC 1918
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation (TEST-NET-1)
		"192.88.99.0/24",  // 6to4 relay anycast (deprecated)
		"192.168.0.0/16",  // RFC 1918
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation (TEST-NET-2)
		"203.0.113.0/24",  // documentation (TEST-NET-3)
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, and the limited broadcast 255.255.255.255
		"::/128",          // unspecified
		"::1/128",         // loopback
		"fc00::/7",        // unique local
		"fec0::/10",       // site-local (deprecated, still routed by some stacks)
		"fe80::/10",       // link-local
		"ff00::/8",        // multicast
		"100::/64",        // discard
		"2001:2::/48",     // benchmarking
		"2001:10::/28",    // ORCHID
		"2001:20::/28",    // ORCHIDv2
		"2001:db8::/32",   // documentation
		"3fff::/20",       // documentation (RFC 9637)
		"64:ff9b:1::/48",  // local-use NAT64: translates to internal networks
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Prefixes whose addresses carry an IPv4 address (RFC 6052, 2765, 3056,
// 4380, 4291).
var (
	nat64Prefix      = netip.MustParsePrefix("64:ff9b::/96")
	compatiblePrefix = netip.MustParsePrefix("::/96")
	translatedPrefix = netip.MustParsePrefix("::ffff:0:0:0/96")
	sixToFourPrefix  = netip.MustParsePrefix("2002::/16")
	teredoPrefix     = netip.MustParsePrefix("2001::/32")
)

// embeddedIPv4 returns the IPv4 address an IPv6 address carries in the
// forms that reach IPv4 hosts: IPv4-mapped (::ffff:a.b.c.d),
// IPv4-translated (::ffff:0:a.b.c.d, RFC 2765), IPv4-compatible
// (::a.b.c.d), NAT64 (64:ff9b::/96), 6to4 (2002::/16) and Teredo
// (2001::/32, the client address inverted). Local-use NAT64
// (64:ff9b:1::/48) is refused whole instead: its translator serves an
// internal network, and its IPv4 address may sit at several offsets.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	last := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	switch {
	case a.Is4In6():
		return a.Unmap(), true
	case nat64Prefix.Contains(a), compatiblePrefix.Contains(a), translatedPrefix.Contains(a):
		return last, true
	case sixToFourPrefix.Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	case teredoPrefix.Contains(a):
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}), true
	}
	return netip.Addr{}, false
}

// Why the peer filter refuses an address (for logs), or permitted.
const (
	permitted     = ""
	refusedRange  = "internal or reserved range"
	refusedHost   = "the relay host's own address"
	refusedFamily = "not an IP address"
)

// peerFilter decides which peers a relay may reach. It refuses the denied
// ranges unless the allow-list names them, and always the host's own
// addresses: the relay's configured addresses and, when host is set,
// every address of every interface of the machine (and each IPv4
// subnet's directed broadcast), whatever the allow-list says, so that
// allowing a LAN where media servers live does not open the relay host's
// own services. Loopback is the exception: it is a denied range, which
// tests and single-host set-ups open through the allow-list.
type peerFilter struct {
	allow []netip.Prefix
	own   []netip.Addr // the relay's own addresses from its configuration
	host  *hostAddrs   // nil: the interface addresses are not consulted
}

// permits reports whether the relay may send to ip.
func (f *peerFilter) permits(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	return f.refusal(a) == permitted
}

// refusal returns why the relay may not send to a, or permitted.
func (f *peerFilter) refusal(a netip.Addr) string {
	if !a.IsValid() {
		return refusedFamily
	}
	a = a.Unmap().WithZone("")
	addrs := []netip.Addr{a}
	if v4, ok := embeddedIPv4(a); ok {
		addrs = append(addrs, v4)
	}
	for _, x := range addrs {
		if f.isOwn(x) {
			return refusedHost
		}
	}
	for _, p := range f.allow {
		if p.Contains(a) {
			return permitted
		}
	}
	for _, x := range addrs {
		for _, p := range deniedPeers {
			if p.Contains(x) {
				return refusedRange
			}
		}
	}
	return permitted
}

func (f *peerFilter) isOwn(a netip.Addr) bool {
	if a.IsLoopback() {
		return false // a denied range, which the allow-list may open
	}
	for _, o := range f.own {
		if o == a {
			return true
		}
	}
	return f.host != nil && f.host.contains(a)
}

// hostAddrsTTL is how long the host's interface addresses are trusted
// before they are read again.
const hostAddrsTTL = 5 * time.Second

// hostAddrs is the host's interface addresses, read again when a peer is
// checked more than ttl after the last reading. Reading them lazily on
// the request path costs one net.InterfaceAddrs (a netlink dump on Linux)
// at most every ttl, and only while clients ask for permissions; a
// goroutine refreshing them would wake every few seconds on an idle relay
// for the same guarantee (addresses at most ttl old when a permission is
// decided). A permission lasts five minutes (RFC 8656) and its refresh is
// decided again.
type hostAddrs struct {
	ttl  time.Duration
	read func() ([]net.Addr, error) // net.InterfaceAddrs
	log  *slog.Logger

	mu  sync.Mutex
	at  time.Time
	set map[netip.Addr]struct{}
}

func newHostAddrs(log *slog.Logger) (*hostAddrs, error) {
	h := &hostAddrs{ttl: hostAddrsTTL, read: net.InterfaceAddrs, log: log}
	if err := h.refresh(time.Now()); err != nil {
		return nil, err
	}
	return h, nil
}

// contains reports whether a is an address of the host.
func (h *hostAddrs) contains(a netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := time.Now(); now.Sub(h.at) >= h.ttl {
		if err := h.refreshLocked(now); err != nil {
			// The last reading stands: it still holds the addresses the
			// host had.
			h.log.Warn("relay: reading the host's addresses", "err", err)
		}
	}
	_, ok := h.set[a]
	return ok
}

func (h *hostAddrs) refresh(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refreshLocked(now)
}

func (h *hostAddrs) refreshLocked(now time.Time) error {
	h.at = now
	addrs, err := h.read()
	if err != nil {
		return err
	}
	set := make(map[netip.Addr]struct{}, 2*len(addrs))
	for _, x := range addrs {
		var ip net.IP
		var mask net.IPMask
		switch v := x.(type) {
		case *net.IPNet:
			ip, mask = v.IP, v.Mask
		case *net.IPAddr:
			ip = v.IP
		}
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		a = a.Unmap()
		set[a] = struct{}{}
		// The subnet's directed broadcast reaches the host too.
		if ones, bits := mask.Size(); a.Is4() && bits == 32 && ones < 31 {
			b := a.As4()
			m := net.CIDRMask(ones, 32)
			for i := range b {
				b[i] |= ^m[i]
			}
			set[netip.AddrFrom4(b)] = struct{}{}
		}
	}
	h.set = set
	return nil
}
