package edge

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun"
)

// The relay's fast path: ChannelData, and Send indications toward a peer
// with a permission, are relayed by the listener's guard itself, and
// datagrams from a peer with a channel binding by the relay socket's
// reader, without pion (whose path decodes each datagram, takes its
// allocation manager's and allocation's locks and allocates a frame for
// each datagram from a peer).
//
// The fast path relays only what pion would: it keeps a copy of each UDP
// allocation's channel bindings and permissions, learned from the
// ChannelBind and CreatePermission requests the guard has inspected (peer
// filter, integrity, 5-tuple binding) and committed only when pion
// answers them with a success response, so only what pion granted. Each
// copy expires no later than pion's: its lifetime runs from when the
// request was read, before pion started its timer, and a refresh that
// arrives within fastExpiryMargin of the copy's expiry drops the copy
// instead (pion's refresh of a binding whose timer is firing may lose it).
// The copies go when the allocation's relay socket closes, which is how
// every allocation ends (a Refresh of 0, its lifetime, the relay's
// Close). Anything the copy cannot vouch for (an unknown channel, a
// permission about to expire, a malformed frame, another 5-tuple) goes to
// pion as before, which decides.

// Lifetimes pion gives what it grants: a channel binding lives
// relayChannelLifetime (the relay sets pion's ChannelBindTimeout to it),
// a permission five minutes (pion/turn/v2's internal permissionTimeout,
// RFC 8656 section 9).
const (
	relayChannelLifetime    = 10 * time.Minute
	relayPermissionLifetime = 5 * time.Minute
	fastExpiryMargin        = time.Second
)

// relayEpoch is the origin of relayNow: a monotonic clock read without
// an allocation.
var relayEpoch = time.Now()

// relayNow returns the monotonic time since relayEpoch in nanoseconds.
func relayNow() int64 { return int64(time.Since(relayEpoch)) }

// fastAlloc is the fast path's copy of one UDP allocation's channel
// bindings and permissions.
type fastAlloc struct {
	g      *packetGuard // the listener the allocation was made on
	rc     *relayConn
	client netip.AddrPort // the 5-tuple's client end; the listener is g

	batching atomic.Pointer[udpReader] // the relay socket's reader once it reads batches (for tests)

	mu       sync.RWMutex
	channels map[uint16]fastChannel
	byPeer   map[netip.AddrPort]uint16
	perms    map[netip.Addr]int64 // peer IP -> expiry (relayNow)
}

type fastChannel struct {
	peer    netip.AddrPort
	expires int64 // relayNow
}

// fastGrant is a ChannelBind or CreatePermission the guard passed to pion,
// waiting for pion's answer.
type fastGrant struct {
	fa      *fastAlloc
	id      [stun.TransactionIDSize]byte
	method  stun.Method
	channel uint16
	peers   []netip.AddrPort
	at      int64 // when the request was read (relayNow)
}

func newFastAlloc(g *packetGuard, rc *relayConn, client netip.AddrPort) *fastAlloc {
	return &fastAlloc{g: g, rc: rc, client: client, channels: map[uint16]fastChannel{},
		byPeer: map[netip.AddrPort]uint16{}, perms: map[netip.Addr]int64{}}
}

// live reports whether an expiry leaves at least fastExpiryMargin.
func live(expires, now int64) bool { return expires-int64(fastExpiryMargin) > now }

// peerOf returns the peer of channel n if the binding and the peer's
// permission are both live.
func (fa *fastAlloc) peerOf(n uint16, now int64) (netip.AddrPort, bool) {
	fa.mu.RLock()
	defer fa.mu.RUnlock()
	c, ok := fa.channels[n]
	if !ok || !live(c.expires, now) || !live(fa.perms[c.peer.Addr()], now) {
		return netip.AddrPort{}, false
	}
	return c.peer, true
}

// channelOf returns the channel bound to peer if the binding and the
// peer's permission are both live.
func (fa *fastAlloc) channelOf(peer netip.AddrPort, now int64) (uint16, bool) {
	fa.mu.RLock()
	defer fa.mu.RUnlock()
	n, ok := fa.byPeer[peer]
	if !ok {
		return 0, false
	}
	if c := fa.channels[n]; !live(c.expires, now) || !live(fa.perms[peer.Addr()], now) {
		return 0, false
	}
	return n, true
}

// permitted reports whether the permission for ip is live.
func (fa *fastAlloc) permitted(ip netip.Addr, now int64) bool {
	fa.mu.RLock()
	defer fa.mu.RUnlock()
	return live(fa.perms[ip], now)
}

// extend sets an expiry to at+lifetime, as pion's grant or refresh does,
// or reports false if the old expiry is too close to at to know whether
// pion's timer fired first.
func extend(old int64, had bool, at int64, lifetime time.Duration) (int64, bool) {
	if had && old+int64(fastExpiryMargin) > at && old-int64(fastExpiryMargin) < at {
		return 0, false
	}
	return at + int64(lifetime), true
}

// commit records what pion granted for g.
func (fa *fastAlloc) commit(g *fastGrant) {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	for _, p := range g.peers {
		ip := p.Addr()
		old, had := fa.perms[ip]
		if exp, ok := extend(old, had, g.at, relayPermissionLifetime); ok {
			fa.perms[ip] = exp
		} else {
			delete(fa.perms, ip)
		}
	}
	if g.method != stun.MethodChannelBind || len(g.peers) != 1 {
		return
	}
	peer := g.peers[0]
	old, had := fa.channels[g.channel]
	if had && old.peer != peer { // pion refuses this (400): never here
		return
	}
	if exp, ok := extend(old.expires, had, g.at, relayChannelLifetime); ok {
		fa.channels[g.channel] = fastChannel{peer: peer, expires: exp}
		fa.byPeer[peer] = g.channel
		return
	}
	delete(fa.channels, g.channel)
	delete(fa.byPeer, peer)
}

// learn notes a ChannelBind or CreatePermission request from a client
// with a UDP allocation, which the guard is passing to pion: pion's
// success response commits it (answered).
func (g *packetGuard) learn(b []byte, src netip.AddrPort, at int64) {
	t := binary.BigEndian.Uint16(b[0:2])
	if t != stun.NewType(stun.MethodChannelBind, stun.ClassRequest).Value() &&
		t != stun.NewType(stun.MethodCreatePermission, stun.ClassRequest).Value() {
		return
	}
	g.fmu.RLock()
	fa := g.fast[src]
	g.fmu.RUnlock()
	if fa == nil {
		return
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return
	}
	grant := &fastGrant{fa: fa, id: m.TransactionID, method: m.Type.Method, peers: peerAddresses(m), at: at}
	if len(grant.peers) == 0 {
		return
	}
	if grant.method == stun.MethodChannelBind {
		v, err := m.Get(stun.AttrChannelNumber)
		if err != nil || len(v) < 2 {
			return
		}
		grant.channel = binary.BigEndian.Uint16(v)
	}
	g.mu.Lock()
	g.pending = grant
	g.mu.Unlock()
}

// answered commits the pending grant if p is pion's success response to
// it, sent to its client.
func (g *packetGuard) answered(p []byte, addr net.Addr) {
	if len(p) < 20 || p[0] != 0x01 || (p[1] != 0x08 && p[1] != 0x09) { // success responses of CreatePermission, ChannelBind
		return
	}
	g.mu.Lock()
	grant := g.pending
	g.pending = nil
	g.mu.Unlock()
	if grant == nil || string(p[8:20]) != string(grant.id[:]) ||
		binary.BigEndian.Uint16(p[0:2]) != stun.NewType(grant.method, stun.ClassSuccessResponse).Value() {
		return
	}
	if u, ok := addr.(*net.UDPAddr); !ok || u.AddrPort() != grant.fa.client {
		return
	}
	grant.fa.commit(grant)
}

// WriteTo is pion's write to a client: a success response to a
// ChannelBind or CreatePermission the guard passed commits it to the
// fast path's copy.
func (g *packetGuard) WriteTo(p []byte, addr net.Addr) (int, error) {
	g.answered(p, addr)
	return g.PacketConn.WriteTo(p, addr)
}

// relayFast relays a datagram from a client if the fast path can vouch
// for it, and reports whether it did (or dropped it over the bandwidth
// limit); false leaves it to pion.
func (g *packetGuard) relayFast(b []byte, src netip.AddrPort) bool {
	fa, peer, payload, ok := g.route(b, src)
	if ok {
		fa.rc.sendFast(payload, peer, g)
	}
	return ok
}

// route returns where the fast path would relay a datagram from a
// client, and what: the payload of ChannelData on a live channel
// binding, or the data of a Send indication toward a peer with a live
// permission, of this 5-tuple's allocation.
func (g *packetGuard) route(b []byte, src netip.AddrPort) (fa *fastAlloc, peer netip.AddrPort, payload []byte, ok bool) {
	if len(b) < 4 {
		return nil, peer, nil, false
	}
	g.fmu.RLock()
	fa = g.fast[src]
	g.fmu.RUnlock()
	if fa == nil {
		return nil, peer, nil, false
	}
	now := relayNow()
	if b[0]&0xC0 == 0x40 { // ChannelData
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if 4+n > len(b) {
			return nil, peer, nil, false
		}
		peer, ok = fa.peerOf(binary.BigEndian.Uint16(b[0:2]), now)
		return fa, peer, b[4 : 4+n], ok
	}
	peer, payload, ok = parseSend(b)
	if !ok || !fa.permitted(peer.Addr(), now) {
		return nil, peer, nil, false
	}
	return fa, peer, payload, true
}

// parseSend reads a Send indication's first XOR-PEER-ADDRESS and DATA
// attributes without an allocation, as pion reads them.
func parseSend(b []byte) (netip.AddrPort, []byte, bool) {
	if len(b) < 20 || binary.BigEndian.Uint16(b[0:2]) != sendIndication ||
		binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return netip.AddrPort{}, nil, false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if 20+n > len(b) {
		return netip.AddrPort{}, nil, false
	}
	var (
		peer          netip.AddrPort
		data          []byte
		hasPeer, hasD bool
	)
	for a := b[20 : 20+n]; len(a) >= 4; {
		t, l := binary.BigEndian.Uint16(a[0:2]), int(binary.BigEndian.Uint16(a[2:4]))
		if 4+l > len(a) {
			return netip.AddrPort{}, nil, false
		}
		v := a[4 : 4+l]
		switch {
		case t == uint16(stun.AttrXORPeerAddress) && !hasPeer:
			p, ok := xorPeer(v, b[4:20])
			if !ok {
				return netip.AddrPort{}, nil, false
			}
			peer, hasPeer = p, true
		case t == uint16(stun.AttrData) && !hasD:
			data, hasD = v, true
		}
		l += (4 - l%4) % 4
		if 4+l > len(a) {
			break
		}
		a = a[4+l:]
	}
	return peer, data, hasPeer && hasD
}

const (
	sendIndication  = 0x0016 // Send, class indication
	stunMagicCookie = 0x2112A442
)

// xorPeer decodes an XOR-PEER-ADDRESS value; key is the cookie and the
// transaction ID.
func xorPeer(v, key []byte) (netip.AddrPort, bool) {
	if len(v) < 4 {
		return netip.AddrPort{}, false
	}
	port := binary.BigEndian.Uint16(v[2:4]) ^ binary.BigEndian.Uint16(key[0:2])
	switch {
	case v[1] == 1 && len(v) == 8:
		var a [4]byte
		for i := range a {
			a[i] = v[4+i] ^ key[i]
		}
		return netip.AddrPortFrom(netip.AddrFrom4(a), port), true
	case v[1] == 2 && len(v) == 20:
		var a [16]byte
		for i := range a {
			a[i] = v[4+i] ^ key[i]
		}
		return netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}

// sendFast writes a client's datagram to a peer, as WriteTo does for
// pion: at once, or queued until the listener's batch is done (g
// flushes it).
func (c *relayConn) sendFast(p []byte, peer netip.AddrPort, g *packetGuard) {
	if !c.out.take(len(p)) {
		c.r.m.overLimit.Add(1)
		return
	}
	c.r.m.toPeers.Add(int64(len(p)))
	if g.rb != nil && c.wb == nil {
		c.wb = newUDPWriter(c.udp, listenerBatch)
	}
	if g.rb != nil && c.wb != nil {
		if c.wb.queued() == 0 {
			g.dirty = append(g.dirty, c)
		}
		c.wb.add(p, peer)
		return
	}
	_, _ = c.udp.WriteToUDPAddrPort(p, peer)
}

// relayBatch is how many datagrams an active allocation's relay socket
// reads a system call.
const relayBatch = 16

// ReadFrom reads datagrams from peers for pion. Those from a peer with a
// channel binding the fast path holds are relayed to the client here, as
// ChannelData, and not returned. Of the others, it drops those larger
// than pion's buffer (they would arrive truncated), and charges the
// bandwidth limit only for peers with a permission, so strangers cannot
// use up an allocation's budget (pion drops their datagrams).
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		frame, n, ap, addr, err := c.next(p)
		if err != nil {
			c.flushClient()
			return 0, addr, err
		}
		if c.fast != nil && ap.IsValid() {
			// The grants hold peers unmapped; a dual-stack relay socket
			// reads IPv4 peers mapped.
			if ch, ok := c.fast.channelOf(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), relayNow()); ok {
				if !c.in.take(n) {
					c.r.m.overLimit.Add(1)
					continue
				}
				c.r.m.fromPeers.Add(int64(n))
				c.toClient(frame, n, ch)
				continue
			}
		}
		c.flushClient()
		if addr == nil {
			addr = c.addrs.addr(ap)
		}
		if c.permitted(addr) {
			if !c.in.take(n) {
				c.r.m.overLimit.Add(1)
				continue
			}
			c.r.m.fromPeers.Add(int64(n))
		}
		return copy(p, frame[4:4+n]), addr, nil
	}
}

// next returns the next datagram from a peer, no longer than p, at
// frame[4:4+n] with room for padding after it: from the batch read last
// (writing what was queued for the client before reading another), or
// read alone.
func (c *relayConn) next(p []byte) (frame []byte, n int, ap netip.AddrPort, addr net.Addr, err error) {
	if c.rb != nil {
		for {
			for c.qi >= c.qn {
				c.flushClient()
				if c.qn, err = c.rb.read(); err != nil {
					return nil, 0, ap, nil, err
				}
				c.qi = 0
			}
			frame, n, ap = c.rb.msg(c.qi)
			c.qi++
			if n <= len(p) && 4+n < len(frame)-3 {
				return frame, n, ap, nil, nil
			}
		}
	}
	if len(c.buf) != 4+len(p)+1+3 {
		c.buf = make([]byte, 4+len(p)+1+3)
	}
	u := c.udp
	if u == nil { // a relayConn made elsewhere than track (tests)
		u, _ = c.PacketConn.(*net.UDPConn)
	}
	for {
		if u != nil {
			n, ap, err = u.ReadFromUDPAddrPort(c.buf[4 : 4+len(p)+1])
		} else {
			n, addr, err = c.addrs.readFrom(c.PacketConn, c.buf[4:4+len(p)+1])
		}
		if err != nil || n <= len(p) {
			return c.buf, n, ap, addr, err
		}
	}
}

// toClient relays a peer's datagram, read into frame[4:4+n], to the
// client as ChannelData on channel ch, padded to 4 bytes as pion pads it
// (frame has room for the padding): queued if the socket reads batches,
// at once otherwise. The first datagram relayed turns batching on.
func (c *relayConn) toClient(frame []byte, n int, ch uint16) {
	binary.BigEndian.PutUint16(frame[0:2], ch)
	binary.BigEndian.PutUint16(frame[2:4], uint16(n))
	end := 4 + n
	for end%4 != 0 {
		frame[end] = 0
		end++
	}
	if c.cw != nil {
		c.cw.add(frame[:end], c.fast.client)
		return
	}
	// Batching is turned on before this first datagram leaves, so that
	// whoever receives it sees the socket batching (tests rely on it).
	if c.rb == nil && c.udp != nil && c.fast.g.udp != nil {
		if c.rb = newUDPReader(c.udp, relayBatch, 4, len(frame)-4-3, 3); c.rb != nil {
			if c.cw = newUDPWriter(c.fast.g.udp, relayBatch); c.cw == nil {
				c.rb = nil
			} else {
				c.fast.batching.Store(c.rb)
			}
		}
	}
	_, _ = c.fast.g.udp.WriteToUDPAddrPort(frame[:end], c.fast.client)
}

// flushClient writes the ChannelData queued for the client.
func (c *relayConn) flushClient() {
	if c.cw != nil {
		c.cw.flush()
	}
}
