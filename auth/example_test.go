package auth_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/parleyuc/parley/auth"
)

// An HTTP API protected by the Authenticator: a request without
// credentials is challenged with Digest (and Bearer, when OpenID Connect
// providers are configured); the handler sees the caller's Identity.
func Example() {
	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test", Name: "Example"})
	alice := auth.User{URI: "sip:alice@example.test", DisplayName: "Alice", Enabled: true}
	_ = alice.SetPassword("correct horse battery staple")
	_ = dir.PutUser(alice)

	authn, err := auth.New(auth.Config{Directory: dir, Realm: "example.test"})
	if err != nil {
		panic(err)
	}
	defer authn.Close()

	api := httptest.NewServer(authn.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := auth.IdentityFromContext(r.Context())
		fmt.Fprintln(w, "hello", id.DisplayName)
	})))
	defer api.Close()

	resp, err := http.Get(api.URL + "/me")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	challenge := resp.Header.Values("WWW-Authenticate")[0]
	fmt.Println(resp.StatusCode, strings.SplitN(challenge, " ", 2)[0], strings.Contains(challenge, "algorithm=SHA-256"))
	// Output: 401 Digest true
}
