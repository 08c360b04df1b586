package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/parleyuc/parley/auth"
)

// oidcSettings is how users sign in with their organization's identity
// provider (OAuth 2.0, Modern Authentication), in the config file:
//
//	"oidc": [{
//	  "issuer": "https://login.example.com/realms/example",
//	  "client_id": "parley",
//	  "tenant": "example.test",
//	  "user_claim": "email",
//	  "scopes": ["sip"],
//	  "license_claim": "groups", "license_value": "parley-meetings",
//	  "admin_claim": "groups", "admin_value": "parley-admins",
//	  "check_userinfo": true, "userinfo_interval": "1m"
//	}],
//	"admin_token_with_oidc": false
//
// A tenant a provider names signs in with it: its users get the Bearer
// challenge and their Digest passwords are refused, unless an admin
// allows one (the admin API's password_sign_in, for a legacy phone or a
// gateway's account); meeting guests keep their conference key. The admin
// API takes the provider's tokens of users in the admin group; its static
// token (the data directory's admin-token) stops working once a provider
// is configured, unless admin_token_with_oidc keeps it as a break-glass
// path.
type oidcSettings struct {
	OIDC               []oidcProvider `json:"oidc"`
	AdminTokenWithOIDC bool           `json:"admin_token_with_oidc"`
}

// oidcProvider is one entry of "oidc": auth.OIDCProvider in JSON.
type oidcProvider struct {
	// Issuer is the provider's issuer URL (https); discovery and its keys
	// are fetched from it, and followed as the provider rotates them.
	Issuer string `json:"issuer"`
	// ClientID is the client registered at the provider for Parley's
	// clients (the device flow, the desktop's loopback redirect).
	ClientID string `json:"client_id"`
	// Audience is what tokens' aud must contain. Default client_id.
	Audience string `json:"audience"`
	// Tenant is the SIP domain whose users the provider signs in; Tenants
	// adds more, for a provider serving several of this server's tenants.
	Tenant  string   `json:"tenant"`
	Tenants []string `json:"tenants"`
	// UserClaim names the user (email, upn, preferred_username). Default
	// email. UserDomain, if set, replaces the claim's domain (or is added
	// to a bare name) to make the SIP address of record.
	UserClaim  string `json:"user_claim"`
	UserDomain string `json:"user_domain"`
	// Scopes a token must carry; the Bearer challenge names them.
	Scopes []string `json:"scopes"`
	// LicenseClaim/LicenseValue grant the meeting license, and
	// AdminClaim/AdminValue make a tenant admin, when the claim (a string
	// or a list such as groups or roles) is or contains the value.
	LicenseClaim string `json:"license_claim"`
	LicenseValue string `json:"license_value"`
	AdminClaim   string `json:"admin_claim"`
	AdminValue   string `json:"admin_value"`
	// CheckUserInfo asks the provider's userinfo endpoint about every
	// token, so users disabled at the provider are refused at once, and
	// about signed-in devices' tokens every UserInfoInterval (default
	// "1m"), signing out those the provider refuses.
	CheckUserInfo    bool     `json:"check_userinfo"`
	UserInfoInterval duration `json:"userinfo_interval"`
	// CAFile is a PEM file of CA certificates to trust for the provider's
	// HTTPS, besides the system's (a provider on a private PKI).
	CAFile string `json:"ca_file"`
}

// providerSignIn is what the "oidc" settings give the server: the providers for
// auth.Config.OIDC, and whether the static admin token still works.
type providerSignIn struct {
	providers        []auth.OIDCProvider
	staticAdminToken bool
	web              []*webProvider // the web client's sign-in (websignin.go)
}

// signIn checks the "oidc" settings against the directory's tenants,
// naming the field of the first problem, and returns what they configure.
func (s oidcSettings) signIn(dir auth.Directory) (providerSignIn, error) {
	out := providerSignIn{staticAdminToken: len(s.OIDC) == 0 || s.AdminTokenWithOIDC}
	seen := map[string]string{} // tenant -> the field naming it first
	for i, p := range s.OIDC {
		field := func(name string) string { return fmt.Sprintf("field \"oidc[%d].%s\"", i, name) }
		u, err := url.Parse(p.Issuer)
		switch {
		case p.Issuer == "":
			return out, errors.New(field("issuer") + ": required")
		case err != nil || u.Scheme != "https" || u.Host == "":
			return out, fmt.Errorf("%s %q: want an https URL", field("issuer"), p.Issuer)
		case p.ClientID == "":
			return out, errors.New(field("client_id") + ": required")
		case p.Tenant == "" && len(p.Tenants) == 0:
			return out, errors.New(field("tenant") + ": required: the SIP domain whose users the provider signs in")
		case (p.LicenseClaim == "") != (p.LicenseValue == ""):
			return out, errors.New(field("license_claim") + " and license_value go together")
		case (p.AdminClaim == "") != (p.AdminValue == ""):
			return out, errors.New(field("admin_claim") + " and admin_value go together")
		case p.UserInfoInterval < 0:
			return out, errors.New(field("userinfo_interval") + ": must not be negative")
		}
		var tenants, fields []string
		if p.Tenant != "" {
			tenants, fields = append(tenants, p.Tenant), append(fields, field("tenant"))
		}
		for j, t := range p.Tenants {
			tenants, fields = append(tenants, t), append(fields, field(fmt.Sprintf("tenants[%d]", j)))
		}
		for j, t := range tenants {
			if _, err := dir.Tenant(context.Background(), t); err != nil {
				return out, fmt.Errorf("%s %q: no such tenant in the directory", fields[j], t)
			}
			if first, dup := seen[strings.ToLower(t)]; dup {
				return out, fmt.Errorf("%s %q: already signed in by %s", fields[j], t, first)
			}
			seen[strings.ToLower(t)] = fields[j]
		}
		// The provider is asked rarely (discovery, its keys every 15
		// minutes, userinfo if asked), so no connection is kept open:
		// none outlives the server either.
		tr := &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}, TLSHandshakeTimeout: 10 * time.Second}
		if p.CAFile != "" {
			if tr.TLSClientConfig.RootCAs, err = caPool(p.CAFile); err != nil {
				return out, fmt.Errorf("%s %q: %w", field("ca_file"), p.CAFile, err)
			}
		}
		client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
		audience := p.Audience
		if audience == "" {
			audience = p.ClientID
		}
		out.providers = append(out.providers, auth.OIDCProvider{Issuer: p.Issuer, Audience: audience, UserClaim: p.UserClaim,
			UserDomain: p.UserDomain, Domains: tenants, Scopes: p.Scopes, LicenseClaim: p.LicenseClaim, LicenseValue: p.LicenseValue,
			AdminClaim: p.AdminClaim, AdminValue: p.AdminValue, CheckUserInfo: p.CheckUserInfo, UserInfoInterval: time.Duration(p.UserInfoInterval),
			HTTPClient: client})
		out.web = append(out.web, &webProvider{issuer: p.Issuer, clientID: p.ClientID, scopes: p.Scopes, tenants: tenants, client: client})
	}
	return out, nil
}

// caPool is the system's roots and the certificates of a PEM file.
func caPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}
