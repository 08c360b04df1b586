package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A renewed certificate written over the files is presented within an
// interval; a pair that does not match, or that Check refuses, is
// reported once and the current certificate stays; Watch ends with its
// context.
func TestWatchReloadsChangedFiles(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first, second, third := p.server("localhost"), p.server("localhost"), p.server("elsewhere.test")
	if err := first.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	kp, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	reloaded, failed := make(chan *x509.Certificate, 4), make(chan error, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- kp.Watch(ctx, WatchConfig{Interval: 10 * time.Millisecond,
			Check: func(leaf *x509.Certificate) error {
				if leaf.VerifyHostname("localhost") != nil {
					return errors.New("does not name localhost")
				}
				return nil
			},
			OnReload: func(leaf *x509.Certificate) { reloaded <- leaf },
			OnError:  func(err error) { failed <- err }})
	}()
	serial := func() string { return kp.Certificate().Leaf.SerialNumber.String() }

	if err := second.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	// The watcher may look between the two files' writes and report
	// the new certificate with the old key; then it takes the pair.
	for taken := false; !taken; {
		select {
		case leaf := <-reloaded:
			if leaf.SerialNumber.Cmp(second.Leaf.SerialNumber) != 0 || serial() != second.Leaf.SerialNumber.String() {
				t.Fatalf("reloaded %s, presenting %s; want the second certificate", leaf.SerialNumber, serial())
			}
			taken = true
		case err := <-failed:
			t.Logf("between the writes: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("the renewed certificate was not taken")
		}
	}

	// The third certificate's file with the second's key: a mismatch.
	if err := os.WriteFile(certFile, EncodeCertPEM(third.Leaf), 0o644); err != nil {
		t.Fatal(err)
	}
	expectRefused := func(what string) {
		t.Helper()
		select {
		case err := <-failed:
			t.Logf("%s: %v", what, err)
		case <-reloaded:
			t.Fatalf("%s was presented", what)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s was not reported", what)
		}
		time.Sleep(50 * time.Millisecond) // several more intervals: reported once, never taken
		if len(failed) != 0 || len(reloaded) != 0 || serial() != second.Leaf.SerialNumber.String() {
			t.Fatalf("after %s: %d more errors, %d reloads, presenting %s", what, len(failed), len(reloaded), serial())
		}
	}
	expectRefused("a certificate with another's key")
	if err := third.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	expectRefused("a certificate Check refuses")

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Watch returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not end with its context")
	}
	tc, _ := first.TLSCertificate()
	mem, _ := NewKeyPair(tc)
	if err := mem.Watch(context.Background(), WatchConfig{}); !errors.Is(err, ErrNotFromFiles) {
		t.Fatalf("Watch of a KeyPair not from files: %v", err)
	}
}
