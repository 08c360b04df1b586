package pki

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clock is a settable time source shared by a CA under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// crlMode selects what the test distribution point serves.
type crlMode int32

const (
	crlServe     crlMode = iota // the CA's CRL
	crlDown                     // HTTP 503
	crlGarbage                  // 200 with bytes that are not a CRL
	crlOversized                // 200 with a body over DefaultMaxCRLBytes
	crlTampered                 // the CA's CRL with its signature's last byte flipped
)

// testPKI is a CA whose CRL is served over HTTP on loopback, a CRLCache and
// a Verifier trusting the CA: the setup of a real deployment, in a test.
type testPKI struct {
	t       testing.TB
	clock   *clock
	ca      *CA
	serving atomic.Pointer[CA] // whose CRL the distribution point serves
	dp      string
	mode    atomic.Int32
	fetches atomic.Int32
	crls    *CRLCache
	v       *Verifier
}

func newTestPKI(t testing.TB, cacheCfg CRLCacheConfig, tweak ...func(*CAConfig)) *testPKI {
	t.Helper()
	p := &testPKI{t: t, clock: &clock{}}
	srv := httptest.NewServer(http.HandlerFunc(p.serveCRL))
	t.Cleanup(srv.Close)
	p.dp = srv.URL + "/ca.crl"
	cfg := CAConfig{CommonName: "Test CA", CRLDistributionPoints: []string{p.dp}, Now: p.clock.Now}
	for _, f := range tweak {
		f(&cfg)
	}
	var err error
	p.ca, err = NewCA(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.serving.Store(p.ca)
	p.crls, err = NewCRLCache(cacheCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.crls.Close() })
	p.v, err = NewVerifier(VerifierConfig{Roots: p.ca.CertPool(), CRLs: p.crls})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *testPKI) serveCRL(w http.ResponseWriter, r *http.Request) {
	p.fetches.Add(1)
	switch crlMode(p.mode.Load()) {
	case crlDown:
		http.Error(w, "down", http.StatusServiceUnavailable)
	case crlGarbage:
		_, _ = w.Write([]byte("this is not a CRL"))
	case crlOversized:
		chunk := make([]byte, 64<<10)
		for n := 0; n <= DefaultMaxCRLBytes; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	case crlTampered:
		der, _, err := p.serving.Load().CRL(context.Background())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		der = append([]byte(nil), der...)
		der[len(der)-1] ^= 0x01
		_, _ = w.Write(der)
	default:
		p.serving.Load().CRLHandler().ServeHTTP(w, r)
	}
}

func (p *testPKI) setMode(m crlMode) { p.mode.Store(int32(m)) }

func (p *testPKI) server(names ...string) *Certificate {
	p.t.Helper()
	c, err := p.ca.IssueServer(ServerCertRequest{DNSNames: names, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ClientAuth: true})
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

func (p *testPKI) user(uri string) *Certificate {
	p.t.Helper()
	c, err := p.ca.IssueClient(ClientCertRequest{SIPURI: uri})
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// custom issues a certificate from an arbitrary template with the CA's key,
// for certificates the CA's API rightly refuses to make.
func (p *testPKI) custom(tmpl *x509.Certificate) *Certificate {
	p.t.Helper()
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		p.t.Fatal(err)
	}
	tmpl.SerialNumber = newSerial()
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca.cert, key.Public(), p.ca.key)
	if err != nil {
		p.t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	return &Certificate{Leaf: leaf, Issuer: p.ca.cert, Key: key}
}

func keyPair(t testing.TB, c *Certificate) *KeyPair {
	t.Helper()
	tc, err := c.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := NewKeyPair(tc)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// handshake runs a real TLS handshake over loopback TCP between a server
// and a client configuration and returns each side's error. The server
// writes one byte after a successful handshake and the client reads it, so
// a refusal of the client's certificate (which TLS 1.3 reports after the
// client's handshake is done) reaches the client's error too.
func handshake(t testing.TB, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(conn, server)
		err = tc.HandshakeContext(context.Background())
		if err == nil {
			_, err = tc.Write([]byte{1})
		}
		done <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(conn, client)
	clientErr = tc.HandshakeContext(context.Background())
	if clientErr == nil {
		var b [1]byte
		_, clientErr = io.ReadFull(tc, b[:])
	}
	_ = conn.Close() // a client that failed before sending must not leave the server waiting
	return <-done, clientErr
}

func wantErr(t *testing.T, err, target error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v (%s)", target, msg)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("got %v, want errors.Is %v", err, target)
	}
}

func otherCA(t *testing.T, dp string) *CA {
	t.Helper()
	ca, err := NewCA(CAConfig{CommonName: "Stranger CA", CRLDistributionPoints: []string{dp}})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func name(cn string) pkix.Name { return pkix.Name{CommonName: cn} }
