//go:build linux && (amd64 || arm64)

package edge

import (
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batched datagram I/O for the relay's fast path: recvmmsg and sendmmsg
// through the socket's syscall.RawConn, on buffers and headers made once,
// so that a batch costs one system call and no allocation (x/net's
// ipv4.PacketConn.ReadBatch allocates each message's source address).
// Each reader and writer belongs to one goroutine.

// mmsghdr is struct mmsghdr on 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// udpReader reads up to len(bufs) datagrams a system call.
type udpReader struct {
	rc       syscall.RawConn
	hdrs     []mmsghdr
	iovs     []unix.Iovec
	names    []unix.RawSockaddrInet6
	bufs     [][]byte
	headroom int
	tail     int
	n        int
	most     atomic.Int64 // the largest batch read yet
	errno    syscall.Errno
	readFn   func(fd uintptr) bool
}

// newUDPReader returns a reader of size datagrams of at most bufLen bytes
// each, read headroom bytes into their buffers that have tail bytes more
// after, or nil if c has no raw connection.
func newUDPReader(c *net.UDPConn, size, headroom, bufLen, tail int) *udpReader {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	r := &udpReader{rc: rc, hdrs: make([]mmsghdr, size), iovs: make([]unix.Iovec, size),
		names: make([]unix.RawSockaddrInet6, size), bufs: make([][]byte, size), headroom: headroom, tail: tail}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, headroom+bufLen+tail)
	}
	r.readFn = r.recv
	return r
}

func (r *udpReader) recv(fd uintptr) bool {
	for i := range r.hdrs {
		r.iovs[i].Base = &r.bufs[i][r.headroom]
		r.iovs[i].SetLen(len(r.bufs[i]) - r.headroom - r.tail)
		h := &r.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Flags = 0
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)),
		unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	r.n, r.errno = int(n), e
	return true
}

// read waits for datagrams and reads what is queued, up to the batch's
// size; it returns how many.
func (r *udpReader) read() (int, error) {
	r.n, r.errno = 0, 0
	if err := r.rc.Read(r.readFn); err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, r.errno
	}
	if int64(r.n) > r.most.Load() {
		r.most.Store(int64(r.n))
	}
	return r.n, nil
}

// largest returns the largest batch read yet.
func (r *udpReader) largest() int { return int(r.most.Load()) }

// msg returns datagram i of the last read: its whole buffer (the
// datagram starts after the headroom), its length and its source.
func (r *udpReader) msg(i int) ([]byte, int, netip.AddrPort) {
	sa := &r.names[i]
	var from netip.AddrPort
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s4.Port))
		from = netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		from = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	}
	return r.bufs[i], int(r.hdrs[i].len), from
}

// udpWriter writes queued datagrams with one system call a batch.
type udpWriter struct {
	rc      syscall.RawConn
	inet6   bool // the socket is AF_INET6: IPv4 destinations go as mapped addresses
	hdrs    []mmsghdr
	iovs    []unix.Iovec
	names   []unix.RawSockaddrInet6
	n, done int
	errno   syscall.Errno
	writeFn func(fd uintptr) bool
}

// newUDPWriter returns a writer of up to size datagrams a call, or nil
// if c has no raw connection.
func newUDPWriter(c *net.UDPConn, size int) *udpWriter {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	w := &udpWriter{rc: rc, hdrs: make([]mmsghdr, size), iovs: make([]unix.Iovec, size),
		names: make([]unix.RawSockaddrInet6, size)}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		if sa, serr = unix.Getsockname(int(fd)); serr == nil {
			_, w.inet6 = sa.(*unix.SockaddrInet6)
		}
	}); err != nil || serr != nil {
		return nil
	}
	w.writeFn = w.send
	return w
}

// add queues p for to; p must stay untouched until flush. A full batch
// is flushed first.
func (w *udpWriter) add(p []byte, to netip.AddrPort) {
	if w.n == len(w.hdrs) {
		w.flush()
	}
	i := w.n
	sa := &w.names[i]
	a := to.Addr()
	if !w.inet6 && (a.Is4() || a.Is4In6()) {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
		p := (*[2]byte)(unsafe.Pointer(&s4.Port))
		p[0], p[1] = byte(to.Port()>>8), byte(to.Port())
		w.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet4
	} else {
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		p[0], p[1] = byte(to.Port()>>8), byte(to.Port())
		w.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
	}
	w.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(sa))
	if len(p) > 0 {
		w.iovs[i].Base = &p[0]
	}
	w.iovs[i].SetLen(len(p))
	w.hdrs[i].hdr.Iov = &w.iovs[i]
	w.hdrs[i].hdr.SetIovlen(1)
	w.n++
}

func (w *udpWriter) send(fd uintptr) bool {
	for w.done < w.n {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[w.done])), uintptr(w.n-w.done),
			unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == unix.EAGAIN:
			return false
		case e == unix.EINTR:
			continue
		case e != 0:
			// The first datagram failed (sendmmsg reports an error only
			// then): drop it, as a lost datagram, and go on.
			w.done++
			w.errno = e
			continue
		}
		w.done += int(n)
	}
	return true
}

// flush writes what is queued. Datagrams the socket refuses are dropped,
// as the network would drop them.
func (w *udpWriter) flush() {
	if w.n == 0 {
		return
	}
	w.done, w.errno = 0, 0
	_ = w.rc.Write(w.writeFn)
	w.n, w.done = 0, 0
}

// queued returns how many datagrams wait for flush.
func (w *udpWriter) queued() int { return w.n }
