package auth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Default connection limits. The timeouts follow what SIP servers use:
// Kamailio reads a message for at most 20 s (tcp_msg_read_timeout) and
// net/http servers commonly allow 5-10 s for a request's header; the idle
// timeout outlasts a registration (presence.DefaultMaxExpires, an hour),
// so a device that only refreshes its registration is never cut. The caps
// follow coturn's and Kamailio's (tcp_max_connections 2048 per process;
// we allow more connections, each costing little).
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMessageTimeout   = 20 * time.Second
	DefaultIdleTimeout      = 65 * time.Minute
	DefaultMaxPerAddress    = 100
	DefaultMaxConns         = 10_000
	// DefaultMaxMessageSize is sipgo's own limit on a SIP message
	// (sip.ParseMaxMessageLength).
	DefaultMaxMessageSize = 65_535
)

// ErrMessageTooLarge is the read error of a connection that declared a
// message (a SIP Content-Length, a WebSocket frame's payload length) or
// sent a header section over ConnLimits.MaxMessageSize; the connection
// is closed.
var ErrMessageTooLarge = errors.New("auth: message over the size limit")

// ErrMalformedFrame is the read error of a connection whose SIP framing
// cannot be followed (a Content-Length that is not a number); the
// connection is closed.
var ErrMalformedFrame = errors.New("auth: malformed message framing")

// ConnLimits bounds what one connection, one source address and all
// connections together may hold of a stream listener (SIP over TLS, SIP
// over WebSocket). Zero fields take the defaults; every limit is on by
// default.
type ConnLimits struct {
	// HandshakeTimeout bounds the time from accepting a connection to the
	// first byte of its first message: the TLS handshake and, over
	// WebSocket, the HTTP upgrade request. Default 10 s.
	HandshakeTimeout time.Duration
	// MessageTimeout bounds how long one message may take to arrive once
	// its first byte has: a SIP message's headers and body, or a
	// WebSocket frame. A client dribbling a message byte by byte is cut.
	// It also bounds each write to the peer, so a peer that stops reading
	// is cut too. Default 20 s.
	MessageTimeout time.Duration
	// IdleTimeout closes a connection that sends nothing, not even a
	// keep-alive (RFC 5626 CRLF, a WebSocket ping), for this long.
	// Default 65 minutes, longer than a registration lasts.
	IdleTimeout time.Duration
	// MaxPerAddress bounds the open connections from one source address
	// (an IPv6 source's /64); more are closed as they are accepted.
	// Default 100.
	MaxPerAddress int
	// MaxConns bounds the open connections of the listener. Default 10,000.
	MaxConns int
	// MaxMessageSize bounds a SIP message (headers and body) and a
	// WebSocket frame's payload: a larger one is refused when its header
	// arrives and the connection closed. Default 65,535. Over WebSocket
	// the bound is at most sipgo's sip.TransportBufferReadSize (32 KiB
	// unless the application sets it), as the connection starts: sipgo
	// reads each WebSocket message into a buffer of that size, and would
	// cut a larger message and fail to parse it.
	MaxMessageSize int
	// Origins lists the origins ("https://host:port") whose pages may open
	// SIP over WebSocket, besides the same host as the request. A request
	// without Origin does not come from a browser and is let through.
	Origins []string
}

// check fills in the defaults, or returns an error naming the first
// invalid field (prefix names where the ConnLimits is).
func (l ConnLimits) check(prefix string) (ConnLimits, error) {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"HandshakeTimeout", &l.HandshakeTimeout, DefaultHandshakeTimeout}, {"MessageTimeout", &l.MessageTimeout, DefaultMessageTimeout},
		{"IdleTimeout", &l.IdleTimeout, DefaultIdleTimeout}} {
		if *d.v < 0 {
			return l, errors.New(prefix + d.name + " must not be negative")
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	for _, n := range []struct {
		name string
		v    *int
		def  int
	}{{"MaxPerAddress", &l.MaxPerAddress, DefaultMaxPerAddress}, {"MaxConns", &l.MaxConns, DefaultMaxConns},
		{"MaxMessageSize", &l.MaxMessageSize, DefaultMaxMessageSize}} {
		if *n.v < 0 {
			return l, errors.New(prefix + n.name + " must not be negative")
		}
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	for i, o := range l.Origins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
			return l, errors.New(prefix + "Origins[" + strconv.Itoa(i) + "] " + o + ": want scheme://host[:port]")
		}
	}
	return l, nil
}

// LimitListener applies lim to a listener of SIP over a stream (TLS): the
// handshake, message and idle timeouts, the message size and the caps.
// Authenticator.Listener applies its Config.ConnLimits by itself; use this
// for other listeners, such as an Access Edge's. It returns an error
// naming an invalid field.
func LimitListener(ln net.Listener, lim ConnLimits) (net.Listener, error) {
	lim, err := lim.check("auth: ConnLimits.")
	if err != nil {
		return nil, err
	}
	return newLimitListener(ln, lim, false), nil
}

// LimitWebSocketListener is LimitListener for SIP over WebSocket (RFC
// 7118): the HTTP upgrade request is read (within HandshakeTimeout, 8 KiB
// at most) and its Origin checked before the listener hands the
// connection on, and WebSocket frames are followed instead of SIP
// messages. A page of another origin is answered 403 Forbidden.
func LimitWebSocketListener(ln net.Listener, lim ConnLimits) (net.Listener, error) {
	lim, err := lim.check("auth: ConnLimits.")
	if err != nil {
		return nil, err
	}
	return newLimitListener(ln, lim, true), nil
}

// limitListener counts connections per source and in all, and wraps each
// in a limitedConn. It prepares each connection on a goroutine of its own
// before Accept returns it: the TLS handshake and, over WebSocket, the
// upgrade request (sipgo upgrades connections in its accept loop, which
// one silent client would otherwise hold). The handshake's deep stack and
// garbage stay on that short-lived goroutine: sipgo's reader of the
// connection, which lives as long as the connection, then needs a small
// stack (bench/signinstorm: 8 KB less per idle connection).
type limitListener struct {
	net.Listener
	lim ConnLimits
	ws  bool

	mu        sync.Mutex
	perSource map[string]int
	total     int
	preparing map[*limitedConn]struct{}

	start    sync.Once
	ready    chan net.Conn
	failed   chan struct{} // closed when the inner Accept fails
	err      error         // its error
	closing  chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func newLimitListener(ln net.Listener, lim ConnLimits, ws bool) *limitListener {
	return &limitListener{Listener: ln, lim: lim, ws: ws, perSource: map[string]int{}, preparing: map[*limitedConn]struct{}{},
		ready: make(chan net.Conn), failed: make(chan struct{}), closing: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.start.Do(func() { l.wg.Go(l.acceptLoop) })
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.failed:
		return nil, l.err
	}
}

// Close closes the listener and the connections still being prepared,
// and waits for the goroutines preparing them.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.stopOnce.Do(func() { close(l.closing) })
	l.closePreparing()
	l.wg.Wait()
	return err
}

// closePreparing closes the connections being prepared: nobody will
// accept them.
func (l *limitListener) closePreparing() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.preparing {
		_ = c.Conn.Close()
	}
}

func (l *limitListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.err = err
			close(l.failed)
			l.closePreparing()
			return
		}
		lc := l.admit(c)
		if lc == nil {
			continue
		}
		l.mu.Lock()
		l.preparing[lc] = struct{}{}
		l.mu.Unlock()
		l.wg.Go(func() {
			ok := lc.prepare()
			l.mu.Lock()
			delete(l.preparing, lc)
			l.mu.Unlock()
			if !ok {
				_ = lc.Close()
				return
			}
			select {
			case l.ready <- lc:
			case <-l.closing:
				_ = lc.Close()
			case <-l.failed: // nobody will accept it
				_ = lc.Close()
			}
		})
	}
}

// admit counts a new connection in, or closes it if its source or the
// listener is at its cap.
func (l *limitListener) admit(c net.Conn) *limitedConn {
	key := c.RemoteAddr().String()
	if ap, err := netip.ParseAddrPort(key); err == nil {
		key = SourceKey(ap.Addr())
	}
	l.mu.Lock()
	ok := l.perSource[key] < l.lim.MaxPerAddress && l.total < l.lim.MaxConns
	if ok {
		l.perSource[key]++
		l.total++
	}
	l.mu.Unlock()
	if !ok {
		_ = c.Close()
		return nil
	}
	lc := &limitedConn{Conn: c, l: l, source: key}
	if l.ws {
		lc.fr = &wsFramer{max: uint64(min(l.lim.MaxMessageSize, int(sip.TransportBufferReadSize)))}
	} else {
		lc.fr = &sipFramer{max: l.lim.MaxMessageSize}
	}
	_ = c.SetReadDeadline(time.Now().Add(l.lim.HandshakeTimeout))
	return lc
}

func (l *limitListener) release(source string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perSource[source]--; l.perSource[source] <= 0 {
		delete(l.perSource, source)
	}
	l.total--
}

// limitedConn follows the messages a connection sends to set its read
// deadline: HandshakeTimeout until the first message, MessageTimeout from
// a message's first byte, IdleTimeout between messages.
type limitedConn struct {
	net.Conn
	l       *limitListener
	source  string
	fr      framer
	pending []byte // the upgrade request, read ahead, for sipgo to read again
	once    sync.Once
}

// framer follows the messages of a byte stream.
type framer interface {
	// feed takes the next bytes and reports whether a message began in
	// them.
	feed(p []byte) (began bool, err error)
	// inMessage reports whether a message has begun and not ended.
	inMessage() bool
	// ended reports whether any message has ended.
	ended() bool
}

func (c *limitedConn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		began, ferr := c.fr.feed(b[:n])
		if ferr != nil {
			_ = c.Close()
			return 0, ferr
		}
		switch {
		case c.fr.inMessage() && began:
			_ = c.Conn.SetReadDeadline(time.Now().Add(c.l.lim.MessageTimeout))
		case !c.fr.inMessage() && c.fr.ended():
			_ = c.Conn.SetReadDeadline(time.Now().Add(c.l.lim.IdleTimeout))
		}
	}
	return n, err
}

// Write bounds each write by MessageTimeout, so a peer that stops reading
// cannot hold the goroutine writing to it; a write that fails closes the
// connection.
func (c *limitedConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.l.lim.MessageTimeout))
	n, err := c.Conn.Write(b)
	if err != nil {
		_ = c.Close()
	}
	return n, err
}

// SetReadDeadline, SetWriteDeadline and SetDeadline are ignored: the
// limits own the deadlines.
func (c *limitedConn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline is ignored (see SetReadDeadline).
func (c *limitedConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline is ignored (see SetReadDeadline).
func (c *limitedConn) SetDeadline(time.Time) error { return nil }

func (c *limitedConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		c.l.release(c.source)
		err = c.Conn.Close()
	})
	return err
}

// handshaker is a connection with a TLS handshake to make: a *tls.Conn,
// or an Authenticator's tracked connection around one.
type handshaker interface {
	HandshakeContext(context.Context) error
}

// prepare makes the connection's TLS handshake, if it has one, and reads
// its upgrade request over WebSocket, within HandshakeTimeout (the
// deadlines admit set); it reports false if the connection is to be
// closed.
func (c *limitedConn) prepare() bool {
	if h, ok := c.Conn.(handshaker); ok {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.l.lim.HandshakeTimeout))
		// Background: the deadlines bound the handshake, and a context
		// that can end would cost a goroutine watching it.
		if err := h.HandshakeContext(context.Background()); err != nil {
			return false
		}
	}
	if c.l.ws {
		return c.upgradeRequest()
	}
	return true
}

// maxUpgradeRequest bounds the HTTP upgrade request of a WebSocket.
const maxUpgradeRequest = 8 << 10

// upgradeRequest reads the connection's HTTP upgrade request and checks
// its Origin, answering 403 (or 431 for an oversized request) and
// reporting false if it is refused. The request is kept for sipgo.
func (c *limitedConn) upgradeRequest() bool {
	buf := make([]byte, 0, 1024)
	tmp := make([]byte, 1024)
	end := -1
	for end < 0 {
		n, err := c.Conn.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if end = bytes.Index(buf, []byte("\r\n\r\n")); end >= 0 {
			break
		}
		if len(buf) > maxUpgradeRequest {
			c.answer("431 Request Header Fields Too Large")
			return false
		}
		if err != nil {
			return false
		}
	}
	end += 4
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(buf[:end])))
	if err != nil {
		c.answer("400 Bad Request")
		return false
	}
	if !c.l.originAllowed(req) {
		c.answer("403 Forbidden")
		return false
	}
	// What came after the request is the first frames: follow them.
	if _, err := c.fr.feed(buf[end:]); err != nil {
		return false
	}
	c.fr.(*wsFramer).upgraded = true
	c.pending = buf
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.l.lim.IdleTimeout))
	return true
}

func (c *limitedConn) answer(status string) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Conn.Write([]byte("HTTP/1.1 " + status + "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
}

// originAllowed: no Origin (not a browser), the host the request was made
// to, or one of the configured origins.
func (l *limitListener) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return slices.ContainsFunc(l.lim.Origins, func(o string) bool { return strings.EqualFold(strings.TrimSuffix(o, "/"), u.Scheme+"://"+u.Host) })
}
