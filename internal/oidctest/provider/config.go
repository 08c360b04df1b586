package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// config is the provider's JSON configuration file.
type config struct {
	// Listen is the TCP address to serve HTTPS on. Default 127.0.0.1:0;
	// the address taken is printed on stdout ("listening https://...").
	Listen string `json:"listen"`
	// CertFile and KeyFile are the server's TLS certificate chain and key
	// (PEM). Required: a provider is only ever spoken to over TLS.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// Alg signs tokens: ES256 (default) or RS256, both FIPS-approved.
	Alg string `json:"alg"`
	// AdminSecret guards /admin/ (key rotation, disabling users, minting
	// tokens for tests) as a bearer token. Required.
	AdminSecret string `json:"admin_secret"`
	// AccessTokenLifetime and RefreshTokenLifetime as Go durations.
	// Defaults 5m and 1h.
	AccessTokenLifetime  string `json:"access_token_lifetime"`
	RefreshTokenLifetime string `json:"refresh_token_lifetime"`
	// DeviceInterval is the device flow's polling interval in seconds
	// (RFC 8628 section 3.2). Default 5.
	DeviceInterval int      `json:"device_interval"`
	Users          []user   `json:"users"`
	Clients        []client `json:"clients"`

	accessTTL, refreshTTL time.Duration
}

// user is an account at the provider: its login and the claims its tokens
// carry.
type user struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Claims are copied into the user's tokens and userinfo (email,
	// email_verified, name, groups, roles, ...).
	Claims   map[string]any `json:"claims"`
	Disabled bool           `json:"disabled"`
}

// client is a registered OAuth client.
type client struct {
	ClientID string `json:"client_id"`
	// Secret, if set, makes the client confidential: it authenticates at
	// the token endpoint with HTTP Basic or client_secret_post.
	Secret string `json:"secret"`
	// Audience is what the client's access tokens carry in aud, besides
	// the client ID: the resource server (Parley) the tokens are for.
	Audience []string `json:"audience"`
	// RedirectURIs for the authorization code flow. A loopback URI
	// (http://127.0.0.1/...) matches any port (RFC 8252 section 7.3).
	RedirectURIs []string `json:"redirect_uris"`
	// DeviceFlow allows the device authorization grant (RFC 8628).
	DeviceFlow bool `json:"device_flow"`
}

func loadConfig(path string) (*config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var c config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.Alg == "" {
		c.Alg = "ES256"
	}
	if c.Alg != "ES256" && c.Alg != "RS256" {
		return nil, fmt.Errorf("alg: %q is not ES256 or RS256", c.Alg)
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("cert_file and key_file are required")
	}
	if c.AdminSecret == "" {
		return nil, errors.New("admin_secret is required")
	}
	if c.accessTTL, err = duration(c.AccessTokenLifetime, 5*time.Minute); err != nil {
		return nil, fmt.Errorf("access_token_lifetime: %w", err)
	}
	if c.refreshTTL, err = duration(c.RefreshTokenLifetime, time.Hour); err != nil {
		return nil, fmt.Errorf("refresh_token_lifetime: %w", err)
	}
	if c.DeviceInterval == 0 {
		c.DeviceInterval = 5
	}
	if c.DeviceInterval < 0 {
		return nil, errors.New("device_interval: must be positive")
	}
	for i, u := range c.Users {
		if u.Username == "" || u.Password == "" {
			return nil, fmt.Errorf("users[%d]: username and password are required", i)
		}
	}
	for i, cl := range c.Clients {
		if cl.ClientID == "" {
			return nil, fmt.Errorf("clients[%d]: client_id is required", i)
		}
	}
	return &c, nil
}

func duration(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d <= 0 {
		err = errors.New("must be positive")
	}
	return d, err
}
