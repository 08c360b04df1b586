package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/parleyuc/parley/internal/oidctest"
)

// These tests run against a real OpenID Connect provider process
// (internal/oidctest): discovery, keys and tokens come over HTTPS, as
// from Entra ID or Keycloak.

// providerUsers are the provider's accounts for the example.test tenant.
func providerUsers(domain string) []oidctest.User {
	return []oidctest.User{
		{Username: "alice", Password: "alice-at-idp", Claims: map[string]any{"email": "alice@" + domain, "email_verified": true,
			"name": "Alice", "groups": []string{"parley-users", "parley-admins"}}},
		{Username: "bob", Password: "bob-at-idp", Claims: map[string]any{"email": "bob@" + domain, "email_verified": true,
			"name": "Bob", "groups": []string{"staff"}}},
	}
}

const (
	testClient   = "parley-cli"
	testAudience = "parley"
	testScope    = "sip"
)

func startProvider(t *testing.T, domain string) *oidctest.Provider {
	t.Helper()
	return oidctest.Start(t, oidctest.Config{Users: providerUsers(domain),
		Clients: []oidctest.Client{{ClientID: testClient, DeviceFlow: true, Audience: []string{testAudience}}}})
}

// tenantProvider is how a deployment configures a tenant's provider.
func tenantProvider(p *oidctest.Provider, domain string) OIDCProvider {
	return OIDCProvider{Issuer: p.Issuer, Audience: testAudience, Domains: []string{domain}, Scopes: []string{testScope},
		LicenseClaim: "groups", LicenseValue: "parley-users", AdminClaim: "groups", AdminValue: "parley-admins",
		HTTPClient: p.HTTPClient}
}

// deviceToken signs user in at the provider with the device flow.
func deviceToken(t *testing.T, p *oidctest.Provider, user string) string {
	t.Helper()
	tok, err := p.DeviceToken(t.Context(), testClient, user, "openid email "+testScope)
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func mint(t *testing.T, p *oidctest.Provider, r oidctest.MintRequest) string {
	t.Helper()
	if r.ClientID == "" {
		r.ClientID = testClient
	}
	if r.Scope == "" {
		r.Scope = testScope
	}
	tok, err := p.Mint(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// registerBearer sends a REGISTER as alice with token on a new connection.
func registerBearer(t *testing.T, s *sipServer, token string) *sip.Response {
	t.Helper()
	return s.dial(t, "", nil).do("REGISTER", "sip:example.test", "<sip:alice@example.test>", "Authorization: Bearer "+token)
}

// wantInvalidToken checks an RFC 6750 refusal: 401 with a Bearer
// challenge carrying error="invalid_token".
func wantInvalidToken(t *testing.T, res *sip.Response) {
	t.Helper()
	if res.StatusCode != 401 {
		t.Fatalf("status %d, want 401", res.StatusCode)
	}
	for _, c := range challenges(res) {
		if strings.HasPrefix(c, "Bearer ") && strings.Contains(c, `error="invalid_token"`) {
			return
		}
	}
	t.Fatalf("challenges %q lack a Bearer challenge with error=\"invalid_token\"", challenges(res))
}

func TestProviderBearerChallengeAndSignIn(t *testing.T) {
	p := startProvider(t, "example.test")
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{tenantProvider(p, "example.test")}})

	res := s.dial(t, "", nil).do("REGISTER", "sip:example.test", "<sip:alice@example.test>")
	cs := challenges(res)
	want := `Bearer realm="example.test", scope="sip", authz_server="` + p.Issuer + `"`
	if res.StatusCode != 401 || len(cs) != 1 || cs[0] != want {
		t.Fatalf("challenge for a tenant that signs in with its provider: %d %q, want only %q", res.StatusCode, cs, want)
	}

	// Neither has a license in the directory: alice's groups grant it.
	for _, name := range []string{"alice", "bob"} {
		u, _ := s.dir.User(t.Context(), "sip:"+name+"@example.test")
		u.MeetingLicense = false
		if err := s.dir.PutUser(*u); err != nil {
			t.Fatal(err)
		}
	}
	if res := registerBearer(t, s, deviceToken(t, p, "alice")); res.StatusCode != 200 {
		t.Fatalf("REGISTER with a device-flow token: %d", res.StatusCode)
	}
	id := s.lastServed()
	if id.URI != "sip:alice@example.test" || id.Method != MethodBearer || !id.MeetingLicense || !id.TenantAdmin ||
		time.Until(id.Expires) < time.Minute {
		t.Fatalf("alice's identity %+v", id)
	}
	if res := s.dial(t, "", nil).do("REGISTER", "sip:example.test", "<sip:bob@example.test>",
		"Authorization: Bearer "+deviceToken(t, p, "bob")); res.StatusCode != 200 {
		t.Fatalf("bob: %d", res.StatusCode)
	}
	if id := s.lastServed(); id.URI != "sip:bob@example.test" || id.MeetingLicense || id.TenantAdmin {
		t.Fatalf("bob, in neither group, got %+v", id)
	}
}

func TestProviderRefusesWrongIssuer(t *testing.T) {
	p := startProvider(t, "example.test")
	stranger := startProvider(t, "example.test") // a provider nobody configured
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{tenantProvider(p, "example.test")}})
	wantInvalidToken(t, registerBearer(t, s, deviceToken(t, stranger, "alice")))
}

func TestProviderRefusesWrongAudience(t *testing.T) {
	p := startProvider(t, "example.test")
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{tenantProvider(p, "example.test")}})
	wantInvalidToken(t, registerBearer(t, s, mint(t, p, oidctest.MintRequest{User: "alice", Audience: []string{"another-service"}})))
}

func TestProviderRefusesExpiredToken(t *testing.T) {
	p := startProvider(t, "example.test")
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{tenantProvider(p, "example.test")}})
	// Expired beyond the one-minute clock skew allowed.
	wantInvalidToken(t, registerBearer(t, s, mint(t, p, oidctest.MintRequest{User: "alice", ExpiresIn: -90})))
}

func TestProviderRefusesAnotherTenantsProvider(t *testing.T) {
	ours := startProvider(t, "example.test")
	theirs := startProvider(t, "example.test") // claims our users' addresses
	d := testDirectory(t)
	if err := d.PutTenant(Tenant{Domain: "other.test"}); err != nil {
		t.Fatal(err)
	}
	s := startSIPServer(t, Config{Directory: d,
		OIDC: []OIDCProvider{tenantProvider(ours, "example.test"), tenantProvider(theirs, "other.test")}})
	wantInvalidToken(t, registerBearer(t, s, deviceToken(t, theirs, "alice")))
	if res := registerBearer(t, s, deviceToken(t, ours, "alice")); res.StatusCode != 200 {
		t.Fatalf("our provider's token: %d", res.StatusCode)
	}
}

func TestProviderRefusesAlgNone(t *testing.T) {
	p := startProvider(t, "example.test")
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{tenantProvider(p, "example.test")}})
	// The provider's own valid claims, unsigned.
	parts := strings.Split(deviceToken(t, p, "alice"), ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."
	wantInvalidToken(t, registerBearer(t, s, none))
}

func TestProviderRefusesRotatedOutKey(t *testing.T) {
	p := startProvider(t, "example.test")
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{tenantProvider(p, "example.test")}})
	old := deviceToken(t, p, "alice")
	if res := registerBearer(t, s, old); res.StatusCode != 200 {
		t.Fatalf("before the rotation: %d", res.StatusCode)
	}
	if err := p.RotateKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A token signed with the new key is taken at once: its unknown key
	// ID makes the Authenticator fetch the provider's keys.
	fresh := deviceToken(t, p, "alice")
	if res := registerBearer(t, s, fresh); res.StatusCode != 200 {
		t.Fatalf("a token signed with the new key, before any refresh: %d", res.StatusCode)
	}
	s.authn.RefreshKeys() // as the KeyRefresh timer does
	wantInvalidToken(t, registerBearer(t, s, old))
	if res := registerBearer(t, s, fresh); res.StatusCode != 200 {
		t.Fatalf("a token signed with the new key: %d", res.StatusCode)
	}
}

func TestProviderRefusesDisabledUser(t *testing.T) {
	p := startProvider(t, "example.test")
	cfg := tenantProvider(p, "example.test")
	cfg.CheckUserInfo = true
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{cfg}})
	tok := deviceToken(t, p, "alice")
	if res := registerBearer(t, s, tok); res.StatusCode != 200 {
		t.Fatalf("before alice is disabled: %d", res.StatusCode)
	}
	if err := p.SetUserEnabled(t.Context(), "alice", false); err != nil {
		t.Fatal(err)
	}
	// The token has not expired and its signature holds; the provider
	// says the user is disabled.
	wantInvalidToken(t, registerBearer(t, s, tok))
}

func TestProviderRefusesTokenWithoutScope(t *testing.T) {
	p := startProvider(t, "example.test")
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{tenantProvider(p, "example.test")}})
	res := registerBearer(t, s, mint(t, p, oidctest.MintRequest{User: "alice", Scope: "openid email"}))
	cs := challenges(res)
	if res.StatusCode != 403 || len(cs) != 1 || !strings.Contains(cs[0], `error="insufficient_scope"`) || !strings.Contains(cs[0], `scope="sip"`) {
		t.Fatalf("token without the sip scope: %d %q, want 403 with error=\"insufficient_scope\"", res.StatusCode, cs)
	}
}

func TestProviderTenantDigestOff(t *testing.T) {
	p := startProvider(t, "example.test")
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{tenantProvider(p, "example.test")}, Conferences: meetings{meetingA: keyA}})

	t.Run("tenant user with the right password", func(t *testing.T) {
		c := s.dial(t, "", nil)
		// Digest credentials made from an old challenge of the realm.
		res := c.do("REGISTER", "sip:example.test", "<sip:alice@example.test>",
			digestCredentials("example.test", s.authn.nonces.mint(), algSHA256, "REGISTER", "sip:example.test", "alice", alicePassword, 1))
		cs := challenges(res)
		if res.StatusCode != 401 || len(cs) != 1 || !strings.HasPrefix(cs[0], "Bearer ") {
			t.Fatalf("Digest from a user of a provider's tenant: %d %q, want 401 with the Bearer challenge only", res.StatusCode, cs)
		}
	})
	t.Run("guest with the conference key", func(t *testing.T) {
		c := s.dial(t, "", nil)
		ruri := "sip:" + meetingA + "@example.test"
		res := c.do("INVITE", ruri, "<sip:guest@anonymous.invalid>")
		if res.StatusCode != 401 {
			t.Fatalf("guest INVITE: %d", res.StatusCode)
		}
		res = c.do("INVITE", ruri, "<sip:guest@anonymous.invalid>", digestFor(t, res, algSHA256, "INVITE", ruri, AnonymousPrefix+meetingA, keyA, 1))
		if res.StatusCode != 200 {
			t.Fatalf("guest with the key: %d", res.StatusCode)
		}
	})
	t.Run("device account allowed a password", func(t *testing.T) {
		u, _ := s.dir.User(t.Context(), "sip:bob@example.test")
		u.PasswordSignIn = true
		if err := s.dir.PutUser(*u); err != nil {
			t.Fatal(err)
		}
		c := s.dial(t, "", nil)
		if res := c.register("bob", bobPassword); res.StatusCode != 200 {
			t.Fatalf("bob, allowed Digest: %d", res.StatusCode)
		}
	})
	t.Run("tenant allowed passwords", func(t *testing.T) {
		if err := s.dir.PutTenant(Tenant{Domain: "example.test", PasswordSignIn: true}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.dir.PutTenant(Tenant{Domain: "example.test"}) }()
		if res := s.dial(t, "", nil).register("alice", alicePassword); res.StatusCode != 200 {
			t.Fatalf("alice, tenant allowed Digest: %d", res.StatusCode)
		}
	})
}

// closeTimes records when tracked connections close.
type closeTimes struct {
	mu sync.Mutex
	at []time.Time
}

func watchCloses(t *testing.T, a *Authenticator) *closeTimes {
	ct := &closeTimes{}
	remove := a.OnConnectionClose(func(string, string) {
		ct.mu.Lock()
		ct.at = append(ct.at, time.Now())
		ct.mu.Unlock()
	})
	t.Cleanup(remove)
	return ct
}

func (ct *closeTimes) wait(ctx context.Context) (time.Time, bool) {
	for {
		ct.mu.Lock()
		if len(ct.at) > 0 {
			at := ct.at[0]
			ct.mu.Unlock()
			return at, true
		}
		ct.mu.Unlock()
		select {
		case <-ctx.Done():
			return time.Time{}, false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestTokenExpiryEndsSignIn(t *testing.T) {
	p := startProvider(t, "example.test")
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{tenantProvider(p, "example.test")}})
	closes := watchCloses(t, s.authn)

	c := s.dial(t, "", nil)
	first := mint(t, p, oidctest.MintRequest{User: "alice", ExpiresIn: 2})
	if res := c.do("REGISTER", "sip:example.test", "<sip:alice@example.test>", "Authorization: Bearer "+first); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	firstExp := s.lastServed().Expires

	// A refreshing REGISTER with a new token extends the association.
	second := mint(t, p, oidctest.MintRequest{User: "alice", ExpiresIn: 4})
	if res := c.do("REGISTER", "sip:example.test", "<sip:alice@example.test>", "Authorization: Bearer "+second); res.StatusCode != 200 {
		t.Fatalf("refreshing REGISTER: %d", res.StatusCode)
	}
	secondExp := s.lastServed().Expires
	if !secondExp.After(firstExp) {
		t.Fatalf("renewed expiry %v not after %v", secondExp, firstExp)
	}
	time.Sleep(time.Until(firstExp) + 300*time.Millisecond)
	if res := c.do("OPTIONS", "sip:example.test", "<sip:alice@example.test>"); res.StatusCode != 200 {
		t.Fatalf("after the first token's expiry, on the renewed association: %d", res.StatusCode)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Until(secondExp)+5*time.Second)
	defer cancel()
	closed, ok := closes.wait(ctx)
	if !ok {
		t.Fatal("the connection was not closed when the token expired")
	}
	if late := closed.Sub(secondExp); late < 0 || late > time.Second {
		t.Fatalf("closed %v after the token's expiry, want within a second", late)
	}
	if _, err := c.try("OPTIONS", "sip:example.test", "<sip:alice@example.test>"); err == nil {
		t.Fatal("the connection still answers after the token expired")
	}
}

func TestRenewalAsAnotherUserRefused(t *testing.T) {
	p := startProvider(t, "example.test")
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{tenantProvider(p, "example.test")}})
	c := s.dial(t, "", nil)
	if res := c.do("REGISTER", "sip:example.test", "<sip:alice@example.test>", "Authorization: Bearer "+deviceToken(t, p, "alice")); res.StatusCode != 200 {
		t.Fatalf("alice: %d", res.StatusCode)
	}
	if res := c.do("REGISTER", "sip:example.test", "<sip:bob@example.test>", "Authorization: Bearer "+deviceToken(t, p, "bob")); res.StatusCode != 403 {
		t.Fatalf("bob's token on alice's connection: %d, want 403", res.StatusCode)
	}
}

func TestVerifyBearer(t *testing.T) {
	p := startProvider(t, "example.test")
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{tenantProvider(p, "example.test")}})
	id, err := s.authn.VerifyBearer(t.Context(), deviceToken(t, p, "alice"))
	if err != nil || id.URI != "sip:alice@example.test" || !id.TenantAdmin {
		t.Fatalf("alice's token: %+v, %v", id, err)
	}
	if id, err := s.authn.VerifyBearer(t.Context(), deviceToken(t, p, "bob")); err != nil || id.TenantAdmin {
		t.Fatalf("bob's token: %+v, %v", id, err)
	}
	if _, err := s.authn.VerifyBearer(t.Context(), mint(t, p, oidctest.MintRequest{User: "alice", Audience: []string{"x"}})); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("wrong audience: %v", err)
	}
	if _, err := s.authn.VerifyBearer(t.Context(), mint(t, p, oidctest.MintRequest{User: "alice", Scope: "openid"})); !errors.Is(err, ErrInsufficientScope) {
		t.Fatalf("no sip scope: %v", err)
	}
}

// A user disabled at the provider is signed out of a connection already
// signed in, within the userinfo interval, not only refused next time.
func TestDisabledAtProviderSignsOut(t *testing.T) {
	p := startProvider(t, "example.test")
	cfg := tenantProvider(p, "example.test")
	cfg.CheckUserInfo, cfg.UserInfoInterval = true, 200*time.Millisecond
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{cfg}})
	closes := watchCloses(t, s.authn)
	withdrawn := make(chan string, 4)
	s.authn.OnWithdrawn(func(aor string) { withdrawn <- aor })
	alice, bob := s.dial(t, "", nil), s.dial(t, "", nil)
	if res := alice.do("REGISTER", "sip:example.test", "<sip:alice@example.test>", "Authorization: Bearer "+deviceToken(t, p, "alice")); res.StatusCode != 200 {
		t.Fatalf("alice: %d", res.StatusCode)
	}
	if res := bob.do("REGISTER", "sip:example.test", "<sip:bob@example.test>", "Authorization: Bearer "+deviceToken(t, p, "bob")); res.StatusCode != 200 {
		t.Fatalf("bob: %d", res.StatusCode)
	}
	time.Sleep(500 * time.Millisecond) // checks that pass close nothing
	if _, ok := closes.wait(canceled(t)); ok {
		t.Fatal("a connection closed while the provider still vouched for its user")
	}
	disabled := time.Now()
	if err := p.SetUserEnabled(t.Context(), "alice", false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	at, ok := closes.wait(ctx)
	if !ok || at.Sub(disabled) > time.Second {
		t.Fatalf("alice's connection closed: %v, %v after she was disabled", ok, at.Sub(disabled))
	}
	if _, err := alice.try("OPTIONS", "sip:example.test", "<sip:alice@example.test>"); err == nil {
		t.Fatal("alice's connection still answers")
	}
	if res := bob.do("OPTIONS", "sip:example.test", "<sip:bob@example.test>"); res.StatusCode != 200 {
		t.Fatalf("bob, still enabled: %d", res.StatusCode)
	}
	// The application hears of it, once, to end what else alice holds.
	select {
	case aor := <-withdrawn:
		if aor != "sip:alice@example.test" {
			t.Fatalf("OnWithdrawn(%s), want alice", aor)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("OnWithdrawn was not called for alice")
	}
	select {
	case aor := <-withdrawn:
		t.Fatalf("OnWithdrawn called again, for %s", aor)
	case <-time.After(300 * time.Millisecond):
	}
}

// canceled is a context that has already ended: closeTimes.wait then
// reports only what has happened.
func canceled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// A provider that cannot be asked signs nobody out, and a new sign-in
// that needs its answer is told to come back (503), not refused.
func TestUnreachableProviderSignsNobodyOut(t *testing.T) {
	p := startProvider(t, "example.test")
	cfg := tenantProvider(p, "example.test")
	cfg.CheckUserInfo, cfg.UserInfoInterval = true, 100*time.Millisecond
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{cfg}})
	closes := watchCloses(t, s.authn)
	alice := s.dial(t, "", nil)
	if res := alice.do("REGISTER", "sip:example.test", "<sip:alice@example.test>", "Authorization: Bearer "+deviceToken(t, p, "alice")); res.StatusCode != 200 {
		t.Fatalf("alice: %d", res.StatusCode)
	}
	bobToken := deviceToken(t, p, "bob")
	p.Stop()
	time.Sleep(500 * time.Millisecond) // several userinfo checks fail to get an answer
	if _, closed := closes.wait(canceled(t)); closed {
		t.Fatal("a connection was closed because the provider did not answer")
	}
	if res := alice.do("OPTIONS", "sip:example.test", "<sip:alice@example.test>"); res.StatusCode != 200 {
		t.Fatalf("alice, signed in: %d", res.StatusCode)
	}
	res := registerBearer(t, s, bobToken)
	if res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("a new sign-in while the provider is down: %d, want 503 with Retry-After", res.StatusCode)
	}
}
