package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/parleyuc/parley/pki"
)

// renewBefore is how long before expiry the server certificate is replaced.
const renewBefore = 30 * 24 * time.Hour

// poolName is on the certificates of the front ends of a pool: each
// trusts the others by it to assert their users (auth.Config.Peers).
const poolName = "pool." + demoDomain

// internalName is on every internal server's certificate: the Access
// Edge sends out to partners what a server carrying it (from this
// server's CA) asserts for its users (edge.AccessEdgeConfig.InternalNames).
const internalName = "internal.parley.invalid"

// ensureServerCertificate loads the server certificate from the data
// directory, issuing a new one when there is none, when it is close to
// expiry, was issued by another CA, names another CRL distribution point
// (the HTTP address changed) or does not cover the SIP listener's address
// and the public names and addresses clients reach the server by.
// A front end of a pool (pool is its pool listener) has a certificate of
// its own, server-<pool address>, which names the pool too. It names
// every tenant's domain (RFC 5922: a client of sip:alice@acme.test checks
// that the server it reached is acme.test's).
func ensureServerCertificate(ca *pki.CA, dataDir, crlURL string, domains, publicNames []string, publicIPs []net.IP, sipAddr net.Addr, pool net.Listener) (*pki.KeyPair, error) {
	names := append(append([]string{"localhost", internalName}, domains...), publicNames...)
	ips := append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, publicIPs...)
	for _, a := range []net.Addr{sipAddr, addrOf(pool)} {
		if tcp, ok := a.(*net.TCPAddr); ok && !tcp.IP.IsUnspecified() && !slices.ContainsFunc(ips, tcp.IP.Equal) {
			ips = append(ips, tcp.IP)
		}
	}
	base := "server"
	if pool != nil {
		names = append(names, poolName)
		base = "server-" + strings.NewReplacer(":", "-", "[", "", "]", "").Replace(pool.Addr().String())
	}
	return ensureCertificate(ca, dataDir, base, crlURL, names, ips)
}

func addrOf(ln net.Listener) net.Addr {
	if ln == nil {
		return nil
	}
	return ln.Addr()
}

// edgeName is the name on the Access Edge's certificate: partners verify
// the edge by it, and the internal server trusts it to assert federated
// users.
const edgeName = "edge." + demoDomain

// ensureEdgeCertificate is ensureServerCertificate for the Access Edge's
// own certificate (edge.crt, edge.key), which it presents to partners and,
// as a client, to the internal server. It names the domain too: a partner
// edge checks that the certificate of the edge a request comes from names
// the sender's domain: every tenant's.
func ensureEdgeCertificate(ca *pki.CA, dataDir, crlURL string, domains, publicNames []string, publicIPs []net.IP) (*pki.KeyPair, error) {
	return ensureCertificate(ca, dataDir, "edge", crlURL, append(append([]string{edgeName}, domains...), publicNames...),
		append([]net.IP{net.IPv4(127, 0, 0, 1)}, publicIPs...))
}

// ensureCertificate loads <base>.crt and <base>.key from the data
// directory, issuing a new server certificate (with clientAuth, for
// server-to-server mutual TLS) when there is none or it is not current.
func ensureCertificate(ca *pki.CA, dataDir, base, crlURL string, names []string, ips []net.IP) (*pki.KeyPair, error) {
	certFile := filepath.Join(dataDir, base+".crt")
	keyFile := filepath.Join(dataDir, base+".key")
	kp, err := pki.LoadKeyPair(certFile, keyFile)
	switch {
	case err == nil && serverCertificateCurrent(kp.Certificate().Leaf, ca, crlURL, names, ips):
		return kp, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	cert, err := ca.IssueServer(pki.ServerCertRequest{
		DNSNames:    names,
		IPAddresses: ips,
		ClientAuth:  true, // it also dials other servers over mutual TLS
	})
	if err != nil {
		return nil, err
	}
	if err := cert.WriteFiles(certFile, keyFile); err != nil {
		return nil, err
	}
	tc, err := cert.TLSCertificate()
	if err != nil {
		return nil, err
	}
	kp, err = pki.NewKeyPair(tc)
	if err != nil {
		return nil, fmt.Errorf("%s certificate: %w", base, err)
	}
	return kp, nil
}

func serverCertificateCurrent(leaf *x509.Certificate, ca *pki.CA, crlURL string, names []string, ips []net.IP) bool {
	if leaf.CheckSignatureFrom(ca.Certificate()) != nil {
		return false
	}
	if time.Until(leaf.NotAfter) < renewBefore {
		return false
	}
	if !slices.Equal(leaf.CRLDistributionPoints, []string{crlURL}) {
		return false
	}
	for _, n := range names {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	for _, ip := range ips {
		if leaf.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	// Nor more: a tenant removed is no longer vouched for.
	for _, n := range leaf.DNSNames {
		if !slices.ContainsFunc(names, func(m string) bool { return strings.EqualFold(m, n) }) {
			return false
		}
	}
	return true
}
