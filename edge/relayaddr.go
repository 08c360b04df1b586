package edge

import (
	"net"
	"net/netip"
)

// addrCache spares the relay's hot path the two allocations
// net.UDPConn.ReadFrom makes for every datagram's source address (the
// *net.UDPAddr and its IP): a socket's reader reads the address as a
// netip.AddrPort and hands pion the *net.UDPAddr it made the first time
// that address was seen. Pion and the guards only read the addresses they
// are given (pion keeps an allocation's client address in its 5-tuple),
// so sharing one between datagrams is safe.
//
// An addrCache belongs to the one goroutine that reads its socket (pion
// reads each listener and each relay socket from one goroutine). It holds
// at most maxCachedAddrs addresses and starts afresh when full: a sender
// spraying source addresses costs what it did without the cache.
type addrCache struct {
	m map[netip.AddrPort]*net.UDPAddr
}

const maxCachedAddrs = 256

// addrPortReader is what *net.UDPConn offers beside ReadFrom.
type addrPortReader interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
}

// readFrom reads a datagram from pc, as pc.ReadFrom does.
func (c *addrCache) readFrom(pc net.PacketConn, p []byte) (int, net.Addr, error) {
	r, ok := pc.(addrPortReader)
	if !ok {
		return pc.ReadFrom(p)
	}
	n, ap, err := r.ReadFromUDPAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	return n, c.addr(ap), nil
}

// addr returns the *net.UDPAddr of ap, made the first time ap is seen.
func (c *addrCache) addr(ap netip.AddrPort) *net.UDPAddr {
	if a := c.m[ap]; a != nil {
		return a
	}
	if c.m == nil || len(c.m) >= maxCachedAddrs {
		c.m = make(map[netip.AddrPort]*net.UDPAddr)
	}
	a := net.UDPAddrFromAddrPort(ap)
	c.m[ap] = a
	return a
}
