package auth_test

import (
	"log"
	"time"

	"github.com/parleyuc/parley/auth"
)

// A tenant whose users sign in with their organization's OpenID Connect
// provider: they are challenged with Bearer only (RFC 8898) and their
// passwords refused, except for a phone's account allowed one; meeting
// guests keep their conference keys. The provider's groups grant the
// meeting license and tenant admin. (Not run: it needs a provider.)
func ExampleOIDCProvider() {
	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test", Name: "Example"})
	_ = dir.PutUser(auth.User{URI: "sip:alice@example.test", DisplayName: "Alice", Enabled: true})
	lobbyPhone := auth.User{URI: "sip:lobby-phone@example.test", Enabled: true, PasswordSignIn: true}
	_ = lobbyPhone.SetPassword("a long random secret for a phone that cannot do OAuth")
	_ = dir.PutUser(lobbyPhone)

	authn, err := auth.New(auth.Config{Directory: dir, Realm: "example.test", OIDC: []auth.OIDCProvider{{
		Issuer:       "https://login.example.com/realms/example",
		Audience:     "parley",
		Domains:      []string{"example.test"},
		UserClaim:    "email",
		Scopes:       []string{"sip"},
		LicenseClaim: "groups", LicenseValue: "parley-meetings",
		AdminClaim: "groups", AdminValue: "parley-admins",
		CheckUserInfo: true, UserInfoInterval: time.Minute,
	}}})
	if err != nil {
		log.Fatal(err) // the provider's discovery failed, or a field is invalid (named)
	}
	defer authn.Close()
}
