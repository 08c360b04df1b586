package oidctest

import (
	"errors"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
)

func zitadelUsers() []ZitadelUser {
	return []ZitadelUser{
		{Username: "alice", Password: "alice-zitadel", Email: "alice@example.test", Admin: true},
		{Username: "bob", Password: "bob-zitadel", Email: "bob@example.test"},
	}
}

// The zitadel/oidc example provider's device-flow tokens are JWTs that a
// resource server verifies with its keys, carrying the user's email and,
// for an admin, the admin group.
func TestZitadelDeviceFlowTokensVerify(t *testing.T) {
	z := StartZitadel(t, ZitadelConfig{Users: zitadelUsers()})
	ctx := oidc.ClientContext(t.Context(), z.HTTPClient)
	op, err := oidc.NewProvider(ctx, z.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	v := op.Verifier(&oidc.Config{ClientID: "parley", SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256}})
	for _, user := range []string{"alice", "bob"} {
		tok, err := z.DeviceToken(t.Context(), user, "openid email offline_access")
		if err != nil {
			t.Fatal(err)
		}
		if tok.RefreshToken == "" {
			t.Fatalf("%s: no refresh token: %+v", user, tok)
		}
		at, err := v.Verify(ctx, tok.AccessToken)
		if err != nil {
			t.Fatalf("%s's access token: %v", user, err)
		}
		var claims struct {
			Sub           string   `json:"sub"`
			Email         string   `json:"email"`
			EmailVerified bool     `json:"email_verified"`
			Groups        []string `json:"groups"`
		}
		if err := at.Claims(&claims); err != nil || claims.Sub != user || claims.Email != user+"@example.test" || !claims.EmailVerified ||
			(user == "alice") != (len(claims.Groups) == 1 && claims.Groups[0] == "parley-admins") {
			t.Fatalf("%s's claims %+v, %v", user, claims, err)
		}
		if h := header(t, tok.AccessToken); h["alg"] != "RS256" {
			t.Fatalf("header %v", h)
		}
	}
	// A wrong password is refused on the device pages.
	z.users[1].Password = "not-bob's"
	if _, err := z.DeviceToken(t.Context(), "bob", "openid email"); !errors.Is(err, ErrOAuth) {
		t.Fatalf("device sign-in with a wrong password: %v", err)
	}
}
