package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// network is where clients reach each listener, as opposed to where it
// is bound: behind NAT, a load balancer or with -listen 0.0.0.0 the two
// differ. What is announced to clients (the relay's relayed addresses
// and TURN URIs, the bridge's ICE candidates and SIP answers, the join
// URL, the addresses calls Record-Route through, the CRL distribution
// point in certificates) comes from here and is never an unspecified
// address.
//
// Each listener's advertised host:port is, in order: its "advertise"
// entry in the config (a host, or host:port), the -public host with
// the bound port, or the bound address itself, an unspecified host
// replaced by this machine's first interface address of its family.
type network struct {
	public    string            // config "public": a host name or IP address
	advertise map[string]string // config "advertise", by listener field
	bound     map[string]net.Addr
	publicIP  map[bool]netip.Addr // public resolved, by "is IPv4"
	logger    *slog.Logger
	warned    map[string]bool // bound addresses whose announced address was logged
}

// newNetwork resolves the public host (a name is looked up once, at
// start) for the families the bound listeners use.
func newNetwork(ctx context.Context, c *config, bound map[string]net.Addr, logger *slog.Logger) (*network, error) {
	n := &network{public: c.Public, advertise: c.Advertise, bound: bound, publicIP: map[bool]netip.Addr{}, logger: logger, warned: map[string]bool{}}
	if c.Public == "" {
		return n, nil
	}
	if ip, err := netip.ParseAddr(c.Public); err == nil {
		n.publicIP[ip.Unmap().Is4()] = ip.Unmap()
		return n, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", c.Public)
	if err != nil {
		return nil, fmt.Errorf("field \"public\" (-public) %q: %w", c.Public, err)
	}
	for _, ip := range ips {
		ip = ip.Unmap()
		if _, ok := n.publicIP[ip.Is4()]; !ok {
			n.publicIP[ip.Is4()] = ip
		}
	}
	return n, nil
}

// hostPort is the address clients reach the listener field at, as
// host:port; the host may be a name (-public, "advertise").
func (n *network) hostPort(field string) string {
	b := n.bound[field]
	if b == nil { // a listener not started (pool)
		return ""
	}
	_, port, _ := net.SplitHostPort(b.String())
	if a := n.advertise[field]; a != "" {
		if _, _, err := net.SplitHostPort(a); err == nil {
			return a
		}
		return net.JoinHostPort(a, port)
	}
	if n.public != "" {
		return net.JoinHostPort(n.public, port)
	}
	return net.JoinHostPort(n.boundIP(b).String(), port)
}

// name is hostPort for clients that verify the server's certificate by
// the host they dial: without -public or an "advertise" entry, the
// built-in CA's certificate names localhost rather than an address.
func (n *network) name(field string) string {
	if n.public != "" || n.advertise[field] != "" {
		return n.hostPort(field)
	}
	_, port, _ := net.SplitHostPort(n.bound[field].String())
	return net.JoinHostPort("localhost", port)
}

// addrPort is the listener's advertised address as an IP and port, for
// what must carry an address rather than a name: relayed transport
// addresses and ICE candidates. The "advertise" entries of those
// listeners are IP addresses (the config check says so); a -public name
// gives its address of the bound address's family.
func (n *network) addrPort(field string) netip.AddrPort {
	b := n.bound[field]
	hp := n.hostPort(field)
	host, port, _ := net.SplitHostPort(hp)
	p, _ := strconv.ParseUint(port, 10, 16)
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), uint16(p))
	}
	v4 := addrIP(b).Is4()
	ip, ok := n.publicIP[v4]
	if !ok {
		ip, ok = n.publicIP[!v4]
	}
	if !ok { // unreachable: newNetwork resolved the name
		ip = n.boundIP(b)
	}
	return netip.AddrPortFrom(ip, uint16(p))
}

// boundIP is the IP a bound address announces: itself, or for an
// unspecified one this machine's first global unicast address of its
// family (loopback if it has none), which is logged: with -listen
// 0.0.0.0, -public says what to announce instead.
func (n *network) boundIP(a net.Addr) netip.Addr {
	ip := addrIP(a)
	if !ip.IsUnspecified() {
		return ip
	}
	chosen := netip.IPv6Loopback()
	if ip.Is4() {
		chosen = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, ia := range addrs {
			if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().IsGlobalUnicast() && p.Addr().Is4() == ip.Is4() {
				chosen = p.Addr()
				break
			}
		}
	}
	if !n.warned[a.String()] { // the network is used at start, by one goroutine
		n.warned[a.String()] = true
		n.logger.Warn("a listener bound to an unspecified address announces an interface address; set -public to choose",
			"bound", a.String(), "announced", chosen.String())
	}
	return chosen
}

// local is the address this machine dials the listener field at (the
// Access Edge reaching the internal SIP listener): its bound address,
// loopback for an unspecified one.
func (n *network) local(field string) string {
	b := n.bound[field]
	ip := addrIP(b)
	_, port, _ := net.SplitHostPort(b.String())
	switch {
	case ip.IsUnspecified() && ip.Is4():
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case ip.IsUnspecified():
		ip = netip.IPv6Loopback()
	}
	return net.JoinHostPort(ip.String(), port)
}

// publicNames are the names and addresses the server's certificates
// must carry for clients that reach it by its public host: -public and
// the advertised host of each of fields (none: every listener's).
func (n *network) publicNames(fields ...string) (names []string, ips []net.IP) {
	add := func(h string) {
		if h == "" {
			return
		}
		if ip, err := netip.ParseAddr(h); err == nil {
			ips = append(ips, net.IP(ip.Unmap().AsSlice()))
			return
		}
		names = append(names, h)
	}
	add(n.public)
	for field, a := range n.advertise {
		if len(fields) > 0 && !slices.Contains(fields, field) {
			continue
		}
		if h, _, err := net.SplitHostPort(a); err == nil {
			add(h)
		} else {
			add(a)
		}
	}
	return names, ips
}

// addrIP is a listener address's IP (the unspecified IPv4 address for
// one it cannot read).
func addrIP(a net.Addr) netip.Addr {
	if a == nil {
		return netip.IPv4Unspecified()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.IPv4Unspecified()
	}
	return ap.Addr().Unmap()
}

// checkAdvertise validates the config's "advertise" entries: known
// listeners, host or host:port, and IP addresses for the relay and the
// media bridge, whose announcements carry addresses.
func (c *config) checkAdvertise() error {
	known := map[string]bool{}
	for _, l := range c.listeners() {
		known[l.field] = true
	}
	for field, a := range c.Advertise {
		if !known[field] {
			return fmt.Errorf("field \"advertise.%s\": no such listener", field)
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			host, port = a, ""
		}
		if port != "" {
			if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
				return fmt.Errorf("field \"advertise.%s\" %q: port %q is not a number from 1 to 65535", field, a, port)
			}
		}
		ip, ipErr := netip.ParseAddr(host)
		switch {
		case host == "" || ipErr != nil && !validHostName(host):
			return fmt.Errorf("field \"advertise.%s\" %q: want host or host:port", field, a)
		case (field == "turn" || field == "media") && ipErr != nil:
			return fmt.Errorf("field \"advertise.%s\" %q: want an IP address: it is announced in relayed addresses and ICE candidates", field, a)
		case ipErr == nil && ip.IsUnspecified():
			return fmt.Errorf("field \"advertise.%s\" %q: an unspecified address reaches nothing", field, a)
		}
	}
	if c.Public != "" {
		if ip, err := netip.ParseAddr(c.Public); err == nil && ip.IsUnspecified() {
			return fmt.Errorf("field \"public\" (-public) %q: an unspecified address reaches nothing", c.Public)
		} else if err != nil && !validHostName(c.Public) {
			return fmt.Errorf("field \"public\" (-public) %q: want a host name or IP address, without a port", c.Public)
		}
	}
	return nil
}

// validHostName reports whether s is a DNS host name (letters, digits,
// hyphens and dots; labels of 1 to 63 characters).
func validHostName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '-':
		default:
			return false
		}
		if label++; label > 63 {
			return false
		}
	}
	return true
}
