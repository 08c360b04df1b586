// Package testpki sets up, for tests, what a deployment has: a CA whose
// CRL is served over HTTP on loopback, a CRL cache and a Verifier trusting
// the CA, all released when the test ends.
package testpki

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/parleyuc/parley/pki"
)

// PKI is a test CA and a verifier that trusts it.
type PKI struct {
	CA       *pki.CA
	Verifier *pki.Verifier
}

// New starts the CRL distribution point, creates the CA and the verifier.
func New(t testing.TB) *PKI {
	t.Helper()
	mux := http.NewServeMux()
	web := httptest.NewServer(mux)
	t.Cleanup(web.Close)
	ca, err := pki.NewCA(pki.CAConfig{CRLDistributionPoints: []string{web.URL + "/ca.crl"}})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/ca.crl", ca.CRLHandler())
	crls, err := pki.NewCRLCache(pki.CRLCacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = crls.Close() })
	v, err := pki.NewVerifier(pki.VerifierConfig{Roots: ca.CertPool(), CRLs: crls})
	if err != nil {
		t.Fatal(err)
	}
	return &PKI{CA: ca, Verifier: v}
}

// Server returns a KeyPair for a server certificate naming names and
// 127.0.0.1.
func (p *PKI) Server(t testing.TB, names ...string) *pki.KeyPair {
	t.Helper()
	return KeyPair(t)(p.CA.IssueServer(pki.ServerCertRequest{DNSNames: names, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}))
}

// Peer issues a server certificate that also authenticates as a client,
// for servers that dial servers over mutual TLS (edges, partners).
func (p *PKI) Peer(t testing.TB, names ...string) *pki.KeyPair {
	t.Helper()
	return KeyPair(t)(p.CA.IssueServer(pki.ServerCertRequest{DNSNames: names, ClientAuth: true}))
}

// User returns a KeyPair for a user's client certificate.
func (p *PKI) User(t testing.TB, sipURI string) *pki.KeyPair {
	t.Helper()
	return KeyPair(t)(p.CA.IssueClient(pki.ClientCertRequest{SIPURI: sipURI}))
}

// KeyPair turns an issued certificate into a KeyPair, failing the test on
// error: KeyPair(t)(ca.IssueServer(...)).
func KeyPair(t testing.TB) func(*pki.Certificate, error) *pki.KeyPair {
	return func(c *pki.Certificate, err error) *pki.KeyPair {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		tc, err := c.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		kp, err := pki.NewKeyPair(tc)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
}
