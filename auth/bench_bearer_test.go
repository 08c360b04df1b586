package auth

import (
	"testing"

	"github.com/parleyuc/parley/internal/oidctest"
)

// BenchmarkBearerSignIn: a device signs in with a token over a new TLS
// connection: the handshake, a REGISTER with the token (RFC 8898), its
// verification against the provider process's keys (ES256, cached),
// claims and directory, and the association, then the connection closes.
func BenchmarkBearerSignIn(b *testing.B) {
	p := oidctest.Start(b, oidctest.Config{Users: providerUsers("example.test"),
		Clients: []oidctest.Client{{ClientID: testClient, DeviceFlow: true, Audience: []string{testAudience}}}})
	s := startSIPServer(b, Config{OIDC: []OIDCProvider{benchProvider(p)}, Throttle: unlimited(b)})
	tok, err := p.Mint(b.Context(), oidctest.MintRequest{User: "alice", ClientID: testClient, Scope: testScope})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c := s.dial(b, "", nil)
		if res := c.do("REGISTER", "sip:example.test", "<sip:alice@example.test>", "Authorization: Bearer "+tok); res.StatusCode != 200 {
			b.Fatalf("REGISTER: %d", res.StatusCode)
		}
		_ = c.conn.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sign-ins/s")
}

// BenchmarkBearerRefresh: refreshing REGISTERs on one connection, each
// with a new token, renewing the association (verification, directory,
// the expiry timer reset).
func BenchmarkBearerRefresh(b *testing.B) {
	p := oidctest.Start(b, oidctest.Config{Users: providerUsers("example.test"),
		Clients: []oidctest.Client{{ClientID: testClient, DeviceFlow: true, Audience: []string{testAudience}}}})
	s := startSIPServer(b, Config{OIDC: []OIDCProvider{benchProvider(p)}, Throttle: unlimited(b)})
	tokens := make([]string, 32)
	for i := range tokens {
		var err error
		if tokens[i], err = p.Mint(b.Context(), oidctest.MintRequest{User: "alice", ClientID: testClient, Scope: testScope}); err != nil {
			b.Fatal(err)
		}
	}
	c := s.dial(b, "", nil)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if res := c.do("REGISTER", "sip:example.test", "<sip:alice@example.test>", "Authorization: Bearer "+tokens[i%len(tokens)]); res.StatusCode != 200 {
			b.Fatalf("REGISTER: %d", res.StatusCode)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
}

func benchProvider(p *oidctest.Provider) OIDCProvider {
	return OIDCProvider{Issuer: p.Issuer, Audience: testAudience, Domains: []string{"example.test"}, Scopes: []string{testScope},
		HTTPClient: p.HTTPClient}
}

func unlimited(b *testing.B) *Throttle {
	return mustThrottle(b, ThrottleConfig{PerAddress: Limit{1e12, 1e9}, PerSubnet: Limit{1e12, 1e9}})
}
