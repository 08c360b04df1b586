package pki

import (
	"crypto/tls"
	"errors"
	"path/filepath"
	"testing"

	"github.com/parleyuc/parley/internal/configtest"
)

// TestConstructorsRefuseIncompleteConfigs builds each exported type from a
// zero Config and from Configs missing a required field or holding an
// inconsistent one: each gets an error naming the field, never a panic.
func TestConstructorsRefuseIncompleteConfigs(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	tests := []struct {
		name  string
		build func() error
		field string // what the error must name; "" when the Config is valid
	}{
		{"Verifier from a zero config", func() error { _, err := NewVerifier(VerifierConfig{}); return err }, "VerifierConfig.Roots"},
		{"Verifier without CRLs", func() error {
			_, err := NewVerifier(VerifierConfig{Roots: p.ca.CertPool()})
			return err
		}, "VerifierConfig.CRLs"},
		{"Verifier without Roots", func() error { _, err := NewVerifier(VerifierConfig{CRLs: p.crls}); return err }, "VerifierConfig.Roots"},
		{"CA from a zero config (documented as usable)", func() error { _, err := NewCA(CAConfig{}); return err }, ""},
		{"CA with a negative validity", func() error { _, err := NewCA(CAConfig{Validity: -1}); return err }, "CAConfig.Validity"},
		{"CA with a CRL validity under a minute", func() error { _, err := NewCA(CAConfig{CRLValidity: 1}); return err }, "CAConfig.CRLValidity"},
		{"CA with a distribution point that is not http", func() error {
			_, err := NewCA(CAConfig{CRLDistributionPoints: []string{"ldap://x"}})
			return err
		}, "CAConfig.CRLDistributionPoints"},
		{"CA loaded from a directory holding none", func() error { _, err := LoadCA(t.TempDir(), CAConfig{}); return err }, "load CA"},
		{"CRLCache with a negative fetch timeout", func() error {
			_, err := NewCRLCache(CRLCacheConfig{FetchTimeout: -1})
			return err
		}, "CRLCacheConfig.FetchTimeout"},
		{"CRLCache with negative MaxEntries", func() error { _, err := NewCRLCache(CRLCacheConfig{MaxEntries: -1}); return err }, "CRLCacheConfig.MaxEntries"},
		{"KeyPair from a zero certificate", func() error { _, err := NewKeyPair(tls.Certificate{}); return err }, "no certificate"},
		{"KeyPair from files that do not exist", func() error {
			_, err := LoadKeyPair(filepath.Join(t.TempDir(), "c.pem"), filepath.Join(t.TempDir(), "k.pem"))
			return err
		}, "k.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			configtest.Check(t, tt.field, tt.build)
		})
	}
}

// TestTLSBuildersRefuseNilVerifier: a configuration built with a nil
// Verifier or KeyPair fails its handshakes with a named error; it neither
// panics (a client presenting a certificate used to crash the server) nor
// accepts an unchecked peer.
func TestTLSBuildersRefuseNilVerifier(t *testing.T) {
	p := newTestPKI(t, CRLCacheConfig{})
	srv := keyPair(t, p.server("localhost"))
	alice := keyPair(t, p.user("sip:alice@example.test"))
	peer := keyPair(t, p.server("peer.example.test"))
	tests := []struct {
		name           string
		server, client *tls.Config
		want           error
	}{
		{"ServerTLSConfig(kp, nil), client presenting a certificate",
			ServerTLSConfig(srv, nil), ClientTLSConfig(alice, p.v, "localhost"), ErrNoVerifier},
		{"ServerTLSConfig(kp, nil), client presenting none",
			ServerTLSConfig(srv, nil), ClientTLSConfig(nil, p.v, "localhost"), ErrNoVerifier},
		{"ServerTLSConfig(nil, v)", ServerTLSConfig(nil, p.v), ClientTLSConfig(nil, p.v, "localhost"), ErrNoKeyPair},
		{"ServerTLSConfig with a zero KeyPair", ServerTLSConfig(&KeyPair{}, p.v), ClientTLSConfig(nil, p.v, "localhost"), ErrNoKeyPair},
		{"MutualTLSServerConfig(kp, nil)",
			MutualTLSServerConfig(srv, nil), ClientTLSConfig(peer, p.v, "localhost"), ErrNoVerifier},
		{"ClientTLSConfig(kp, nil)", ServerTLSConfig(srv, p.v), ClientTLSConfig(nil, nil, "localhost"), ErrNoVerifier},
		{"ClientTLSConfig with a zero KeyPair presents none",
			MutualTLSServerConfig(srv, p.v), ClientTLSConfig(&KeyPair{}, p.v, "localhost"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sErr, cErr := handshake(t, tt.server, tt.client)
			if sErr == nil && cErr == nil {
				t.Fatal("handshake succeeded")
			}
			if tt.want != nil && !errors.Is(sErr, tt.want) && !errors.Is(cErr, tt.want) {
				t.Fatalf("server %v, client %v; want %v", sErr, cErr, tt.want)
			}
		})
	}
}
