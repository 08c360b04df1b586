package auth

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parleyuc/parley/internal/hooks"
)

// Listener wraps the TLS listener a sipgo server serves with ServeTLS
// (tls.NewListener with pki.ServerTLSConfig) so the Authenticator can keep
// a security association per TLS connection and read its client
// certificate. Requests that arrive any other way (UDP, TCP, or a listener
// not wrapped) must authenticate every time.
//
// A client certificate is taken as proof of identity: it must have been
// verified during the handshake, as pki.ServerTLSConfig does (chain, EKU,
// revocation). Do not wrap a listener whose configuration requests client
// certificates without verifying them.
//
// The listener also applies Config.ConnLimits (see [LimitListener]):
// handshake, message and idle timeouts, the message size, and the caps per
// source address and in all.
func (a *Authenticator) Listener(ln net.Listener) net.Listener {
	return newLimitListener(&trackingListener{Listener: ln, a: a, transport: "TLS"}, a.cfg.ConnLimits, false)
}

// WSSListener is Listener for the TLS listener a sipgo server serves with
// ServeWSS: SIP over secure WebSocket (RFC 7118), as browsers speak it.
// It applies Config.ConnLimits as [LimitWebSocketListener] does: the
// upgrade request's Origin is checked, and a frame over the size limit
// refused when its header arrives.
func (a *Authenticator) WSSListener(ln net.Listener) net.Listener {
	return newLimitListener(&trackingListener{Listener: ln, a: a, transport: "WSS"}, a.cfg.ConnLimits, true)
}

// OnConnectionClose registers f to be called when a tracked connection
// (see Listener) closes, with the transport ("TLS", "WSS") and remote
// address sipgo reports for requests that came on it, and returns the
// function that removes it. A presence.Registrar and a conference.Focus
// given this Authenticator register themselves (the registrar drops the
// bindings of a flow that no longer exists, the focus takes its
// participants out of their meetings). f runs on
// the goroutine that closes the connection, after the hooks added before
// it, and must not block for long.
func (a *Authenticator) OnConnectionClose(f func(transport, remote string)) (remove func()) {
	return a.conns.onClose.Add(f)
}

// Tracks reports whether requests from remote over transport ("TLS",
// "WSS") arrive on a connection the Authenticator tracks: one accepted
// through Listener or WSSListener and still open. A presence.Registrar
// asks, to warn when the SIP listener was not wrapped (devices whose
// connection drops would then stay signed in until they expire).
func (a *Authenticator) Tracks(transport, remote string) bool {
	return a.conns.get(connKey(strings.ToUpper(transport), remote)) != nil
}

// connKey identifies a connection as sipgo reports a request's origin:
// its transport and remote address.
func connKey(transport, remote string) string { return transport + "|" + remote }

type trackingListener struct {
	net.Listener
	a         *Authenticator
	transport string // how sipgo labels requests from these connections
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, ok := c.(*tls.Conn); !ok {
		return c, nil // only TLS connections carry associations
	}
	tc := &trackedConn{Conn: c, transport: l.transport, remote: c.RemoteAddr().String(),
		key: connKey(l.transport, c.RemoteAddr().String()), conns: &l.a.conns, since: l.a.cfg.Now()}
	l.a.conns.add(tc)
	return tc, nil
}

// trackedConn is an accepted connection and its security association.
type trackedConn struct {
	net.Conn
	key       string // connKey of the connection
	transport string
	remote    string
	conns     *connTable
	since     time.Time // when it was accepted
	once      sync.Once

	mu     sync.Mutex
	id     *Identity
	aor    string      // the From address the association was made for
	expiry *time.Timer // closes the connection when id expires
	token  string      // the bearer token id signed in with, for userinfo checks
	issuer *bearer     // its provider, if it asks for userinfo checks
}

// Read closes the connection when reading fails. sipgo stops reading a
// connection on any read error but (v1.7) does not always close a
// connection it accepted when the peer hangs up ("TCP ref went negative"),
// which would leak the socket and leave the association in place.
func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		_ = c.Close()
	}
	return n, err
}

// Close ends the association and closes the connection once; later calls
// do nothing.
func (c *trackedConn) Close() error {
	var err error
	c.once.Do(func() {
		c.dissociate()
		c.conns.remove(c)
		err = c.Conn.Close()
	})
	return err
}

// association returns the identity bound to the connection and the From
// address it was bound for, if any.
func (c *trackedConn) association() (*Identity, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id, c.aor
}

// associate binds id, for From address aor, to the connection. If after
// is positive, the connection closes after it (expired is called first)
// unless another association replaces this one by then.
func (c *trackedConn) associate(id *Identity, aor string, after time.Duration, expired func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.id, c.aor, c.token, c.issuer = id, aor, "", nil
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	if id == nil || id.Expires.IsZero() {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(after, func() {
		c.mu.Lock()
		current := c.expiry == t
		c.mu.Unlock()
		if current {
			expired()
			_ = c.Close()
		}
	})
	c.expiry = t
}

func (c *trackedConn) dissociate() { c.associate(nil, "", 0, nil) }

// setBearer records the token the association was made with, for the
// provider's userinfo checks.
func (c *trackedConn) setBearer(token string, b *bearer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token, c.issuer = token, b
}

// bearer returns the token the association was made with and its
// provider, if it asks for userinfo checks.
func (c *trackedConn) bearer() (string, *bearer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token, c.issuer
}

// HandshakeContext makes the TLS handshake (see limitListener.prepare).
func (c *trackedConn) HandshakeContext(ctx context.Context) error {
	return c.Conn.(*tls.Conn).HandshakeContext(ctx)
}

// peerCertificates returns the client certificate chain the TLS handshake
// verified, or nil.
func (c *trackedConn) peerCertificates() []*x509.Certificate {
	if tc, ok := c.Conn.(*tls.Conn); ok {
		return tc.ConnectionState().PeerCertificates
	}
	return nil
}

// connTable finds a tracked connection by its remote address.
type connTable struct {
	mu      sync.Mutex
	m       map[string]*trackedConn
	onClose hooks.List[func(transport, remote string)]
}

func (t *connTable) add(c *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]*trackedConn)
	}
	t.m[c.key] = c // a new connection from a reused address replaces the old
}

func (t *connTable) remove(c *trackedConn) {
	t.mu.Lock()
	current := t.m[c.key] == c
	if current {
		delete(t.m, c.key)
	}
	t.mu.Unlock()
	if !current {
		return // a newer connection from the same address has taken over
	}
	for _, f := range t.onClose.All() {
		f(c.transport, c.remote)
	}
}

func (t *connTable) get(key string) *trackedConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[key]
}

// all returns the open connections.
func (t *connTable) all() []*trackedConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*trackedConn, 0, len(t.m))
	for _, c := range t.m {
		out = append(out, c)
	}
	return out
}

// associated counts the open connections that carry an identity.
func (t *connTable) associated() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, c := range t.m {
		if id, _ := c.association(); id != nil {
			n++
		}
	}
	return n
}

// Session is a security association: an open connection and the identity
// it carries.
type Session struct {
	// URI is the signed-in party's address of record.
	URI         string
	DisplayName string
	Kind        Kind
	Method      Method
	// Transport is how sipgo labels the connection ("TLS", "WSS"); Remote
	// its peer's address.
	Transport string
	Remote    string
	// Since is when the connection was accepted.
	Since time.Time
}

// Sessions returns the open connections that carry an identity, oldest
// first: who is signed in, from where and how.
func (a *Authenticator) Sessions() []Session {
	a.conns.mu.Lock()
	conns := make([]*trackedConn, 0, len(a.conns.m))
	for _, c := range a.conns.m {
		conns = append(conns, c)
	}
	a.conns.mu.Unlock()
	var out []Session
	for _, c := range conns {
		if id, _ := c.association(); id != nil {
			out = append(out, Session{URI: id.URI, DisplayName: id.DisplayName, Kind: id.Kind, Method: id.Method,
				Transport: c.transport, Remote: c.remote, Since: c.since})
		}
	}
	slices.SortFunc(out, func(x, y Session) int {
		return cmp.Or(x.Since.Compare(y.Since), strings.Compare(x.Remote, y.Remote))
	})
	return out
}

// SignOut closes every connection whose identity is aor, as a tenant admin
// does for a disabled or compromised account, and returns how many it
// closed. Each closes as if the client had hung up: OnConnectionClose
// hooks run (the registrar drops the device's bindings, the focus takes it
// out of its meetings). A client signing in again must authenticate anew,
// which a disabled account cannot.
func (a *Authenticator) SignOut(aor string) int {
	a.conns.mu.Lock()
	var mine []*trackedConn
	for _, c := range a.conns.m {
		if id, _ := c.association(); id != nil && sameAOR(id.URI, aor) {
			mine = append(mine, c)
		}
	}
	a.conns.mu.Unlock()
	for _, c := range mine {
		_ = c.Close()
	}
	return len(mine)
}

// CloseCertificates closes every tracked connection whose TLS client
// certificate chain holds a certificate for which revoked is true, and
// returns how many it closed: an application calls it when it learns of
// a revocation, so that what a now-revoked certificate opened does not
// outlive it (new handshakes are refused by the verifier's CRL).
func (a *Authenticator) CloseCertificates(revoked func(*x509.Certificate) bool) int {
	a.conns.mu.Lock()
	all := make([]*trackedConn, 0, len(a.conns.m))
	for _, c := range a.conns.m {
		all = append(all, c)
	}
	a.conns.mu.Unlock()
	n := 0
	for _, c := range all {
		if slices.ContainsFunc(c.peerCertificates(), revoked) {
			_ = c.Close()
			n++
		}
	}
	return n
}
