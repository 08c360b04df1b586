package pki

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// signCRL signs a CRL by p's CA with extra extensions, as a CA (or anyone
// holding its key) could.
func (p *testPKI) signCRL(t *testing.T, number int64, revoked []*big.Int, ext ...pkix.Extension) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{
		Number: big.NewInt(number), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour),
		ExtraExtensions: ext,
	}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, p.ca.cert, p.ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// serveFixed makes the distribution point answer with body from now on.
func (p *testPKI) serveFixed(body []byte) {
	fixed := &MemoryRevocations{}
	_ = fixed.UpdateRevocationList(context.Background(), p.ca.issuer, func(l *RevocationList) error {
		l.CRL = &PublishedCRL{DER: body, Number: new(big.Int), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}
		return nil
	})
	p.serving.Store(&CA{cfg: p.ca.cfg, cert: p.ca.cert, key: p.ca.key, issuer: p.ca.issuer, floor: new(big.Int), revs: fixed})
}

func TestCRLsThatWouldHideRevocationsRefused(t *testing.T) {
	marshal := func(v any) []byte { b, _ := asn1.Marshal(v); return b }
	tests := []struct {
		name string
		ext  pkix.Extension
		says string
	}{
		{"delta CRL", pkix.Extension{Id: oidDeltaCRLIndicator, Critical: true, Value: marshal(1)}, "delta CRLs"},
		{"CRL scoped by an issuing distribution point",
			pkix.Extension{Id: oidIssuingDistPoint, Critical: true, Value: marshal(asn1.RawValue{Tag: 16, IsCompound: true, Bytes: nil})},
			"issuing distribution point"},
		{"CRL with an unknown critical extension", pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: marshal(1)},
			"unsupported critical extension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPKI(t, CRLCacheConfig{})
			srv := p.server("localhost")
			// Signed by the real CA, with a high number, and not listing
			// the certificate: taken as the full CRL it would say "good".
			p.serveFixed(p.signCRL(t, 100, nil, tt.ext))
			err := p.crls.Check(context.Background(), srv.Leaf, p.ca.Certificate())
			wantErr(t, err, ErrRevocationUnknown, tt.name)
			if !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

func TestReplayedOldCRLRefusedAfterEviction(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{MaxEntries: 1})
	ctx := context.Background()
	srv := p.server("localhost")
	before := p.signCRL(t, 5, nil)
	after := p.signCRL(t, 6, []*big.Int{srv.Leaf.SerialNumber})

	p.serveFixed(after)
	if err := p.crls.Check(ctx, srv.Leaf, p.ca.Certificate()); !errors.Is(err, ErrRevoked) {
		t.Fatalf("got %v, want ErrRevoked", err)
	}
	// Another distribution point evicts the cached CRL (MaxEntries 1);
	// then the pre-revocation CRL is replayed at yet another URL.
	p.serveFixed(before)
	for _, q := range []string{"?other", "?replay"} {
		c, err := p.ca.IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}, CRLDistributionPoints: []string{p.dp + q}})
		if err != nil {
			t.Fatal(err)
		}
		if q == "?replay" {
			srv.Leaf.CRLDistributionPoints = c.Leaf.CRLDistributionPoints
			break
		}
		_ = p.crls.Check(ctx, c.Leaf, p.ca.Certificate())
	}
	err := p.crls.Check(ctx, srv.Leaf, p.ca.Certificate())
	wantErr(t, err, ErrRevocationUnknown, "replayed older CRL")
	if !strings.Contains(err.Error(), "is older than") {
		t.Fatalf("error %q does not say the CRL is older", err)
	}
}

func TestLeafTrustedAsRootRefused(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	key, _ := GenerateKey(ECDSAP256)
	tmpl := &x509.Certificate{SerialNumber: newSerial(), Subject: name("localhost"), DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, CRLDistributionPoints: []string{p.dp},
		BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	roots := p.ca.CertPool()
	roots.AddCert(leaf)
	p.v.SetRoots(roots)
	_, err = p.v.Verify(context.Background(), []*x509.Certificate{leaf}, VerifyOptions{Purpose: ServerAuth, Names: []string{"localhost"}})
	if err == nil || !strings.Contains(err.Error(), "itself a trusted root") {
		t.Fatalf("got %v, want a refusal of a self-signed leaf", err)
	}
}

func TestSessionResumptionReverified(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	srv := p.server("localhost")
	server := ServerTLSConfig(keyPair(t, srv), p.v)
	client := ClientTLSConfig(nil, p.v, "localhost")
	client.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	resumed := false
	verify := client.VerifyConnection
	client.VerifyConnection = func(cs tls.ConnectionState) error { resumed = cs.DidResume; return verify(cs) }

	for i := range 2 {
		if sErr, cErr := handshake(t, server, client); sErr != nil || cErr != nil {
			t.Fatalf("handshake %d: server %v, client %v", i, sErr, cErr)
		}
	}
	if !resumed {
		t.Fatal("second handshake did not resume; the test would prove nothing")
	}
	if err := p.ca.Revoke(context.Background(), srv.Leaf.SerialNumber, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if err := p.crls.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, cErr := handshake(t, server, client)
	wantErr(t, cErr, ErrRevoked, "a resumed session with a revoked server")
}

func TestCRLCacheCloseCancelsFetch(t *testing.T) {
	hung := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(hung)
		<-r.Context().Done()
	}))
	defer srv.Close()
	ca, err := NewCA(CAConfig{CRLDistributionPoints: []string{srv.URL + "/ca.crl"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCRLCache(CRLCacheConfig{FetchTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := ca.IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}})
	done := make(chan error, 1)
	go func() { done <- c.Check(context.Background(), leaf.Leaf, ca.Certificate()) }()
	<-hung
	start := time.Now()
	_ = c.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a check interrupted by Close reported success")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not cancel a fetch in flight")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("check returned %v after Close", d)
	}
	if err := c.Check(context.Background(), leaf.Leaf, ca.Certificate()); !errors.Is(err, ErrCRLCacheClosed) {
		t.Fatalf("check after Close: %v, want ErrCRLCacheClosed", err)
	}
}

func TestCRLRedirectRefused(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	redirect := httptest.NewServer(http.RedirectHandler(p.dp, http.StatusFound))
	defer redirect.Close()
	c, err := p.ca.IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}, CRLDistributionPoints: []string{redirect.URL + "/ca.crl"}})
	if err != nil {
		t.Fatal(err)
	}
	err = p.crls.Check(context.Background(), c.Leaf, p.ca.Certificate())
	if err == nil || !strings.Contains(err.Error(), "302") {
		t.Fatalf("got %v, want a refusal of the redirect", err)
	}
}
