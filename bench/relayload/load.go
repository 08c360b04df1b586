package main

import (
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// The load: each allocation's sender writes ChannelData frames on its
// channel at a fixed pace scheduled from the start (open loop: it never
// waits for echoes), its receiver reads what comes back, and an echo peer
// per allocation returns every datagram it gets to where it came from
// (the allocation's relayed address). Sockets are read and written in
// batches (recvmmsg/sendmmsg on Linux) to keep the generator's own CPU
// low: it shares the machine with the server it measures.

// batch is how many datagrams one read or write system call moves.
const batch = 64

// Payload layout after the 4-byte ChannelData header: the send time in
// nanoseconds since the run's start, and the flow's index (an echo from
// another flow's peer would show a misrouting relay).
const (
	stampOffset = 4
	flowOffset  = 12
	minPayload  = flowOffset + 4 - 4 // payload bytes: the stamp and the index
)

// socketBuffer is the receive and send buffer asked for every socket of
// the generator (the kernel caps it at net.core.rmem_max/wmem_max).
const socketBuffer = 4 << 20

// echoPeer is a UDP echo peer.
type echoPeer struct {
	conn     *net.UDPConn
	received atomic.Int64 // datagrams relayed to it: the client-to-peer direction
}

func newEchoPeer(host string) (*echoPeer, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(socketBuffer)
	_ = conn.SetWriteBuffer(socketBuffer)
	return &echoPeer{conn: conn}, nil
}

func (p *echoPeer) addr() *net.UDPAddr { return p.conn.LocalAddr().(*net.UDPAddr) }

// run echoes until the peer's socket is closed.
func (p *echoPeer) run() {
	pc := ipv4.NewPacketConn(p.conn)
	in := make([]ipv4.Message, batch)
	out := make([]ipv4.Message, batch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 2048)}
		out[i].Buffers = [][]byte{nil}
	}
	for {
		n, err := pc.ReadBatch(in, 0)
		if err != nil {
			return
		}
		p.received.Add(int64(n))
		for i := range n {
			out[i].Buffers[0] = in[i].Buffers[0][:in[i].N]
			out[i].Addr = in[i].Addr
		}
		for done := 0; done < n; {
			w, err := pc.WriteBatch(out[done:n], 0)
			if err != nil {
				return
			}
			done += w
		}
	}
}

// flow is one allocation's load and what came of it.
type flow struct {
	index int
	a     *allocation
	peer  *echoPeer

	sent     int64
	lateMax  time.Duration // how far the sender fell behind its schedule, at worst
	received atomic.Int64
	stray    atomic.Int64 // datagrams that were not this flow's echoes
	rtts     []time.Duration
}

// send writes total frames of size payload bytes at rate per second from
// start, in bursts at least tick apart: every burst sends what is due by
// then, whatever came back.
func (f *flow) send(start time.Time, rate float64, total int64, size int, tick time.Duration) error {
	pc := ipv4.NewPacketConn(f.a.conn)
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		b := make([]byte, 4+size) // over UDP, ChannelData needs no padding (RFC 8656 section 12.5)
		binary.BigEndian.PutUint16(b[0:2], f.a.channel)
		binary.BigEndian.PutUint16(b[2:4], uint16(size))
		binary.BigEndian.PutUint32(b[flowOffset:], uint32(f.index))
		msgs[i].Buffers = [][]byte{b}
	}
	interval := float64(time.Second) / rate
	for f.sent < total {
		now := time.Since(start)
		due := min(total, int64(float64(now)/interval)+1)
		if late := now - time.Duration(float64(f.sent)*interval); due > f.sent && late > f.lateMax {
			f.lateMax = late
		}
		for f.sent < due {
			k := int(min(batch, due-f.sent))
			stamp := uint64(time.Since(start))
			for i := range k {
				binary.BigEndian.PutUint64(msgs[i].Buffers[0][stampOffset:], stamp)
			}
			n, err := pc.WriteBatch(msgs[:k], 0)
			if err != nil {
				return err
			}
			f.sent += int64(n)
		}
		next := time.Duration(float64(f.sent) * interval)
		time.Sleep(max(next-time.Since(start), tick))
	}
	return nil
}

// receive reads echoes until all total have come back, or the socket's
// deadline passes or it is closed, noting each one's round trip time.
func (f *flow) receive(start time.Time, total int64) {
	pc := ipv4.NewPacketConn(f.a.conn)
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 2048)}
	}
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP unreachable reported on the connected socket
		}
		now := time.Since(start)
		for _, m := range msgs[:n] {
			b := m.Buffers[0][:m.N]
			if m.N < flowOffset+4 || binary.BigEndian.Uint16(b[0:2]) != f.a.channel ||
				binary.BigEndian.Uint32(b[flowOffset:]) != uint32(f.index) {
				f.stray.Add(1)
				continue
			}
			f.received.Add(1)
			if len(f.rtts) < cap(f.rtts) {
				f.rtts = append(f.rtts, now-time.Duration(binary.BigEndian.Uint64(b[stampOffset:])))
			}
		}
		if f.received.Load() >= total {
			return
		}
	}
}
