package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testDP = "http://127.0.0.1:1/ca.crl"

func TestCAPersistsAcrossRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	cfg := CAConfig{CRLDistributionPoints: []string{testDP}}
	ca, err := OpenCA(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key written with mode %#o, want 0600", fi.Mode().Perm())
	}
	srv, err := ca.IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(context.Background(), srv.Leaf.SerialNumber, ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	crl1 := mustCRL(t, ca)

	again, err := OpenCA(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Certificate().Equal(ca.Certificate()) {
		t.Fatal("reopened CA has a different certificate")
	}
	revs, err := again.Revocations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 1 || revs[0].Serial.Cmp(srv.Leaf.SerialNumber) != 0 || revs[0].Reason != ReasonSuperseded {
		t.Fatalf("revocations after restart: %+v", revs)
	}
	crl2 := mustCRL(t, again)
	if crl2.Number.Cmp(crl1.Number) <= 0 {
		t.Fatalf("CRL number went from %s to %s across a restart; must grow", crl1.Number, crl2.Number)
	}
	if len(crl2.RevokedCertificateEntries) != 1 || crl2.RevokedCertificateEntries[0].SerialNumber.Cmp(srv.Leaf.SerialNumber) != 0 {
		t.Fatal("CRL after restart does not list the revoked certificate")
	}
	if err := crl2.CheckSignatureFrom(ca.Certificate()); err != nil {
		t.Fatal(err)
	}
}

func TestLoadCARefusesExposedKey(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		dir := t.TempDir()
		if _, err := OpenCA(dir, CAConfig{}); err != nil {
			t.Fatal(err)
		}
		keyFile := filepath.Join(dir, CAKeyFile)
		if err := os.Chmod(keyFile, mode); err != nil {
			t.Fatal(err)
		}
		_, err := OpenCA(dir, CAConfig{})
		if err == nil || !strings.Contains(err.Error(), keyFile) || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %#o: got %v, want a refusal naming the file and the fix", mode, err)
		}
	}
}

func TestLoadCARefusesDamagedState(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenCA(dir, CAConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{`, `{"version":9,"crl_number":1}`, `{"version":1}`,
		`{"version":1,"crl_number":1,"revoked":[{"serial":"xyz"}]}`} {
		if err := os.WriteFile(filepath.Join(dir, CAStateFile), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadCA(dir, CAConfig{}); err == nil || !strings.Contains(err.Error(), CAStateFile) {
			t.Fatalf("state %q: got %v, want an error naming %s", bad, err, CAStateFile)
		}
	}
}

func TestLoadCARefusesMismatchedKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenCA(dir, CAConfig{}); err != nil {
		t.Fatal(err)
	}
	other, _ := GenerateKey(ECDSAP256)
	if err := WriteKeyFile(filepath.Join(dir, CAKeyFile), other); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir, CAConfig{}); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("got %v, want a key mismatch error", err)
	}
}

func TestRevokeFailedWriteChangesNothing(t *testing.T) {
	dir := t.TempDir()
	ca, err := OpenCA(dir, CAConfig{CRLDistributionPoints: []string{testDP}})
	if err != nil {
		t.Fatal(err)
	}
	before := mustCRL(t, ca)
	// Take the directory away: the write must fail and the CA must not
	// report, list or publish a revocation it could not store.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(context.Background(), big.NewInt(42), ReasonKeyCompromise); err == nil {
		t.Fatal("Revoke reported success although its state could not be written")
	}
	if revs, _ := ca.Revocations(context.Background()); len(revs) != 0 {
		n := len(revs)
		t.Fatalf("%d revocations listed after a failed write", n)
	}
	der, _, err := ca.CRL(context.Background())
	if err != nil {
		t.Fatal(err) // the CRL signed before is still current
	}
	got, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if got.Number.Cmp(before.Number) != 0 || len(got.RevokedCertificateEntries) != 0 {
		t.Fatal("CRL changed after a failed revocation")
	}
}

func TestRevokeValidation(t *testing.T) {
	ca, err := NewCA(CAConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(context.Background(), big.NewInt(7), ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(context.Background(), big.NewInt(7), ReasonKeyCompromise); !errors.Is(err, ErrAlreadyRevoked) {
		t.Fatalf("second revocation: %v, want ErrAlreadyRevoked", err)
	}
	for _, r := range []RevocationReason{7, ReasonRemoveFromCRL, 11, -1} {
		if err := ca.Revoke(context.Background(), big.NewInt(8), r); !errors.Is(err, ErrInvalidReason) {
			t.Fatalf("reason %d: %v, want ErrInvalidReason", r, err)
		}
	}
	if err := ca.Revoke(context.Background(), big.NewInt(0), ReasonUnspecified); err == nil {
		t.Fatal("serial 0 accepted")
	}
}

func TestCRLReissuedAtHalfLife(t *testing.T) {
	c := &clock{}
	start := time.Now()
	c.Set(start)
	ca, err := NewCA(CAConfig{CRLValidity: time.Hour, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	first := mustCRL(t, ca)
	if d := first.NextUpdate.Sub(first.ThisUpdate); d != time.Hour {
		t.Fatalf("CRL valid for %v, want the configured hour", d)
	}
	c.Set(start.Add(29 * time.Minute))
	if n := mustCRL(t, ca).Number; n.Cmp(first.Number) != 0 {
		t.Fatalf("CRL re-signed before half its validity (number %s -> %s)", first.Number, n)
	}
	c.Set(start.Add(31 * time.Minute))
	if n := mustCRL(t, ca).Number; n.Cmp(first.Number) <= 0 {
		t.Fatalf("CRL not re-signed after half its validity (number %s)", n)
	}
}

func TestIssueValidation(t *testing.T) {
	ca, err := NewCA(CAConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}}); err == nil ||
		!strings.Contains(err.Error(), "CRLDistributionPoints") {
		t.Fatalf("issued without any distribution point: %v", err)
	}
	req := ServerCertRequest{CRLDistributionPoints: []string{testDP}}
	if _, err := ca.IssueServer(req); err == nil {
		t.Fatal("issued a server certificate with no name")
	}
	req.DNSNames = []string{"bad name"}
	if _, err := ca.IssueServer(req); err == nil {
		t.Fatal("issued a certificate for an invalid DNS name")
	}
	req.DNSNames = []string{"localhost"}
	req.CRLDistributionPoints = []string{"ldap://x/y"}
	if _, err := ca.IssueServer(req); err == nil {
		t.Fatal("issued with a non-HTTP distribution point")
	}
	for _, uri := range []string{"alice@example.test", "tel:+15551234", "sip:example.test", "http://a@b"} {
		if _, err := ca.IssueClient(ClientCertRequest{SIPURI: uri, CRLDistributionPoints: []string{testDP}}); err == nil {
			t.Fatalf("issued a client certificate for %q", uri)
		}
	}
	if _, err := NewCA(CAConfig{KeyAlgorithm: "rsa-1024"}); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("RSA-1024 CA: %v, want ErrUnsupportedKey", err)
	}
	if _, err := NewCA(CAConfig{CRLDistributionPoints: []string{"file:///crl"}}); err == nil ||
		!strings.Contains(err.Error(), "CAConfig.CRLDistributionPoints") {
		t.Fatalf("bad CA config: %v, want an error naming the field", err)
	}
}

func TestIssuedCertificateProfile(t *testing.T) {
	ca, err := NewCA(CAConfig{KeyAlgorithm: ECDSAP384, CRLDistributionPoints: []string{testDP, "http://crl2.example.test/ca.crl"}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer(ServerCertRequest{DNSNames: []string{"sip.example.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ClientAuth: true, KeyAlgorithm: RSA3072, Validity: 100 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	l := srv.Leaf
	if len(l.ExtKeyUsage) != 2 || l.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || l.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("server EKUs %v", l.ExtKeyUsage)
	}
	if len(l.CRLDistributionPoints) != 2 {
		t.Errorf("distribution points %v, want both of the CA's", l.CRLDistributionPoints)
	}
	if l.IsCA || l.NotAfter.After(ca.Certificate().NotAfter) {
		t.Errorf("leaf is a CA or outlives its issuer")
	}
	if err := l.CheckSignatureFrom(ca.Certificate()); err != nil {
		t.Error(err)
	}
	if len(l.SerialNumber.Bytes()) < 15 {
		t.Errorf("serial %s has too little entropy", l.SerialNumber)
	}
	user, err := ca.IssueClient(ClientCertRequest{SIPURI: "sip:alice@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(user.Leaf.URIs) != 1 || user.Leaf.URIs[0].String() != "sip:alice@example.test" ||
		user.Leaf.Subject.CommonName != "alice@example.test" {
		t.Errorf("user certificate names %v / %q", user.Leaf.URIs, user.Leaf.Subject.CommonName)
	}
	if len(user.Leaf.ExtKeyUsage) != 1 || user.Leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("user EKUs %v", user.Leaf.ExtKeyUsage)
	}
}

func TestKeyPairFilesAndReload(t *testing.T) {
	ca, err := NewCA(CAConfig{CRLDistributionPoints: []string{testDP}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	first, _ := ca.IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}})
	if err := first.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	kp, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := ca.IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}})
	if err := second.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if err := kp.Reload(); err != nil {
		t.Fatal(err)
	}
	if !kp.Certificate().Leaf.Equal(second.Leaf) {
		t.Fatal("Reload did not pick up the new certificate")
	}
	// A certificate and a key that do not belong together are refused and
	// the current pair stays.
	third, _ := ca.IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}})
	if err := os.WriteFile(certFile, EncodeCertPEM(third.Leaf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := kp.Reload(); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched pair: %v", err)
	}
	if !kp.Certificate().Leaf.Equal(second.Leaf) {
		t.Fatal("a failed Reload replaced the certificate")
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyPair(certFile, keyFile); err == nil {
		t.Fatal("loaded a world-readable key")
	}
}

func TestCRLCacheFetchesOnceUnderConcurrency(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	srv := p.server("localhost")
	errs := make(chan error, 50)
	for range 50 {
		go func() { errs <- p.crls.Check(context.Background(), srv.Leaf, p.ca.Certificate()) }()
	}
	for range 50 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := p.fetches.Load(); n != 1 {
		t.Fatalf("50 concurrent checks fetched the CRL %d times, want 1", n)
	}
}

func TestCRLCacheBacksOffAfterFailure(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{RetryAfterFailure: time.Hour})
	p.setMode(crlDown)
	srv := p.server("localhost")
	for range 5 {
		if err := p.crls.Check(context.Background(), srv.Leaf, p.ca.Certificate()); !errors.Is(err, ErrRevocationUnknown) {
			t.Fatalf("got %v, want ErrRevocationUnknown", err)
		}
	}
	if n := p.fetches.Load(); n != 1 {
		t.Fatalf("a failing distribution point was fetched %d times within the back-off, want 1", n)
	}
}

func TestCRLCacheKeepsValidCRLWhenRefreshFails(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	srv := p.server("localhost")
	ctx := context.Background()
	if err := p.crls.Check(ctx, srv.Leaf, p.ca.Certificate()); err != nil {
		t.Fatal(err)
	}
	p.setMode(crlGarbage)
	if err := p.crls.Refresh(ctx); err == nil {
		t.Fatal("refresh from a garbage endpoint reported success")
	}
	if err := p.crls.Check(ctx, srv.Leaf, p.ca.Certificate()); err != nil {
		t.Fatalf("a still-valid cached CRL was dropped after a failed refresh: %v", err)
	}
}

func TestCRLCacheRefusesRollback(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	srv := p.server("localhost")
	ctx := context.Background()
	old, _, _ := p.ca.CRL(context.Background())
	if err := p.ca.Revoke(context.Background(), srv.Leaf.SerialNumber, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if err := p.crls.Check(ctx, srv.Leaf, p.ca.Certificate()); !errors.Is(err, ErrRevoked) {
		t.Fatalf("got %v, want ErrRevoked", err)
	}
	// An attacker on the CRL's HTTP path replays the older CRL, signed
	// before the revocation: it must not un-revoke the certificate.
	p.serveFixed(old)
	if err := p.crls.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "is older than") {
		t.Fatalf("replayed older CRL: %v", err)
	}
	if err := p.crls.Check(ctx, srv.Leaf, p.ca.Certificate()); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after a replayed older CRL: %v, want ErrRevoked", err)
	}
}

func TestCRLCacheBoundedEntries(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{MaxEntries: 3})
	for i := range 10 {
		dp := p.dp + "?n=" + string(rune('a'+i))
		c, err := p.ca.IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}, CRLDistributionPoints: []string{dp}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.crls.Check(context.Background(), c.Leaf, p.ca.Certificate()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(p.crls.snapshot()); n != 3 {
		t.Fatalf("cache holds %d entries, want at most 3", n)
	}
}

func mustCRL(t *testing.T, ca *CA) *x509.RevocationList {
	t.Helper()
	der, _, err := ca.CRL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestParseRevocationReason(t *testing.T) {
	for r := range reasonNames {
		got, err := ParseRevocationReason(r.String())
		if err != nil || got != r {
			t.Fatalf("ParseRevocationReason(%q) = %v, %v", r.String(), got, err)
		}
	}
	for _, bad := range []string{"", "KeyCompromise", "reason(7)", "keyStolen"} {
		if _, err := ParseRevocationReason(bad); !errors.Is(err, ErrInvalidReason) {
			t.Fatalf("ParseRevocationReason(%q): %v", bad, err)
		}
	}
}

func TestOpenCANeverReplacesAnIncompleteCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenCA(dir, CAConfig{}); err != nil {
		t.Fatal(err)
	}
	keyBefore, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	for _, lost := range []string{CACertFile, CAStateFile} {
		t.Run("without "+lost, func(t *testing.T) {
			data, _ := os.ReadFile(filepath.Join(dir, lost))
			if err := os.Remove(filepath.Join(dir, lost)); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(filepath.Join(dir, lost), data, 0o600)
			_, err := OpenCA(dir, CAConfig{})
			if err == nil || !strings.Contains(err.Error(), lost) {
				t.Fatalf("got %v, want an error naming the missing %s", err, lost)
			}
			keyAfter, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
			if string(keyAfter) != string(keyBefore) {
				t.Fatal("the CA key was overwritten")
			}
		})
	}
	other, _ := NewCA(CAConfig{})
	if err := other.Save(dir); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("Save over an existing CA: %v", err)
	}
}
