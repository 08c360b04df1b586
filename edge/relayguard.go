package edge

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// The guards sit between the listeners and pion: each message is
// inspected (EdgeRelay.inspect) before pion handles it, and the Allocate
// pion is handling is known to the port generator, which pion calls on the
// goroutine that read it.

// packetGuard guards a UDP listener; pion reads it from one goroutine.
type packetGuard struct {
	net.PacketConn
	r       *EdgeRelay
	udp     *net.UDPConn // the PacketConn if it is one: the fast path needs it
	addrs   addrCache    // used by the reading goroutine only
	mu      sync.Mutex
	cur     *allocating
	pending *fastGrant // the ChannelBind or CreatePermission pion is answering

	fmu  sync.RWMutex
	fast map[netip.AddrPort]*fastAlloc // UDP allocations made on this listener, by client

	// Batched reads (nil: one datagram at a time), used by the reading
	// goroutine only: datagrams qi to qn of the last batch are still to
	// be handled; dirty are the relay sockets with datagrams the fast
	// path queued.
	rb     *udpReader
	qi, qn int
	dirty  []*relayConn
}

// listenerBatch is how many datagrams a listener reads a system call.
const listenerBatch = 32

func newPacketGuard(pc net.PacketConn, r *EdgeRelay) *packetGuard {
	g := &packetGuard{PacketConn: pc, r: r, fast: map[netip.AddrPort]*fastAlloc{}}
	g.udp, _ = pc.(*net.UDPConn)
	if g.udp != nil {
		g.rb = newUDPReader(g.udp, listenerBatch, 0, relayInboundMTU, 0)
	}
	return g
}

// ReadFrom hands pion the next datagram the guards let through. Only
// requests are inspected: ChannelData and Send indications (every
// relayed datagram) pass without a decode or an allocation, since pion
// relays them only on this 5-tuple's allocation, toward peers it has
// permissions for, and those were granted by requests inspected here.
func (g *packetGuard) ReadFrom(p []byte) (int, net.Addr, error) {
	// pion is done with the previous message: an Allocate it did not
	// turn into an allocation gives its reserved quota back.
	g.mu.Lock()
	prev := g.cur
	g.cur = nil
	g.pending = nil
	g.mu.Unlock()
	if prev != nil {
		g.r.settle(prev)
	}
	for {
		b, ap, addr, err := g.next(p)
		if err != nil {
			g.flushPeers()
			return 0, addr, err
		}
		if !isRequest(b) {
			if ap.IsValid() && g.relayFast(b, ap) {
				continue
			}
			g.flushPeers()
			if addr == nil {
				addr = g.addrs.addr(ap)
			}
			return copy(p, b), addr, nil
		}
		g.flushPeers()
		n := copy(p, b)
		at := relayNow()
		if addr == nil {
			addr = g.addrs.addr(ap)
		}
		v := g.r.inspect("udp|"+g.LocalAddr().String()+"|"+addr.String(), "udp|"+addr.String(), addr, p[:n])
		if v.drop {
			continue
		}
		if v.reply != nil {
			_, _ = g.PacketConn.WriteTo(v.reply, addr)
			continue
		}
		if v.pass != nil {
			n = copy(p, v.pass) // shorter than what was read
		} else if ap.IsValid() {
			g.learn(p[:n], ap, at)
		}
		if v.alloc != nil && ap.IsValid() {
			v.alloc.guard, v.alloc.src = g, ap
		}
		g.mu.Lock()
		g.cur = v.alloc
		g.mu.Unlock()
		return n, addr, nil
	}
}

// next returns the next datagram: from the batch read last (flushing the
// datagrams the fast path queued for peers before reading another), or
// read into p when the listener reads one at a time. A datagram that
// fills p may be truncated: it is dropped, as pion drops it.
func (g *packetGuard) next(p []byte) ([]byte, netip.AddrPort, net.Addr, error) {
	if g.rb == nil {
		for {
			n, ap, addr, err := g.read(p)
			if err != nil || n < len(p) {
				return p[:n], ap, addr, err
			}
		}
	}
	for {
		for g.qi >= g.qn {
			g.flushPeers()
			n, err := g.rb.read()
			if err != nil {
				return nil, netip.AddrPort{}, nil, err
			}
			g.qi, g.qn = 0, n
		}
		buf, n, ap := g.rb.msg(g.qi)
		g.qi++
		if n < len(p) && n < len(buf) {
			return buf[:n], ap, nil, nil
		}
	}
}

// flushPeers writes the datagrams the fast path queued for peers.
func (g *packetGuard) flushPeers() {
	for i, c := range g.dirty {
		c.wb.flush()
		g.dirty[i] = nil
	}
	g.dirty = g.dirty[:0]
}

// read reads a datagram and its source: as an AddrPort when
// the listener is a *net.UDPConn, the net.Addr made only when pion needs
// it; as a net.Addr (ap invalid) otherwise.
func (g *packetGuard) read(p []byte) (int, netip.AddrPort, net.Addr, error) {
	u := g.udp
	if u == nil { // a packetGuard made elsewhere than newPacketGuard (tests)
		u, _ = g.PacketConn.(*net.UDPConn)
	}
	if u == nil {
		n, addr, err := g.PacketConn.ReadFrom(p)
		return n, netip.AddrPort{}, addr, err
	}
	n, ap, err := u.ReadFromUDPAddrPort(p)
	return n, ap, nil, err
}

func (g *packetGuard) allocating() *allocating {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur
}

// streamGuard guards a TCP (or TLS) listener. pion reads each connection
// on its own goroutine but shares one port generator per listener, so an
// Allocate holds allocMu from when its connection returns it to pion
// until pion reads that connection again.
type streamGuard struct {
	net.Listener
	r       *EdgeRelay
	allocMu sync.Mutex
	mu      sync.Mutex
	cur     *allocating
	conns   map[*guardedConn]struct{}
	closed  bool
}

func (g *streamGuard) Accept() (net.Conn, error) {
	c, err := g.Listener.Accept()
	if err != nil {
		return nil, err
	}
	gc := &guardedConn{Conn: c, g: g, br: bufio.NewReaderSize(c, 4096),
		tuple: "tcp|" + c.LocalAddr().String() + "|" + c.RemoteAddr().String(), client: "tcp|" + c.RemoteAddr().String()}
	g.mu.Lock()
	closed := g.closed
	if !closed {
		g.conns[gc] = struct{}{}
	}
	g.mu.Unlock()
	if closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	return gc, nil
}

// closeAll closes every connection accepted, when the relay closes.
func (g *streamGuard) closeAll() {
	g.mu.Lock()
	g.closed = true
	conns := make([]*guardedConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// closeIdle closes the connections that carry no allocation (Shutdown).
func (g *streamGuard) closeIdle() {
	g.mu.Lock()
	conns := make([]*guardedConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		if !g.r.carriesAllocation(c) {
			_ = c.Close()
		}
	}
}

// carriesAllocation reports whether c is the connection of an
// allocation (pion's or a TCP one), or a client data connection.
func (r *EdgeRelay) carriesAllocation(c *guardedConn) bool {
	r.mu.Lock()
	_, owned := r.owner[c.tuple]
	r.mu.Unlock()
	if owned {
		return true
	}
	t := r.tcp
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.allocs[c] != nil {
		return true
	}
	for _, pc := range t.conns {
		pc.a.mu.Lock()
		data := pc.client == c
		pc.a.mu.Unlock()
		if data {
			return true
		}
	}
	return false
}

func (g *streamGuard) allocating() *allocating {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur
}

type guardedConn struct {
	net.Conn
	g             *streamGuard
	br            *bufio.Reader
	tuple, client string
	pending       []byte // the rest of a frame p had no room for
	once          sync.Once

	hmu     sync.Mutex
	holding *allocating // the Allocate for which this connection holds g.allocMu
	closed  bool        // no more frames, even buffered ones

	wmu sync.Mutex // one writer at a time: pion, the relay's answers, ConnectionAttempt
}

// send writes a frame the relay answers itself, giving up after five
// seconds on a client that does not read, and closing its connection.
func (c *guardedConn) send(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Conn.Write(frame)
	_ = c.Conn.SetWriteDeadline(time.Time{})
	if err != nil {
		_ = c.Conn.Close() // part of a frame may have gone: the stream's framing is lost
	}
	return err
}

// release lets the listener's next Allocate through, once pion is done
// with this one: pion answers it (Write) or reads the connection again.
// An Allocate pion did not turn into an allocation gives its reserved
// quota back.
func (c *guardedConn) release() {
	c.hmu.Lock()
	a := c.holding
	c.holding = nil
	if a != nil {
		c.g.mu.Lock()
		c.g.cur = nil
		c.g.mu.Unlock()
		c.g.allocMu.Unlock()
	}
	c.hmu.Unlock()
	c.g.r.settle(a)
}

// Write releases the Allocate lock first: pion writes its answer after
// deciding, and a client that does not read must not keep other
// connections' Allocates waiting.
func (c *guardedConn) Write(p []byte) (int, error) {
	c.release()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.Conn.Write(p)
}

// Read returns the stream one TURN frame (STUN message or ChannelData)
// at a time.
func (c *guardedConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	c.release()
	for {
		c.hmu.Lock()
		closed := c.closed
		c.hmu.Unlock()
		if closed {
			return 0, net.ErrClosed
		}
		frame, err := readFrame(c.br)
		if err != nil {
			return 0, err
		}
		v := c.g.r.inspect(c.tuple, c.client, c.RemoteAddr(), frame)
		if v.drop {
			continue
		}
		if v.reply != nil {
			if err := c.send(v.reply); err != nil {
				return 0, err
			}
			continue
		}
		if v.pass != nil {
			frame = v.pass
		}
		a := v.alloc
		if taken, bound := c.g.r.tcp.intercept(c, frame, a); taken {
			if bound != nil {
				// A client data connection (RFC 6062): relayed as it is
				// until either side ends, then pion's read loop ends.
				bound.pipe(c)
				return 0, io.EOF
			}
			continue
		}
		if a != nil {
			c.g.allocMu.Lock()
			c.hmu.Lock()
			c.holding = a
			c.hmu.Unlock()
			c.g.mu.Lock()
			c.g.cur = a
			c.g.mu.Unlock()
		}
		n := copy(p, frame)
		c.pending = frame[n:]
		return n, nil
	}
}

// Close releases what the connection holds, and the allocation made over
// it.
func (c *guardedConn) Close() error {
	c.hmu.Lock()
	c.closed = true
	c.hmu.Unlock()
	c.release()
	c.once.Do(func() {
		c.g.mu.Lock()
		delete(c.g.conns, c)
		c.g.mu.Unlock()
		c.g.r.closeClient(c.client)
	})
	err := c.Conn.Close()
	c.g.r.tcp.controlClosed(c) // after: its goroutines may be writing to c
	return err
}

var errBadFrame = errors.New("edge: not a TURN frame")

// readFrame reads one STUN message or ChannelData message (with its
// padding to 4 bytes, RFC 8656 section 12.5) from a stream.
func readFrame(br *bufio.Reader) ([]byte, error) {
	h, err := br.Peek(4)
	if err != nil {
		return nil, err
	}
	length := int(binary.BigEndian.Uint16(h[2:4]))
	switch {
	case h[0]&0xC0 == 0: // STUN
		length += 20
	case h[0] >= 0x40 && h[0] <= 0x7F: // ChannelData
		length += 4
		length += (4 - length%4) % 4
	default:
		return nil, errBadFrame
	}
	if length > maxTURNFrame {
		return nil, errBadFrame
	}
	frame := make([]byte, length)
	if _, err := io.ReadFull(br, frame); err != nil {
		return nil, err
	}
	return frame, nil
}
