package pki

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requireTool skips the test when a third-party tool is missing on a
// developer's machine, and fails it in CI, where .ci/run installs it.
func requireTool(t *testing.T, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run must install it", tool)
		}
		t.Skipf("%s is not installed (Debian: apt-get install openssl)", tool)
	}
	return path
}

// TestOpenSSLVerifiesOurCRL checks our certificates and CRL with an
// independent implementation: OpenSSL accepts a good server certificate for
// TLS server use with the CRL checked, and refuses a revoked one.
func TestOpenSSLVerifiesOurCRL(t *testing.T) {
	openssl := requireTool(t, "openssl")
	ca, err := NewCA(CAConfig{CRLDistributionPoints: []string{testDP}})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := ca.IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}})
	revoked, _ := ca.IssueServer(ServerCertRequest{DNSNames: []string{"localhost"}})
	user, _ := ca.IssueClient(ClientCertRequest{SIPURI: "sip:alice@example.test"})
	if err := ca.Revoke(context.Background(), revoked.Leaf.SerialNumber, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	der, _, err := ca.CRL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.pem", EncodeCertPEM(ca.Certificate()))
	crlDER := write("crl.der", der)
	goodFile := write("good.pem", EncodeCertPEM(good.Leaf))
	revokedFile := write("revoked.pem", EncodeCertPEM(revoked.Leaf))
	userFile := write("user.pem", EncodeCertPEM(user.Leaf))

	// OpenSSL reads our DER CRL and turns it into PEM: a parse check.
	crlPEM := filepath.Join(dir, "crl.pem")
	if out, err := exec.Command(openssl, "crl", "-inform", "DER", "-in", crlDER, "-out", crlPEM).CombinedOutput(); err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	// And verifies its signature with our CA.
	if out, err := exec.Command(openssl, "crl", "-in", crlPEM, "-CAfile", caFile, "-noout").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "verify OK") {
		t.Fatalf("openssl crl signature check: %v\n%s", err, out)
	}

	verify := func(purpose, leaf string) (string, error) {
		out, err := exec.Command(openssl, "verify", "-x509_strict", "-crl_check", "-purpose", purpose,
			"-CAfile", caFile, "-CRLfile", crlPEM, leaf).CombinedOutput()
		return string(out), err
	}
	if out, err := verify("sslserver", goodFile); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("openssl refused the good server certificate: %v\n%s", err, out)
	}
	if out, err := verify("sslclient", userFile); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("openssl refused the user certificate: %v\n%s", err, out)
	}
	out, err := verify("sslserver", revokedFile)
	if err == nil || !strings.Contains(out, "certificate revoked") {
		t.Fatalf("openssl accepted the revoked certificate: %v\n%s", err, out)
	}
}
