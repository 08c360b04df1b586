package auth

import (
	"testing"

	"github.com/parleyuc/parley/internal/oidctest"
)

// These tests sign in with tokens of a provider Parley's authors did not
// write: the example OpenID Connect provider of github.com/zitadel/oidc/v3
// (internal/oidctest/zitadelop), RS256-signed, run as its own process.

func startZitadel(t *testing.T, domain string) *oidctest.Zitadel {
	t.Helper()
	return oidctest.StartZitadel(t, oidctest.ZitadelConfig{Users: []oidctest.ZitadelUser{
		{Username: "alice", Password: "alice-zitadel", Email: "alice@" + domain, Admin: true},
		{Username: "bob", Password: "bob-zitadel", Email: "bob@" + domain},
	}})
}

// zitadelTenant is how a deployment configures a zitadel/oidc provider
// for a tenant: its JWT access tokens carry no scope claim, so no scope is
// required of them.
func zitadelTenant(z *oidctest.Zitadel, domain string) OIDCProvider {
	return OIDCProvider{Issuer: z.Issuer, Audience: z.ClientID, Domains: []string{domain},
		AdminClaim: "groups", AdminValue: "parley-admins", CheckUserInfo: true, HTTPClient: z.HTTPClient}
}

func zitadelToken(t *testing.T, z *oidctest.Zitadel, user string) string {
	t.Helper()
	tok, err := z.DeviceToken(t.Context(), user, "openid email")
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func TestZitadelBearerSignIn(t *testing.T) {
	z := startZitadel(t, "example.test")
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{zitadelTenant(z, "example.test")}})

	res := s.dial(t, "", nil).do("REGISTER", "sip:example.test", "<sip:alice@example.test>")
	cs := challenges(res)
	want := `Bearer realm="example.test", authz_server="` + z.Issuer + `"`
	if res.StatusCode != 401 || len(cs) != 1 || cs[0] != want {
		t.Fatalf("challenge: %d %q, want only %q", res.StatusCode, cs, want)
	}
	if res := registerBearer(t, s, zitadelToken(t, z, "alice")); res.StatusCode != 200 {
		t.Fatalf("REGISTER with zitadel's device-flow token: %d", res.StatusCode)
	}
	if id := s.lastServed(); id.URI != "sip:alice@example.test" || id.Method != MethodBearer || !id.TenantAdmin {
		t.Fatalf("alice's identity %+v", id)
	}
	if res := s.dial(t, "", nil).do("REGISTER", "sip:example.test", "<sip:bob@example.test>",
		"Authorization: Bearer "+zitadelToken(t, z, "bob")); res.StatusCode != 200 {
		t.Fatalf("bob: %d", res.StatusCode)
	}
	if id := s.lastServed(); id.URI != "sip:bob@example.test" || id.TenantAdmin {
		t.Fatalf("bob, not an admin at zitadel, got %+v", id)
	}
}

// A zitadel token naming a user of example.test is refused where
// example.test signs in with another issuer, zitadel serving another
// tenant; the tenant's own provider's token is taken.
func TestZitadelTokenRefusedByAnotherIssuersTenant(t *testing.T) {
	ours := startProvider(t, "example.test")
	z := startZitadel(t, "example.test")
	d := testDirectory(t)
	if err := d.PutTenant(Tenant{Domain: "other.test"}); err != nil {
		t.Fatal(err)
	}
	s := startSIPServer(t, Config{Directory: d,
		OIDC: []OIDCProvider{tenantProvider(ours, "example.test"), zitadelTenant(z, "other.test")}})
	wantInvalidToken(t, registerBearer(t, s, zitadelToken(t, z, "alice")))
	if res := registerBearer(t, s, deviceToken(t, ours, "alice")); res.StatusCode != 200 {
		t.Fatalf("the tenant's provider's token: %d", res.StatusCode)
	}
	// Nor is it taken where zitadel is not configured at all.
	s = startSIPServer(t, Config{OIDC: []OIDCProvider{tenantProvider(ours, "example.test")}})
	wantInvalidToken(t, registerBearer(t, s, zitadelToken(t, z, "alice")))
}

// A token without the email scope names the user only by its subject:
// user_claim "sub" with user_domain makes it an address of record.
func TestZitadelSubjectNamesUser(t *testing.T) {
	z := startZitadel(t, "example.test")
	cfg := zitadelTenant(z, "example.test")
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{cfg}})
	tok, err := z.DeviceToken(t.Context(), "alice", "openid")
	if err != nil {
		t.Fatal(err)
	}
	wantInvalidToken(t, registerBearer(t, s, tok.AccessToken)) // no email claim
	cfg.UserClaim, cfg.UserDomain = "sub", "example.test"
	s = startSIPServer(t, Config{OIDC: []OIDCProvider{cfg}})
	if res := registerBearer(t, s, tok.AccessToken); res.StatusCode != 200 {
		t.Fatalf("REGISTER with the subject as the user: %d", res.StatusCode)
	}
	if id := s.lastServed(); id.URI != "sip:alice@example.test" {
		t.Fatalf("identity %+v", id)
	}
}
