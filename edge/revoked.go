package edge

// What a certificate revocation closes at the edge and on the relay: the
// verifier refuses new handshakes with a revoked certificate, but a
// connection it opened before would otherwise outlive the revocation.

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
)

// CloseCertificates closes every partner and user connection whose
// verified TLS certificate chain holds a certificate for which revoked is
// true, and returns how many it closed (none for a nil revoked). Call it when a revocation becomes
// known (the CA's own, or one a pool's other front end announced), as
// auth.Authenticator.CloseCertificates is called for the SIP listeners.
func (e *AccessEdge) CloseCertificates(revoked func(*x509.Certificate) bool) int {
	if revoked == nil {
		return 0
	}
	e.mu.Lock()
	conns := make([]*tls.Conn, 0, len(e.peers)+len(e.users))
	for _, c := range e.peers {
		conns = append(conns, c)
	}
	for _, c := range e.users {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	return closeRevoked(conns, revoked)
}

// CloseCertificates closes every TURN-over-TLS connection whose client
// presented a certificate chain holding one for which revoked is true,
// with the allocations made over it, and returns how many connections it
// closed. A client authenticates its allocations with relay credentials,
// not its certificate; but what a revoked certificate opened must not
// outlive the revocation.
func (r *EdgeRelay) CloseCertificates(revoked func(*x509.Certificate) bool) int {
	if revoked == nil {
		return 0
	}
	var conns []*guardedConn
	for _, g := range r.streams {
		g.mu.Lock()
		for c := range g.conns {
			conns = append(conns, c)
		}
		g.mu.Unlock()
	}
	n := 0
	for _, c := range conns {
		// ConnectionState waits for a handshake in progress: it is read
		// outside the guards' locks.
		if tc, ok := c.Conn.(*tls.Conn); ok && slices.ContainsFunc(tc.ConnectionState().PeerCertificates, revoked) {
			_ = c.Close() // the guarded connection: its allocations end too
			n++
		}
	}
	return n
}

// closeRevoked closes the connections of conns whose peer certificate
// chain holds a revoked certificate, and returns how many.
func closeRevoked(conns []*tls.Conn, revoked func(*x509.Certificate) bool) int {
	n := 0
	for _, c := range conns {
		if slices.ContainsFunc(c.ConnectionState().PeerCertificates, revoked) {
			_ = c.Close()
			n++
		}
	}
	return n
}
