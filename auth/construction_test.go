package auth

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/parleyuc/parley/internal/configtest"
)

// TestConstructorsRefuseIncompleteConfigs builds each exported type from a
// zero Config and from Configs missing a required field or holding an
// inconsistent one: each gets an error naming the field, never a panic.
func TestConstructorsRefuseIncompleteConfigs(t *testing.T) {
	dir := NewMemoryDirectory()
	tests := []struct {
		name  string
		build func() error
		field string // what the error must name; "" when the Config is valid
	}{
		{"Authenticator from a zero config", func() error { return newAndClose(Config{}) }, "Config.Directory"},
		{"Authenticator without a realm", func() error { return newAndClose(Config{Directory: dir}) }, "Config.Realm"},
		{"Authenticator without a directory", func() error { return newAndClose(Config{Realm: "example.test"}) }, "Config.Directory"},
		{"Authenticator trusting edges without their CA", func() error {
			return newAndClose(Config{Directory: dir, Realm: "example.test", Edges: []string{"edge.example.test"}})
		}, "Config.EdgeCA"},
		{"Authenticator trusting peers without their CA", func() error {
			return newAndClose(Config{Directory: dir, Realm: "example.test", Peers: []string{"fe2.example.test"}})
		}, "Config.EdgeCA"},
		{"Authenticator with a negative nonce lifetime", func() error {
			return newAndClose(Config{Directory: dir, Realm: "example.test", NonceTTL: -1})
		}, "Config.NonceTTL"},
		{"Authenticator with one nonce", func() error {
			return newAndClose(Config{Directory: dir, Realm: "example.test", MaxNonces: 1})
		}, "Config.MaxNonces"},
		{"Authenticator with a provider lacking its issuer", func() error {
			return newAndClose(Config{Directory: dir, Realm: "example.test", OIDC: []OIDCProvider{{Audience: "parley"}}})
		}, "OIDCProvider.Issuer"},
		{"Authenticator with a provider lacking its audience", func() error {
			return newAndClose(Config{Directory: dir, Realm: "example.test", OIDC: []OIDCProvider{{Issuer: "https://idp.example.test"}}})
		}, "OIDCProvider.Audience"},
		{"Authenticator with a license claim but no value", func() error {
			return newAndClose(Config{Directory: dir, Realm: "example.test", OIDC: []OIDCProvider{{Issuer: "https://idp.example.test", Audience: "parley", LicenseClaim: "groups"}}})
		}, "OIDCProvider.LicenseClaim"},
		{"Authenticator with an admin value but no claim", func() error {
			return newAndClose(Config{Directory: dir, Realm: "example.test", OIDC: []OIDCProvider{{Issuer: "https://idp.example.test", Audience: "parley", AdminValue: "admins"}}})
		}, "OIDCProvider.AdminClaim"},
		{"Authenticator with a provider for an empty domain", func() error {
			return newAndClose(Config{Directory: dir, Realm: "example.test", OIDC: []OIDCProvider{{Issuer: "https://idp.example.test", Audience: "parley", Domains: []string{""}}}})
		}, "OIDCProvider.Domains[0]"},
		{"Authenticator with a scope holding a space", func() error {
			return newAndClose(Config{Directory: dir, Realm: "example.test", OIDC: []OIDCProvider{{Issuer: "https://idp.example.test", Audience: "parley", Scopes: []string{"a b"}}}})
		}, "OIDCProvider.Scopes[0]"},
		{"Authenticator with a user domain holding an @", func() error {
			return newAndClose(Config{Directory: dir, Realm: "example.test", OIDC: []OIDCProvider{{Issuer: "https://idp.example.test", Audience: "parley", UserDomain: "a@b"}}})
		}, "OIDCProvider.UserDomain"},
		{"Authenticator trusting edges with their CA", func() error {
			return newAndClose(Config{Directory: dir, Realm: "example.test", EdgeCA: &x509.Certificate{}, Edges: []string{"e"}})
		}, ""},
		{"Authenticator with the required fields", func() error { return newAndClose(Config{Directory: dir, Realm: "example.test"}) }, ""},
		{"Throttle from a zero config (documented defaults)", func() error { _, err := NewThrottle(ThrottleConfig{}); return err }, ""},
		{"Throttle with a rate but no burst", func() error {
			_, err := NewThrottle(ThrottleConfig{PerSubnet: Limit{Rate: 1}})
			return err
		}, "ThrottleConfig.PerSubnet"},
		{"Throttle with two keys", func() error { _, err := NewThrottle(ThrottleConfig{MaxKeys: 2}); return err }, "ThrottleConfig.MaxKeys"},
		{"Directory loaded from a file that does not exist", func() error {
			_, err := LoadDirectory(filepath.Join(t.TempDir(), "users.json"))
			return err
		}, "users.json"},
		{"User without an address", func() error { return NewMemoryDirectory().PutUser(User{}) }, "uri"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			configtest.Check(t, tt.field, tt.build)
		})
	}
}

func newAndClose(cfg Config) error {
	a, err := New(cfg)
	if err == nil {
		_ = a.Close()
	}
	return err
}

// nilDirectory answers (nil, nil) for everything: an application's
// Directory saying "not found" the wrong way.
type nilDirectory struct{}

func (nilDirectory) Tenant(context.Context, string) (*Tenant, error) { return nil, nil }
func (nilDirectory) User(context.Context, string) (*User, error)     { return nil, nil }

// TestDirectoryAnsweringNilIsUnknown: a Directory returning no user and
// no error cannot make a request crash the Authenticator; the user is
// unknown and the request refused.
func TestDirectoryAnsweringNilIsUnknown(t *testing.T) {
	a, err := New(Config{Directory: nilDirectory{}, Realm: "example.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h := a.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("served a request for a user the directory does not have")
	}))
	req := httptest.NewRequest(http.MethodGet, "https://example.test/me", nil)
	req.Header.Set("Authorization", `Digest username="alice", realm="example.test", nonce="n", uri="/me", response="00", qop=auth, nc=00000001, cnonce="c"`)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized && rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want a refusal", rec.Code)
	}
}
