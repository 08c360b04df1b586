package pki

import (
	"context"
	"crypto/fips140"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// Every test here is a real TLS handshake on loopback, with the CRL fetched
// over HTTP from the CA's distribution point.

func TestValidChainAccepted(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	srv := p.server("localhost")
	for _, name := range []string{"localhost", "127.0.0.1"} {
		sErr, cErr := handshake(t, ServerTLSConfig(keyPair(t, srv), p.v), ClientTLSConfig(nil, p.v, name))
		if sErr != nil || cErr != nil {
			t.Fatalf("dial %s: server %v, client %v", name, sErr, cErr)
		}
	}
	if got := p.fetches.Load(); got != 1 {
		t.Errorf("CRL fetched %d times for two handshakes, want 1 (cached)", got)
	}
}

func TestUserCertificateAcceptedOnClientToServerTLS(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	srv := p.server("localhost")
	alice := p.user("sip:alice@example.test")
	var seen *x509.Certificate
	sc := ServerTLSConfig(keyPair(t, srv), p.v)
	verify := sc.VerifyConnection
	sc.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 {
			seen = cs.PeerCertificates[0]
		}
		return verify(cs)
	}
	sErr, cErr := handshake(t, sc, ClientTLSConfig(keyPair(t, alice), p.v, "localhost"))
	if sErr != nil || cErr != nil {
		t.Fatalf("server %v, client %v", sErr, cErr)
	}
	if seen == nil || len(seen.URIs) != 1 || seen.URIs[0].String() != "sip:alice@example.test" {
		t.Fatalf("server saw client certificate %v, want one naming sip:alice@example.test", seen)
	}
}

func TestRevokedServerCertificateRefusedByClient(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	srv := p.server("localhost")
	if err := p.ca.Revoke(context.Background(), srv.Leaf.SerialNumber, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	_, cErr := handshake(t, ServerTLSConfig(keyPair(t, srv), p.v), ClientTLSConfig(nil, p.v, "localhost"))
	wantErr(t, cErr, ErrRevoked, "client must refuse a revoked server certificate")
	var re *RevokedError
	if !errors.As(cErr, &re) || re.Reason != ReasonKeyCompromise || re.Serial != srv.Leaf.SerialNumber.Text(16) {
		t.Fatalf("error %v does not say which serial was revoked and why", cErr)
	}
}

func TestRevokedClientRefusedByMutualTLSServerAfterNextRefresh(t *testing.T) {
	const refresh = 100 * time.Millisecond
	p := newTestPKI(t, CRLCacheConfig{RefreshInterval: refresh})
	front := p.server("fe1.example.test")
	peer := p.server("fe2.example.test")
	server := MutualTLSServerConfig(keyPair(t, front), p.v)
	client := ClientTLSConfig(keyPair(t, peer), p.v, "fe1.example.test")

	sErr, cErr := handshake(t, server, client)
	if sErr != nil || cErr != nil {
		t.Fatalf("before revocation: server %v, client %v", sErr, cErr)
	}
	if err := p.ca.Revoke(context.Background(), peer.Leaf.SerialNumber, ReasonCessationOfOperation); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * refresh)
	for {
		sErr, cErr = handshake(t, server, client)
		if sErr != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked peer still accepted %v after revocation; refresh interval %v", 20*refresh, refresh)
		}
		time.Sleep(refresh / 4)
	}
	wantErr(t, sErr, ErrRevoked, "mutual-TLS server must refuse a revoked peer")
	if cErr == nil {
		t.Fatal("client was not told its certificate was refused")
	}
}

func TestMutualTLSServerRequiresCertificate(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	front := p.server("fe1.example.test")
	sErr, _ := handshake(t, MutualTLSServerConfig(keyPair(t, front), p.v), ClientTLSConfig(nil, p.v, "fe1.example.test"))
	if sErr == nil {
		t.Fatal("mutual-TLS server accepted a peer with no certificate")
	}
}

func TestMutualTLSServerChecksPeerName(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	front := p.server("edge.example.test")
	partner := p.server("edge.partner.test")
	client := ClientTLSConfig(keyPair(t, partner), p.v, "edge.example.test")

	sErr, _ := handshake(t, MutualTLSServerConfig(keyPair(t, front), p.v, "partner.test", "edge.partner.test"), client)
	if sErr != nil {
		t.Fatalf("partner naming an expected domain refused: %v", sErr)
	}
	sErr, _ = handshake(t, MutualTLSServerConfig(keyPair(t, front), p.v, "other.test"), client)
	var he x509.HostnameError
	if !errors.As(sErr, &he) {
		t.Fatalf("partner certificate for another domain: got %v, want a HostnameError", sErr)
	}
}

func TestMutualTLSPeerNeedsBothEKUs(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	front := p.server("fe1.example.test")
	// A user's certificate is clientAuth only: it cannot pass as a server.
	alice := p.user("sip:alice@example.test")
	sErr, _ := handshake(t, MutualTLSServerConfig(keyPair(t, front), p.v), ClientTLSConfig(keyPair(t, alice), p.v, "fe1.example.test"))
	wantErr(t, sErr, ErrExtKeyUsage, "peer server without serverAuth")
	if !strings.Contains(sErr.Error(), "serverAuth") {
		t.Errorf("error %q does not name the missing EKU", sErr)
	}
}

func TestCertificateRefusals(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	past := time.Now().Add(-72 * time.Hour)

	noServerAuth := p.custom(&x509.Certificate{Subject: name("localhost"), DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CRLDistributionPoints: []string{p.dp}})
	noEKU := p.custom(&x509.Certificate{Subject: name("localhost"), DNSNames: []string{"localhost"},
		CRLDistributionPoints: []string{p.dp}})
	anyEKU := p.custom(&x509.Certificate{Subject: name("localhost"), DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CRLDistributionPoints: []string{p.dp}})
	noDP := p.custom(&x509.Certificate{Subject: name("localhost"), DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	ldapOnlyDP := p.custom(&x509.Certificate{Subject: name("localhost"), DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, CRLDistributionPoints: []string{"ldap://dir.example.test/cn=CRL"}})
	expired := p.custom(&x509.Certificate{Subject: name("localhost"), DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, CRLDistributionPoints: []string{p.dp},
		NotBefore: past, NotAfter: past.Add(24 * time.Hour)})
	stranger, err := otherCA(t, p.dp).IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	good := p.server("localhost")

	tests := []struct {
		name   string
		cert   *Certificate
		dial   string
		target error            // errors.Is target, or nil
		as     func(error) bool // errors.As check, or nil
		says   string           // the error must say this
	}{
		{name: "certificate without serverAuth EKU refused", cert: noServerAuth, dial: "localhost",
			target: ErrExtKeyUsage, says: "serverAuth"},
		{name: "certificate with no EKU extension refused", cert: noEKU, dial: "localhost",
			target: ErrExtKeyUsage, says: "serverAuth"},
		{name: "certificate with only anyExtendedKeyUsage refused", cert: anyEKU, dial: "localhost",
			target: ErrExtKeyUsage, says: "serverAuth"},
		{name: "server certificate without a distribution point refused", cert: noDP, dial: "localhost",
			target: ErrNoDistributionPoint, says: "distribution point"},
		{name: "server certificate with only a non-HTTP distribution point refused", cert: ldapOnlyDP, dial: "localhost",
			target: ErrNoDistributionPoint, says: "distribution point"},
		{name: "hostname mismatch refused", cert: good, dial: "evil.example.test",
			as: func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) }, says: "evil.example.test"},
		{name: "expired certificate refused", cert: expired, dial: "localhost",
			as: func(err error) bool {
				var e x509.CertificateInvalidError
				return errors.As(err, &e) && e.Reason == x509.Expired
			}, says: "expired"},
		{name: "unknown CA refused", cert: stranger, dial: "localhost",
			as: func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) }, says: "unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, cErr := handshake(t, ServerTLSConfig(keyPair(t, tt.cert), p.v), ClientTLSConfig(nil, p.v, tt.dial))
			if cErr == nil {
				t.Fatal("handshake succeeded")
			}
			if tt.target != nil && !errors.Is(cErr, tt.target) {
				t.Fatalf("got %v, want %v", cErr, tt.target)
			}
			if tt.as != nil && !tt.as(cErr) {
				t.Fatalf("got %v of the wrong kind", cErr)
			}
			if !strings.Contains(cErr.Error(), tt.says) {
				t.Fatalf("error %q does not say %q", cErr, tt.says)
			}
		})
	}
}

func TestCRLUnavailableFailsClosed(t *testing.T) {
	tests := []struct {
		name string
		mode crlMode
		says string
	}{
		{"CRL endpoint down", crlDown, "503"},
		{"CRL endpoint serving garbage", crlGarbage, "parse CRL"},
		{"CRL endpoint serving an oversized body", crlOversized, "larger than the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPKI(t, CRLCacheConfig{})
			p.setMode(tt.mode)
			srv := p.server("localhost")
			_, cErr := handshake(t, ServerTLSConfig(keyPair(t, srv), p.v), ClientTLSConfig(nil, p.v, "localhost"))
			wantErr(t, cErr, ErrRevocationUnknown, tt.name)
			if !strings.Contains(cErr.Error(), tt.says) || !strings.Contains(cErr.Error(), p.dp) {
				t.Fatalf("error %q does not say %q at %s", cErr, tt.says, p.dp)
			}
		})
	}

	t.Run("CRL endpoint unreachable", func(t *testing.T) {
		p := newTestPKI(t, CRLCacheConfig{FetchTimeout: time.Second})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		deadDP := "http://" + ln.Addr().String() + "/ca.crl"
		ln.Close() // nothing listens there now
		srv, err := p.ca.IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}, CRLDistributionPoints: []string{deadDP}})
		if err != nil {
			t.Fatal(err)
		}
		_, cErr := handshake(t, ServerTLSConfig(keyPair(t, srv), p.v), ClientTLSConfig(nil, p.v, "localhost"))
		wantErr(t, cErr, ErrRevocationUnknown, "unreachable distribution point")
		if !strings.Contains(cErr.Error(), "connection refused") {
			t.Fatalf("error %q does not say the connection was refused", cErr)
		}
	})

	t.Run("CRL signed by another CA", func(t *testing.T) {
		p := newTestPKI(t, CRLCacheConfig{})
		srv := p.server("localhost")
		// The distribution point serves the CRL of an impostor CA with the
		// same name: only the signature tells them apart.
		impostor, err := NewCA(CAConfig{CommonName: "Test CA", CRLDistributionPoints: []string{p.dp}})
		if err != nil {
			t.Fatal(err)
		}
		p.serving.Store(impostor)
		_, cErr := handshake(t, ServerTLSConfig(keyPair(t, srv), p.v), ClientTLSConfig(nil, p.v, "localhost"))
		wantErr(t, cErr, ErrRevocationUnknown, "CRL with a foreign signature")
		if !strings.Contains(cErr.Error(), "authority key identifier does not match") {
			t.Fatalf("error %q does not say the CRL is from another key", cErr)
		}
	})

	t.Run("CRL with a tampered signature", func(t *testing.T) {
		p := newTestPKI(t, CRLCacheConfig{})
		p.setMode(crlTampered)
		srv := p.server("localhost")
		_, cErr := handshake(t, ServerTLSConfig(keyPair(t, srv), p.v), ClientTLSConfig(nil, p.v, "localhost"))
		wantErr(t, cErr, ErrRevocationUnknown, "tampered CRL")
		if !strings.Contains(cErr.Error(), "not signed by") {
			t.Fatalf("error %q does not say the signature is wrong", cErr)
		}
	})
}

func TestExpiredCachedCRLFetchedAgain(t *testing.T) {
	c := &clock{}
	start := time.Now()
	c.Set(start)
	p := newTestPKI(t, CRLCacheConfig{RefreshInterval: time.Hour, RetryAfterFailure: time.Nanosecond, Now: c.Now},
		func(cfg *CAConfig) { cfg.CRLValidity = time.Minute; cfg.Now = c.Now })
	srv := p.server("localhost")
	server, client := ServerTLSConfig(keyPair(t, srv), p.v), ClientTLSConfig(nil, p.v, "localhost")
	if sErr, cErr := handshake(t, server, client); sErr != nil || cErr != nil {
		t.Fatalf("server %v, client %v", sErr, cErr)
	}
	// Past the cached CRL's nextUpdate, with the distribution point down,
	// the expired copy is not used: fail closed.
	c.Set(start.Add(2 * time.Minute))
	p.setMode(crlDown)
	_, cErr := handshake(t, server, client)
	wantErr(t, cErr, ErrRevocationUnknown, "cached CRL past nextUpdate, distribution point down")
	// Once the distribution point answers, the next handshake fetches the
	// CA's current CRL.
	p.setMode(crlServe)
	c.Set(start.Add(2*time.Minute + time.Second)) // past the failure back-off
	if sErr, cErr := handshake(t, server, client); sErr != nil || cErr != nil {
		t.Fatalf("after the CRL was published again: server %v, client %v", sErr, cErr)
	}
	if n := p.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3 (first, failed refetch, refetch)", n)
	}
}

func TestExpiredCRLRefused(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{}, func(c *CAConfig) { c.CRLValidity = time.Minute })
	srv := p.server("localhost")
	// The CA's clock is behind: the CRL it signs has passed nextUpdate
	// when it is fetched.
	p.clock.Set(time.Now().Add(-2 * time.Minute))
	_, cErr := handshake(t, ServerTLSConfig(keyPair(t, srv), p.v), ClientTLSConfig(nil, p.v, "localhost"))
	wantErr(t, cErr, ErrRevocationUnknown, "expired CRL")
	if !strings.Contains(cErr.Error(), "expired at") {
		t.Fatalf("error %q does not say the CRL expired", cErr)
	}
}

func TestFIPSOnlyParameters(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	srv := p.server("localhost")
	server := ServerTLSConfig(keyPair(t, srv), p.v)

	// Go's FIPS mode will not even offer these, so no Go client can send
	// such a hello; the server's refusal is tested in the non-FIPS run.
	refused := []struct {
		name, says string
		tweak      func(*tls.Config)
	}{
		{"TLS 1.1 refused", "unsupported versions", func(c *tls.Config) {
			c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		}},
		{"TLS 1.2 CBC suite refused", "no cipher suite supported", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
		}},
		{"X25519 alone refused", "no key exchanges supported", func(c *tls.Config) {
			c.CurvePreferences = []tls.CurveID{tls.X25519}
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if fips140.Enabled() {
				t.Skip("Go's FIPS 140-3 mode refuses to offer this")
			}
			c := ClientTLSConfig(nil, p.v, "localhost")
			tt.tweak(c)
			sErr, _ := handshake(t, server, c)
			if sErr == nil || !strings.Contains(sErr.Error(), tt.says) {
				t.Fatalf("server error %v, want one saying %q", sErr, tt.says)
			}
		})
	}
	t.Run("TLS 1.3 negotiated by default", func(t *testing.T) {
		var got uint16
		c := ClientTLSConfig(nil, p.v, "localhost")
		verify := c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error { got = cs.Version; return verify(cs) }
		if sErr, cErr := handshake(t, server, c); sErr != nil || cErr != nil {
			t.Fatalf("server %v, client %v", sErr, cErr)
		}
		if got != tls.VersionTLS13 {
			t.Fatalf("negotiated %s, want TLS 1.3", tls.VersionName(got))
		}
	})
	t.Run("ChaCha20-Poly1305 refused", func(t *testing.T) {
		err := checkSuite(tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_CHACHA20_POLY1305_SHA256})
		wantErr(t, err, ErrCipherSuite, "ChaCha20 is not FIPS-approved")
	})
}

func TestCertificateRotationWithoutRestart(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	first, second := p.server("localhost"), p.server("localhost")
	kp := keyPair(t, first)
	server := ServerTLSConfig(kp, p.v)

	presented := func() string {
		var serial string
		c := ClientTLSConfig(nil, p.v, "localhost")
		verify := c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			serial = cs.PeerCertificates[0].SerialNumber.Text(16)
			return verify(cs)
		}
		if sErr, cErr := handshake(t, server, c); sErr != nil || cErr != nil {
			t.Fatalf("server %v, client %v", sErr, cErr)
		}
		return serial
	}
	if got := presented(); got != first.Leaf.SerialNumber.Text(16) {
		t.Fatalf("presented %s, want the first certificate", got)
	}
	tc, _ := second.TLSCertificate()
	if err := kp.Set(tc); err != nil {
		t.Fatal(err)
	}
	if got := presented(); got != second.Leaf.SerialNumber.Text(16) {
		t.Fatalf("presented %s after rotation, want the second certificate", got)
	}
}

func TestRootRotation(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	srv := p.server("localhost")
	server, client := ServerTLSConfig(keyPair(t, srv), p.v), ClientTLSConfig(nil, p.v, "localhost")
	p.v.SetRoots(otherCA(t, p.dp).CertPool())
	_, cErr := handshake(t, server, client)
	var ua x509.UnknownAuthorityError
	if !errors.As(cErr, &ua) {
		t.Fatalf("after the roots were replaced: got %v, want unknown authority", cErr)
	}
	p.v.SetRoots(p.ca.CertPool())
	if sErr, cErr := handshake(t, server, client); sErr != nil || cErr != nil {
		t.Fatalf("after the roots were restored: server %v, client %v", sErr, cErr)
	}
}

func TestVerifyNeedsServerName(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	srv := p.server("localhost")
	// Dialing an IP with no server name: TLS sends no SNI, there is no name
	// to check, and the handshake must fail rather than skip the check.
	_, cErr := handshake(t, ServerTLSConfig(keyPair(t, srv), p.v), ClientTLSConfig(nil, p.v, ""))
	if cErr == nil || !strings.Contains(cErr.Error(), "no server name") {
		t.Fatalf("got %v, want a refusal for the missing server name", cErr)
	}
	_, err := p.v.Verify(context.Background(), nil, VerifyOptions{Purpose: ClientAuth})
	wantErr(t, err, ErrNoCertificate, "no certificate")
}

// TestClientTLSConfigByName: a server dialed by name is verified against
// that name; one dialed by address against the names given for that.
func TestClientTLSConfigByName(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	partner := keyPair(t, p.server("edge.partner.test"))
	internal := keyPair(t, p.server("localhost"))
	cfg := ClientTLSConfigByName(nil, p.v, "localhost")
	dial := func(host string) *tls.Config { // as sipgo and net/http do
		c := cfg.Clone()
		c.ServerName = host
		return c
	}
	for _, tc := range []struct {
		what   string
		server *KeyPair
		host   string
		ok     bool
	}{
		{"a partner dialed by its name", partner, "edge.partner.test", true},
		{"a partner dialed by another name", partner, "edge.other.test", false},
		{"the internal server dialed by address", internal, "127.0.0.1", true},
		{"a partner dialed by address: it does not carry localhost", partner, "127.0.0.1", false},
	} {
		_, cErr := handshake(t, ServerTLSConfig(tc.server, p.v), dial(tc.host))
		if (cErr == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.what, cErr, tc.ok)
		}
	}
	none := ClientTLSConfigByName(nil, p.v).Clone()
	none.ServerName = "127.0.0.1"
	if _, cErr := handshake(t, ServerTLSConfig(internal, p.v), none); cErr == nil {
		t.Fatal("a server dialed by address with no names to verify it by was accepted")
	}
}
