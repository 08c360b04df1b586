package parleytest_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/oidctest"
	"github.com/parleyuc/parley/parleytest"
	"github.com/parleyuc/parley/presence"
)

// expiry reads a JWT's exp claim.
func expiry(t *testing.T, token string) time.Time {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return time.Unix(c.Exp, 0)
}

// Users of a tenant that signs in with its provider sign in with tokens;
// a device that stops renewing its token is signed out at the token's
// expiry, and its watchers see it offline within a second.
func TestTokenSignInAndExpiry(t *testing.T) {
	users := []oidctest.User{
		{Username: "alice", Password: "a-pw", Claims: map[string]any{"email": "alice@example.test", "email_verified": true}},
		{Username: "bob", Password: "b-pw", Claims: map[string]any{"email": "bob@example.test", "email_verified": true}},
	}
	p := oidctest.Start(t, oidctest.Config{Users: users, AccessTokenLifetime: 3 * time.Second,
		Clients: []oidctest.Client{{ClientID: "parley-cli", DeviceFlow: true, Audience: []string{"parley"}}}})
	s := parleytest.Start(t, parleytest.Config{OIDC: []auth.OIDCProvider{{Issuer: p.Issuer, Audience: "parley",
		Domains: []string{"example.test"}, HTTPClient: p.HTTPClient}}})
	t.Cleanup(p.HTTPClient.CloseIdleConnections) // before the stack's leak check
	ctx := ctxFor(t)

	// Digest is off for the tenant's users.
	if err := s.Client(t, "alice").SignIn(ctx); err == nil {
		t.Fatal("alice signed in with her password although the tenant signs in with its provider")
	}

	aliceTok, err := p.DeviceToken(ctx, "parley-cli", "alice", "openid email")
	if err != nil {
		t.Fatal(err)
	}
	bobTok, err := p.Mint(ctx, oidctest.MintRequest{User: "bob", ClientID: "parley-cli", ExpiresIn: 60})
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := s.TokenClient(t, "alice", aliceTok.AccessToken), s.TokenClient(t, "bob", bobTok)
	must(t, s.Policy.SetContact(ctx, s.AOR("alice"), s.AOR("bob"), presence.Workgroup))
	must(t, alice.SignIn(ctx))
	must(t, bob.SignIn(ctx))
	must(t, bob.Watch(ctx, "alice"))
	must(t, bob.WaitPresence(ctx, "alice", presence.Available))
	must(t, alice.Send(ctx, "bob", "signed in with my organization"))
	select {
	case m := <-bob.Messages():
		if m.Text != "signed in with my organization" || m.From != s.AOR("alice") {
			t.Fatalf("bob got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("no message")
	}

	// alice refreshes her token before it expires and renews the sign-in
	// (a second on, so the new token's exp, in whole seconds, is later).
	time.Sleep(time.Until(expiry(t, aliceTok.AccessToken).Add(-1800 * time.Millisecond)))
	next, err := p.Refresh(ctx, "parley-cli", aliceTok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	alice.SetToken(next.AccessToken)
	must(t, alice.Renew(ctx))
	first, last := expiry(t, aliceTok.AccessToken), expiry(t, next.AccessToken)
	if !last.After(first) {
		t.Fatalf("the refreshed token expires at %v, the first at %v", last, first)
	}
	time.Sleep(time.Until(first) + 200*time.Millisecond)
	if got := bob.LastPresence(s.AOR("alice")); got == nil || got.Availability != presence.Available {
		t.Fatalf("after her first token expired, alice (renewed) is %+v", got)
	}

	// alice stops renewing: at expiry she is signed out.
	must(t, bob.WaitPresence(ctx, "alice", presence.Offline))
	if late := time.Since(last); late > time.Second {
		t.Fatalf("bob saw alice offline %v after her token expired, want within a second", late)
	}
}
