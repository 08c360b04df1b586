package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needOpenSSL is the openssl command, or the test skips (fails in CI).
func needOpenSSL(t *testing.T) string {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is not installed; .ci/run must install it")
		}
		t.Skip("openssl is not installed (Debian: apt-get install openssl)")
	}
	return openssl
}

// otherCA is a CA made with OpenSSL, as an organization's own PKI would
// be, issuing server certificates for localhost.
type otherCA struct {
	t       *testing.T
	openssl string
	dir     string
}

func newOtherCA(t *testing.T) *otherCA {
	ca := &otherCA{t: t, openssl: needOpenSSL(t), dir: t.TempDir()}
	ca.run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-sha256",
		"-keyout", ca.path("ca.key"), "-out", ca.path("ca.crt"), "-subj", "/CN=Other Organization CA", "-days", "30")
	return ca
}

func (ca *otherCA) path(name string) string { return filepath.Join(ca.dir, name) }

func (ca *otherCA) run(args ...string) string {
	ca.t.Helper()
	out, err := exec.Command(ca.openssl, args...).CombinedOutput()
	if err != nil {
		ca.t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// issue writes a certificate for localhost and 127.0.0.1 with common
// name cn, and its key (mode 0600), into dir as tls.crt and tls.key,
// each replaced at once (a rename), as a renewal tool would.
func (ca *otherCA) issue(cn, dir string) {
	ca.t.Helper()
	key, csr, crt, ext := ca.path(cn+".key"), ca.path(cn+".csr"), ca.path(cn+".crt"), ca.path(cn+".ext")
	if err := os.WriteFile(ext, []byte("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"+
		"crlDistributionPoints=URI:http://127.0.0.1:1/other.crl\n"), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	ca.run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN="+cn)
	ca.run("x509", "-req", "-sha256", "-in", csr, "-CA", ca.path("ca.crt"), "-CAkey", ca.path("ca.key"), "-CAcreateserial",
		"-out", crt, "-days", "10", "-extfile", ext)
	for _, f := range []struct{ from, to string }{{key, "tls.key"}, {crt, "tls.crt"}} {
		data, err := os.ReadFile(f.from)
		if err != nil {
			ca.t.Fatal(err)
		}
		tmp := filepath.Join(dir, "."+f.to+".new")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			ca.t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.to)); err != nil {
			ca.t.Fatal(err)
		}
	}
}

// roots trusts the other CA only.
func (ca *otherCA) roots() *x509.CertPool {
	data, err := os.ReadFile(ca.path("ca.crt"))
	if err != nil {
		ca.t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(data)
	return p
}

// TestOwnCertificateReloaded: a server started with -tls-cert and
// -tls-key from another CA presents that certificate (openssl s_client
// verifies it against that CA); the files replaced with a renewed
// certificate, new handshakes get it within seconds, and a connection
// made before keeps working.
func TestOwnCertificateReloaded(t *testing.T) {
	ca := newOtherCA(t)
	certDir := t.TempDir()
	ca.issue("parley-first", certDir)
	s := startServer(t, t.TempDir(), "-tls-cert", filepath.Join(certDir, "tls.crt"), "-tls-key", filepath.Join(certDir, "tls.key"))

	presented := func(listener string) string {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.listeners[listener],
			&tls.Config{RootCAs: ca.roots(), ServerName: "localhost", MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("%s: %v", listener, err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	for _, l := range []string{"https", "sip-tls", "sip-wss", "turns", "edge-users"} {
		if cn := presented(l); cn != "parley-first" {
			t.Fatalf("%s presents %q, want the configured certificate", l, cn)
		}
	}
	sClient := func() string {
		t.Helper()
		cmd := exec.Command(ca.openssl, "s_client", "-connect", s.listeners["https"], "-CAfile", ca.path("ca.crt"),
			"-servername", "localhost", "-verify_hostname", "localhost", "-verify_return_error")
		cmd.Stdin = strings.NewReader("")
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), "Verify return code: 0 (ok)") {
			t.Fatalf("openssl s_client did not verify the server against the other CA:\n%s", out)
		}
		return string(out)
	}
	if out := sClient(); !strings.Contains(out, "CN = parley-first") {
		t.Fatalf("openssl s_client does not see the configured certificate:\n%s", out)
	}

	// A connection established before the renewal, kept alive.
	kept, err := tls.Dial("tcp", s.listeners["https"], &tls.Config{RootCAs: ca.roots(), ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	br := bufio.NewReader(kept)
	get := func() int {
		t.Helper()
		_ = kept.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(kept, "GET /web/style.css HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			t.Fatalf("the established connection: %v", err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("the established connection: %v", err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("GET over the established connection: %d", code)
	}

	ca.issue("parley-renewed", certDir)
	deadline := time.Now().Add(10 * time.Second)
	for presented("https") != "parley-renewed" {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not presented within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := sClient(); !strings.Contains(out, "CN = parley-renewed") {
		t.Fatalf("openssl s_client does not see the renewed certificate:\n%s", out)
	}
	for _, l := range []string{"sip-tls", "sip-wss", "turns", "edge-users"} {
		if cn := presented(l); cn != "parley-renewed" {
			t.Fatalf("%s presents %q after the renewal", l, cn)
		}
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("GET over the connection established before the renewal: %d", code)
	}
	if cn := kept.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "parley-first" {
		t.Fatalf("the established connection's certificate changed: %q", cn)
	}
	if !strings.Contains(s.logs.String(), "certificate reloaded") {
		t.Fatalf("the reload was not logged:\n%s", s.logs.String())
	}
}

// TestOwnCertificateRefusals: start-up refuses, naming the field, a
// certificate that has expired, that does not name the -public host,
// whose key is another's, and a certificate without its key.
func TestOwnCertificateRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, notAfter time.Time, dnsName string, key *ecdsa.PrivateKey) (string, string) {
		t.Helper()
		own, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: notAfter, DNSNames: []string{dnsName},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &own.PublicKey, own)
		if err != nil {
			t.Fatal(err)
		}
		if key == nil {
			key = own
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
		_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
		return certFile, keyFile
	}
	expiredCert, expiredKey := write("expired", time.Now().Add(-time.Hour), "localhost", nil)
	goodCert, goodKey := write("good", time.Now().Add(240*time.Hour), "localhost", nil)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mismatchCert, mismatchKey := write("mismatch", time.Now().Add(240*time.Hour), "localhost", other)

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"expired", []string{"-tls-cert", expiredCert, "-tls-key", expiredKey}, `field "tls_cert" ` + expiredCert + ": expired on"},
		{"not naming -public", []string{"-tls-cert", goodCert, "-tls-key", goodKey, "-public", publicIP}, "does not name " + publicIP},
		{"another's key", []string{"-tls-cert", mismatchCert, "-tls-key", mismatchKey}, "does not match"},
		{"no key", []string{"-tls-cert", goodCert}, `"tls_key" (-tls-key)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			err := run(context.Background(), append(allOnPortZero(data), tc.args...), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
