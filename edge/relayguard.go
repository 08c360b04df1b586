package edge

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
)

// The guards sit between the listeners and pion: each message is
// inspected (EdgeRelay.inspect) before pion handles it, and the Allocate
// pion is handling is known to the port generator, which pion calls on the
// goroutine that read it.

// packetGuard guards a UDP listener; pion reads it from one goroutine.
type packetGuard struct {
	net.PacketConn
	r   *EdgeRelay
	mu  sync.Mutex
	cur *allocating
}

func (g *packetGuard) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := g.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		reply, a, drop := g.r.inspect("udp|"+g.LocalAddr().String()+"|"+addr.String(), p[:n])
		if drop {
			continue
		}
		if reply != nil {
			_, _ = g.PacketConn.WriteTo(reply, addr)
			continue
		}
		g.mu.Lock()
		g.cur = a
		g.mu.Unlock()
		return n, addr, nil
	}
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
}

func (g *streamGuard) Accept() (net.Conn, error) {
	c, err := g.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardedConn{Conn: c, g: g, br: bufio.NewReaderSize(c, 4096),
		tuple: "tcp|" + c.LocalAddr().String() + "|" + c.RemoteAddr().String()}, nil
}

func (g *streamGuard) allocating() *allocating {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur
}

type guardedConn struct {
	net.Conn
	g       *streamGuard
	br      *bufio.Reader
	tuple   string
	pending []byte // the rest of a frame p had no room for

	hmu     sync.Mutex
	holding bool // this connection holds g.allocMu
}

// release lets the listener's next Allocate through.
func (c *guardedConn) release() {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	if c.holding {
		c.holding = false
		c.g.mu.Lock()
		c.g.cur = nil
		c.g.mu.Unlock()
		c.g.allocMu.Unlock()
	}
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
		frame, err := readFrame(c.br)
		if err != nil {
			return 0, err
		}
		reply, a, drop := c.g.r.inspect(c.tuple, frame)
		if drop {
			continue
		}
		if reply != nil {
			if _, err := c.Conn.Write(reply); err != nil {
				return 0, err
			}
			continue
		}
		if a != nil {
			c.g.allocMu.Lock()
			c.hmu.Lock()
			c.holding = true
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

func (c *guardedConn) Close() error {
	c.release()
	return c.Conn.Close()
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
