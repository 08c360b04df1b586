package oidctest

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ZitadelUser is an account at the zitadel/oidc example provider.
type ZitadelUser struct {
	// Username is what the user types on the provider's login pages; it
	// is also the user's ID, the sub of their tokens (the example's device
	// pages make the user name the subject, its login page the ID).
	Username, Password  string
	FirstName, LastName string
	// Email goes, verified, into tokens granted the email scope.
	Email string
	// Admin puts the provider's admin group in the user's groups claim.
	Admin bool
}

// ZitadelConfig is the example provider's configuration.
type ZitadelConfig struct {
	Users []ZitadelUser
	// ClientID is the public client registered for Parley (PKCE, device
	// flow, refresh tokens, JWT access tokens). Default "parley".
	ClientID string
	// RedirectURIs registered for the client; a loopback one
	// (http://127.0.0.1/callback, https://127.0.0.1/auth/callback)
	// matches the same path on any port.
	RedirectURIs []string
	// AdminGroup is the groups claim's value for admins. Default
	// "parley-admins".
	AdminGroup string
}

// Zitadel is a running zitadel/oidc example provider (internal/oidctest/
// zitadelop), a third party's OpenID Connect implementation.
type Zitadel struct {
	// Issuer is its issuer URL, https://127.0.0.1:PORT.
	Issuer string
	// CA issued its certificate; HTTPClient trusts it. CAFile is the CA
	// certificate in PEM, for other processes.
	CA         *x509.Certificate
	CAFile     string
	HTTPClient *http.Client
	// ClientID is the client registered for Parley.
	ClientID string

	users []ZitadelUser
	meta  struct {
		TokenEndpoint       string `json:"token_endpoint"`
		DeviceAuthorization string `json:"device_authorization_endpoint"`
	}
}

// zitadelModules fetches, once, the modules the zitadelop program needs.
var zitadelModules struct {
	once sync.Once
	err  error
}

// StartZitadel builds (once) and starts the zitadel/oidc example provider
// and stops it when t ends. Building it needs zitadel/oidc's modules:
// without the Go module proxy (or a module cache that has them) the test
// is skipped, or fails if env CI is set.
func StartZitadel(t testing.TB, cfg ZitadelConfig) *Zitadel {
	t.Helper()
	zitadelModules.once.Do(func() {
		cmd := exec.Command("go", "mod", "download")
		cmd.Dir = sourceDir(zitadelOP.dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			zitadelModules.err = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if err := zitadelModules.err; err != nil {
		msg := fmt.Sprintf("oidctest: the zitadel/oidc example provider (internal/oidctest/zitadelop) needs its modules "+
			"from the Go module proxy (GOPROXY) or the module cache: go mod download: %v", err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	bin, err := zitadelOP.binary()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "parley"
	}
	if cfg.AdminGroup == "" {
		cfg.AdminGroup = "parley-admins"
	}
	dir := t.TempDir()
	ca, certFile, keyFile, caFile := serverTLS(t, dir)
	// The example storage's users file: user ID to its User.
	users := map[string]any{}
	for _, u := range cfg.Users {
		users[u.Username] = map[string]any{"ID": u.Username, "Username": u.Username, "Password": u.Password,
			"FirstName": u.FirstName, "LastName": u.LastName, "Email": u.Email, "EmailVerified": u.Email != "",
			"PreferredLanguage": "en", "IsAdmin": u.Admin}
	}
	data, err := json.Marshal(users)
	if err != nil {
		t.Fatal(err)
	}
	usersFile := filepath.Join(dir, "users.json")
	if err := os.WriteFile(usersFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-tls-cert", certFile, "-tls-key", keyFile, "-users", usersFile,
		"-client-id", cfg.ClientID, "-admin-group", cfg.AdminGroup}
	for _, u := range cfg.RedirectURIs {
		args = append(args, "-redirect-uri", u)
	}
	z := &Zitadel{CA: ca, CAFile: caFile, ClientID: cfg.ClientID, users: cfg.Users}
	z.Issuer, z.HTTPClient, _ = run(t, ca, bin, args...)
	res, err := z.HTTPClient.Get(z.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&z.meta); err != nil || z.meta.TokenEndpoint == "" || z.meta.DeviceAuthorization == "" {
		t.Fatalf("oidctest: zitadel's discovery: %v %+v", err, z.meta)
	}
	return z
}

// password is the configured password of username.
func (z *Zitadel) password(username string) string {
	for _, u := range z.users {
		if u.Username == username {
			return u.Password
		}
	}
	return ""
}

// browser is an HTTP client with a cookie jar of its own that trusts the
// provider and does not follow redirects.
func (z *Zitadel) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Timeout: 10 * time.Second, Transport: z.HTTPClient.Transport, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// page requests a page and returns its status, body and Location.
func page(ctx context.Context, c *http.Client, method, u string, form url.Values) (int, string, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, "", "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, string(data), res.Header.Get("Location"), nil
}

// Approve does what the user does in a browser on the example's device
// pages: enters userCode, signs in with their password, and allows the
// device.
func (z *Zitadel) Approve(ctx context.Context, userCode, username string) error {
	b := z.browser()
	status, body, loc, err := page(ctx, b, "POST", z.Issuer+"/device/login",
		url.Values{"user_code": {userCode}, "username": {username}, "password": {z.password(username)}})
	if err != nil {
		return err
	}
	if status != http.StatusOK || !strings.Contains(body, "Confirm device authorization") {
		// The example redirects back to the code form with the reason.
		return fmt.Errorf("%w: zitadel's device sign-in: %d %s", ErrOAuth, status, loc)
	}
	status, body, loc, err = page(ctx, b, "GET", z.Issuer+"/device/confirm?action=allowed", nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK || !strings.Contains(body, "Device authorization allowed") {
		return fmt.Errorf("%w: zitadel's device confirmation: %d %s %s", ErrOAuth, status, loc, body)
	}
	return nil
}

// DeviceToken gets tokens for username with the device flow, as
// examples/client login does: device code, the user's sign-in on the
// device pages, polling at the interval the provider asks (5 s).
func (z *Zitadel) DeviceToken(ctx context.Context, username, scope string) (*Token, error) {
	var da struct {
		DeviceCode string `json:"device_code"`
		UserCode   string `json:"user_code"`
		Interval   int    `json:"interval"`
	}
	if err := z.post(ctx, z.meta.DeviceAuthorization, url.Values{"client_id": {z.ClientID}, "scope": {scope}}, &da); err != nil {
		return nil, err
	}
	if err := z.Approve(ctx, da.UserCode, username); err != nil {
		return nil, err
	}
	for {
		// Approved before the first poll: the token comes at once.
		var tok Token
		err := z.post(ctx, z.meta.TokenEndpoint, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {da.DeviceCode}, "client_id": {z.ClientID}}, &tok)
		if err == nil {
			return &tok, nil
		}
		if !strings.Contains(err.Error(), "authorization_pending") && !strings.Contains(err.Error(), "slow_down") {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(max(da.Interval, 1)) * time.Second):
		}
	}
}

func (z *Zitadel) post(ctx context.Context, endpoint string, form url.Values, out any) error {
	status, body, _, err := page(ctx, z.HTTPClient, "POST", endpoint, form)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal([]byte(body), &e)
		return fmt.Errorf("%w: %s %d %s", ErrOAuth, endpoint, status, cmpOr(e.Error, strings.TrimSpace(body)))
	}
	return json.Unmarshal([]byte(body), out)
}

// SignIn plays the browser for an authorization URL (the code flow):
// it follows the provider's redirects to its login page, signs username
// in with their password there, and follows the provider's redirects
// until one leaves the provider, which it returns (the client's redirect
// URI with the code) without requesting it.
func (z *Zitadel) SignIn(ctx context.Context, authURL, username string) (*url.URL, error) {
	b := z.browser()
	u, err := url.Parse(authURL)
	if err != nil {
		return nil, err
	}
	var form url.Values // the login form, to post next
	for range 10 {
		method, posted := "GET", form != nil
		if posted {
			method = "POST"
		}
		status, body, loc, err := page(ctx, b, method, u.String(), form)
		if err != nil {
			return nil, err
		}
		form = nil
		switch {
		case status/100 == 3:
			next, err := u.Parse(loc)
			if err != nil {
				return nil, err
			}
			if next.Host != u.Host {
				return next, nil
			}
			u = next
		case status == http.StatusOK && u.Path == "/login/username":
			if posted { // the form again, with the reason
				return nil, fmt.Errorf("%w: zitadel's login page refused %s: %.300s", ErrOAuth, username, body)
			}
			form = url.Values{"id": {u.Query().Get("authRequestID")}, "username": {username}, "password": {z.password(username)}}
			u = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/login/username"}
		default:
			return nil, fmt.Errorf("%w: zitadel answered %s with %d: %.200s", ErrOAuth, u, status, body)
		}
	}
	return nil, errors.New("oidctest: zitadel redirected more than 10 times")
}
