// Package oidctest runs, for tests, a real OpenID Connect provider as its
// own process: the program in ./provider, built once per test binary,
// serving HTTPS on a free 127.0.0.1 port with a certificate of a CA made
// for it, stopped when the test ends.
//
// Tokens are obtained the way a user's device obtains them, with the
// device authorization grant (RFC 8628): [Provider.DeviceToken] asks for a
// device code, signs in on the provider's verification page with the
// user's password, as the user would in a browser, and polls the token
// endpoint. [Provider.Mint] asks the provider's test-only admin endpoint
// for a token with a chosen audience and lifetime, for refusal tests.
//
// [StartZitadel] runs instead a provider written by someone else: the
// example provider of github.com/zitadel/oidc/v3 (./zitadelop, a module
// of its own), to show that Parley interoperates with another
// implementation's discovery, keys, tokens and login pages.
package oidctest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyuc/parley/pki"
)

// User is an account at the provider.
type User struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Claims go into the user's tokens: email, email_verified, name,
	// groups, roles, ...
	Claims   map[string]any `json:"claims"`
	Disabled bool           `json:"disabled,omitempty"`
}

// Client is an OAuth client registered at the provider.
type Client struct {
	ClientID string `json:"client_id"`
	// Secret makes the client confidential.
	Secret string `json:"secret,omitempty"`
	// Audience is added to the aud of the client's access tokens.
	Audience []string `json:"audience,omitempty"`
	// RedirectURIs for the authorization code flow; loopback ones match
	// any port.
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// DeviceFlow allows the device authorization grant.
	DeviceFlow bool `json:"device_flow,omitempty"`
}

// Config is the provider's configuration.
type Config struct {
	Users   []User
	Clients []Client
	// Alg is ES256 (default) or RS256.
	Alg string
	// AccessTokenLifetime default 5 minutes; RefreshTokenLifetime 1 hour.
	AccessTokenLifetime, RefreshTokenLifetime time.Duration
	// DeviceInterval is the device flow's polling interval. Default 1 s
	// (a real provider's is 5 s; tests should not wait that long).
	DeviceInterval time.Duration
}

// Provider is a running provider process.
type Provider struct {
	// Issuer is its issuer URL, https://127.0.0.1:PORT.
	Issuer string
	// CA issued its certificate; HTTPClient trusts it.
	CA         *x509.Certificate
	HTTPClient *http.Client
	// CAFile is the CA certificate in PEM, for other processes.
	CAFile string

	cfg         Config
	adminSecret string
	stop        func()
}

// program is one of the provider programs beside this file, built once
// per test binary.
type program struct {
	dir  string // beside this file
	once sync.Once
	path string
	err  error
}

var (
	ourProvider = &program{dir: "provider"}
	zitadelOP   = &program{dir: "zitadelop"}
)

// binary builds the program once per test binary.
func (pr *program) binary() (string, error) {
	pr.once.Do(func() {
		// One place per user and version of the program's source,
		// overwritten by each build (renamed into place, so test binaries
		// building at once do not collide): test runs leave one binary
		// behind per version, not one each, and checkouts of other
		// versions tested at once (worktrees) do not replace each
		// other's between the build and the start.
		src := sourceDir(pr.dir)
		version, err := sourceVersion(src)
		if err != nil {
			pr.err = fmt.Errorf("oidctest: the source of %s: %w", pr.dir, err)
			return
		}
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("parley-oidctest-%d", os.Getuid()))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			pr.err = err
			return
		}
		tmp, err := os.CreateTemp(dir, pr.dir+"-*")
		if err != nil {
			pr.err = err
			return
		}
		_ = tmp.Close()
		cmd := exec.Command("go", "build", "-o", tmp.Name(), ".")
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			_ = os.Remove(tmp.Name())
			pr.err = fmt.Errorf("oidctest: go build %s: %v\n%s", pr.dir, err, out)
			return
		}
		pr.path = filepath.Join(dir, pr.dir+"-"+version)
		if err := os.Rename(tmp.Name(), pr.path); err != nil {
			pr.err = err
		}
	})
	return pr.path, pr.err
}

// sourceDir is the directory of a program beside this file.
func sourceDir(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), name)
}

// sourceVersion is a digest of the names and contents of the Go files in
// dir, and of its go.mod and go.sum if it is a module of its own.
func sourceVersion(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("no Go files in %s (%v)", dir, err)
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			files = append(files, filepath.Join(dir, name))
		}
	}
	h := sha256.New()
	for _, f := range files { // Glob sorts them
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// serverTLS makes a CA and a certificate it issued for 127.0.0.1 and
// localhost, in files in dir: the certificate, its key and the CA's
// certificate.
func serverTLS(t testing.TB, dir string) (ca *x509.Certificate, certFile, keyFile, caFile string) {
	t.Helper()
	c, err := pki.NewCA(pki.CAConfig{CommonName: "oidctest CA", CRLDistributionPoints: []string{"http://127.0.0.1:9/none.crl"}})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.IssueServer(pki.ServerCertRequest{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "provider.crt"), filepath.Join(dir, "provider.key")
	if err := cert.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, pki.EncodeCertPEM(c.Certificate()), 0o644); err != nil {
		t.Fatal(err)
	}
	return c.Certificate(), certFile, keyFile, caFile
}

// Start builds (once) and starts a provider, waits until its discovery
// document is served, and stops it when t ends.
func Start(t testing.TB, cfg Config) *Provider {
	t.Helper()
	bin, err := ourProvider.binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca, certFile, keyFile, caFile := serverTLS(t, dir)
	if cfg.DeviceInterval == 0 {
		cfg.DeviceInterval = time.Second
	}
	p := &Provider{CA: ca, CAFile: caFile, cfg: cfg, adminSecret: "admin-" + strings.ReplaceAll(t.Name(), "/", "-")}
	file := map[string]any{
		"cert_file": certFile, "key_file": keyFile, "alg": cfg.Alg, "admin_secret": p.adminSecret,
		"device_interval": int(cfg.DeviceInterval.Seconds()), "users": cfg.Users, "clients": cfg.Clients,
	}
	if cfg.AccessTokenLifetime > 0 {
		file["access_token_lifetime"] = cfg.AccessTokenLifetime.String()
	}
	if cfg.RefreshTokenLifetime > 0 {
		file["refresh_token_lifetime"] = cfg.RefreshTokenLifetime.String()
	}
	if cfg.Users == nil {
		file["users"] = []User{}
	}
	if cfg.Clients == nil {
		file["clients"] = []Client{}
	}
	data, err := json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "provider.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	p.Issuer, p.HTTPClient, p.stop = run(t, ca, bin, "-config", cfgFile)
	return p
}

// run starts a provider program, reads the issuer from its first line
// ("listening https://..."), waits until its discovery document is
// served, and stops it when t ends. The client trusts ca.
func run(t testing.TB, ca *x509.Certificate, bin string, args ...string) (issuer string, client *http.Client, stop func()) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var stopOnce sync.Once
	stop = func() {
		stopOnce.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}
	t.Cleanup(stop)
	name := filepath.Base(bin)
	select {
	case line := <-lines:
		iss, ok := strings.CutPrefix(line, "listening ")
		if !ok {
			t.Fatalf("oidctest: %s said %q", name, line)
		}
		issuer = iss
	case <-exited:
		t.Fatalf("oidctest: %s exited: %s", name, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("oidctest: %s did not start in 30 s", name)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := client.Get(issuer + "/.well-known/openid-configuration")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("oidctest: %s: discovery not served: %v\n%s", name, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(client.CloseIdleConnections)
	return issuer, client, stop
}

// lockedBuffer is a process's stderr, read while it may still write.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Stop stops the provider process now, as an outage would; it is stopped
// when the test ends anyway.
func (p *Provider) Stop() { p.stop() }

// Token is what the token endpoint returned.
type Token struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	ExpiresIn    int    `json:"expires_in"`
}

// ErrOAuth is wrapped by the provider's OAuth error responses.
var ErrOAuth = errors.New("oidctest: provider refused")

func (p *Provider) post(ctx context.Context, path string, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, "POST", p.Issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := p.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != 200 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return fmt.Errorf("%w: %s %d %s", ErrOAuth, path, res.StatusCode, cmpOr(e.Error, strings.TrimSpace(string(body))))
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// DeviceToken gets tokens for username through the device flow: the
// client asks for a device code, the user signs in with their password on
// the verification page, the client polls until the tokens come.
func (p *Provider) DeviceToken(ctx context.Context, clientID, username, scope string) (*Token, error) {
	var da struct {
		DeviceCode string `json:"device_code"`
		UserCode   string `json:"user_code"`
		Interval   int    `json:"interval"`
	}
	if err := p.post(ctx, "/device_authorization", url.Values{"client_id": {clientID}, "scope": {scope}}, &da); err != nil {
		return nil, err
	}
	if err := p.Approve(ctx, da.UserCode, username); err != nil {
		return nil, err
	}
	for {
		var tok Token
		err := p.post(ctx, "/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {da.DeviceCode}, "client_id": {clientID}}, &tok)
		if err == nil {
			return &tok, nil
		}
		if !strings.Contains(err.Error(), "authorization_pending") && !strings.Contains(err.Error(), "slow_down") {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(da.Interval) * time.Second):
		}
	}
}

// Approve signs username in on the device verification page with their
// configured password, approving userCode, as the user does in a browser.
func (p *Provider) Approve(ctx context.Context, userCode, username string) error {
	pw := ""
	for _, u := range p.cfg.Users {
		if u.Username == username {
			pw = u.Password
		}
	}
	req, err := http.NewRequestWithContext(ctx, "POST", p.Issuer+"/device",
		strings.NewReader(url.Values{"user_code": {userCode}, "username": {username}, "password": {pw}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := p.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	_ = res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("%w: sign-in on the verification page: %d", ErrOAuth, res.StatusCode)
	}
	return nil
}

// Refresh redeems a refresh token (they rotate: use the new one next).
func (p *Provider) Refresh(ctx context.Context, clientID, refreshToken string) (*Token, error) {
	var tok Token
	err := p.post(ctx, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {clientID}}, &tok)
	return &tok, err
}

// MintRequest asks for a token without a grant.
type MintRequest struct {
	User     string   `json:"user"`
	ClientID string   `json:"client_id"`
	Audience []string `json:"audience,omitempty"` // default the client's
	Scope    string   `json:"scope,omitempty"`
	// ExpiresIn in seconds; negative for an expired token; 0 the default
	// lifetime.
	ExpiresIn int `json:"expires_in,omitempty"`
}

// Mint gets an access token from the provider's test-only endpoint: for
// any user (a disabled one too), with the audience and lifetime asked.
func (p *Provider) Mint(ctx context.Context, r MintRequest) (string, error) {
	body, _ := json.Marshal(r)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := p.admin(ctx, "/admin/mint", body, &out); err != nil {
		return "", err
	}
	return out.AccessToken, nil
}

// RotateKey makes the provider sign with a new key and stop publishing
// the old one.
func (p *Provider) RotateKey(ctx context.Context) error {
	return p.admin(ctx, "/admin/rotate", nil, nil)
}

// AddRedirectURI registers a redirect URI for a client, as an admin
// registers an application's once its address is known.
func (p *Provider) AddRedirectURI(ctx context.Context, clientID, uri string) error {
	body, _ := json.Marshal(map[string]string{"uri": uri})
	return p.admin(ctx, "/admin/clients/"+url.PathEscape(clientID)+"/redirect_uris", body, nil)
}

// SetUserEnabled disables (and revokes the refresh tokens of) or enables
// a user at the provider.
func (p *Provider) SetUserEnabled(ctx context.Context, username string, enabled bool) error {
	action := "disable"
	if enabled {
		action = "enable"
	}
	return p.admin(ctx, "/admin/users/"+url.PathEscape(username)+"/"+action, nil, nil)
}

func (p *Provider) admin(ctx context.Context, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, "POST", p.Issuer+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.adminSecret)
	res, err := p.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%w: %s %d %s", ErrOAuth, path, res.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
