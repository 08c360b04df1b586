package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleyuc/parley/internal/oidctest"
	"github.com/parleyuc/parley/pki"
)

// writeConfig writes cfg as the server's JSON config file and returns
// its path.
func writeConfig(t *testing.T, cfg map[string]any) string {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "server.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// namesDomain reports whether the certificate s's SIP TLS listener
// presents now, to a new handshake, is valid for domain.
func namesDomain(t *testing.T, s *server, domain string) bool {
	t.Helper()
	conn, err := tls.Dial("tcp", s.listeners["sip-tls"], pki.ClientTLSConfig(nil, s.verifier(t), domain))
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// TestTenantsFromConfigAndAdminAPI: an organization runs the server for
// its own domains: the configured tenants are made (and no demo), the
// certificate names each of them, and the service admin adds and removes
// tenants, the certificate following at once.
func TestTenantsFromConfigAndAdminAPI(t *testing.T) {
	data := t.TempDir()
	file := writeConfig(t, map[string]any{"tenants": []map[string]string{{"domain": "Acme.test", "name": "Acme"}, {"domain": "beta.test", "name": "Beta"}}})
	s := startServerArgs(t, data, append(allOnPortZero(data), "-config", file))
	if len(s.passwords) != 0 {
		t.Fatalf("demo users made with tenants configured: %v", s.passwords)
	}
	a := s.admin(t)
	var tenants []tenantJSON
	a.must("GET", "/tenants", "", 200, &tenants)
	if fmt.Sprint(tenants) != "[{acme.test Acme} {beta.test Beta}]" {
		t.Fatalf("tenants %v, want acme.test and beta.test only", tenants)
	}
	for _, d := range []string{"acme.test", "beta.test"} {
		if !namesDomain(t, s, d) {
			t.Fatalf("the server's certificate does not name %s", d)
		}
	}
	if namesDomain(t, s, "gamma.test") {
		t.Fatal("the server's certificate names gamma.test before it is a tenant")
	}

	a.must("POST", "/users", `{"uri":"sip:ann@acme.test","enabled":true,"password":"ann's long password"}`, 201, nil)
	a.must("POST", "/users", `{"uri":"sip:gus@gamma.test","enabled":true}`, 400, nil) // no such tenant yet
	a.must("POST", "/tenants", `{"domain":"gamma.test","name":"Gamma"}`, 201, nil)
	a.must("POST", "/tenants", `{"domain":"GAMMA.test"}`, 409, nil)
	a.must("POST", "/tenants", `{"domain":"no dots"}`, 400, nil)
	a.must("POST", "/tenants", `{"domain":"x@y.test"}`, 400, nil)
	if !namesDomain(t, s, "gamma.test") {
		t.Fatal("the server's certificate does not name gamma.test once it is a tenant")
	}
	a.must("POST", "/users", `{"uri":"sip:gus@gamma.test","enabled":true}`, 201, nil)
	a.must("DELETE", "/tenants/gamma.test", "", 409, nil) // gus is in it
	a.must("DELETE", "/users/sip:gus@gamma.test", "", 204, nil)
	a.must("DELETE", "/tenants/gamma.test", "", 204, nil)
	a.must("DELETE", "/tenants/gamma.test", "", 404, nil)
	if namesDomain(t, s, "gamma.test") {
		t.Fatal("the server's certificate still names gamma.test once it is removed")
	}
	a.must("GET", "/tenants", "", 200, &tenants)
	if len(tenants) != 2 {
		t.Fatalf("tenants after gamma.test was removed: %v", tenants)
	}
	// ann of acme.test signs in (the Digest realm of her own tenant).
	if res, err := options(t, s, "localhost", "ann@acme.test", "ann's long password"); err != nil || res.StatusCode != 200 {
		t.Fatalf("ann of acme.test signs in: %v %v", res, err)
	}
}

// TestTenantAdminsStayInTheirTenant: two tenants, each signing in with
// its own identity provider; each tenant admin sees and changes only
// their own tenant's users, meetings, sessions and certificates, and
// neither the tenants nor the federation policy, which are the service
// admin's.
func TestTenantAdminsStayInTheirTenant(t *testing.T) {
	admins := []string{"parley-admins"}
	pa := oidctest.Start(t, oidctest.Config{Users: []oidctest.User{{Username: "ann", Password: "ann-idp",
		Claims: map[string]any{"email": "ann@acme.test", "email_verified": true, "groups": admins}}},
		Clients: []oidctest.Client{{ClientID: "parley", DeviceFlow: true}}})
	pb := oidctest.Start(t, oidctest.Config{Users: []oidctest.User{{Username: "ben", Password: "ben-idp",
		Claims: map[string]any{"email": "ben@beta.test", "email_verified": true, "groups": admins}}},
		Clients: []oidctest.Client{{ClientID: "parley", DeviceFlow: true}}})
	provider := func(p *oidctest.Provider, tenant string) map[string]any {
		return map[string]any{"issuer": p.Issuer, "client_id": "parley", "tenant": tenant, "scopes": []string{"sip"},
			"admin_claim": "groups", "admin_value": "parley-admins", "ca_file": p.CAFile}
	}
	data := t.TempDir()
	file := writeConfig(t, map[string]any{
		"tenants":               []map[string]string{{"domain": "acme.test"}, {"domain": "beta.test"}},
		"oidc":                  []map[string]any{provider(pa, "acme.test"), provider(pb, "beta.test")},
		"admin_token_with_oidc": true, // the static token: the service admin
	})
	s := startServerArgs(t, data, append(allOnPortZero(data), "-config", file))
	service := s.admin(t)
	for _, u := range []string{"sip:ann@acme.test", "sip:amy@acme.test", "sip:ben@beta.test", "sip:bea@beta.test"} {
		service.must("POST", "/users", `{"uri":"`+u+`","enabled":true,"meeting_license":true}`, 201, nil)
	}
	ann, ben := *service, *service
	ann.token, ben.token = token(t, pa, "ann"), token(t, pb, "ben")

	var users []adminUser
	ann.must("GET", "/users", "", 200, &users)
	if len(users) != 2 || users[0].URI != "sip:amy@acme.test" || users[1].URI != "sip:ann@acme.test" {
		t.Fatalf("acme.test's admin sees %+v, want acme.test's users only", users)
	}
	var tenants []tenantJSON
	ben.must("GET", "/tenants", "", 200, &tenants)
	if len(tenants) != 1 || tenants[0].Domain != "beta.test" {
		t.Fatalf("beta.test's admin sees the tenants %v", tenants)
	}
	// Each is refused on the other's users, meetings, sessions and
	// certificates; their own are theirs.
	for _, c := range []struct {
		who                *admin
		method, path, body string
		want               int
	}{
		{&ann, "GET", "/users/sip:bea@beta.test", "", 403},
		{&ann, "PATCH", "/users/sip:bea@beta.test", `{"enabled":false}`, 403},
		{&ann, "DELETE", "/users/sip:bea@beta.test", "", 403},
		{&ann, "POST", "/users", `{"uri":"sip:eve@beta.test","enabled":true}`, 403},
		{&ann, "GET", "/meetings?organizer=sip:bea@beta.test", "", 403},
		{&ann, "DELETE", "/sessions/sip:bea@beta.test", "", 403},
		{&ann, "POST", "/certificates", `{"uri":"sip:bea@beta.test","days":30}`, 403},
		{&ben, "PATCH", "/users/sip:amy@acme.test", `{"enabled":false}`, 403},
		{&ann, "PATCH", "/users/sip:amy@acme.test", `{"display_name":"Amy"}`, 200},
		{&ann, "POST", "/users", `{"uri":"sip:abe@acme.test","enabled":true}`, 201},
		{&ben, "GET", "/meetings?organizer=sip:bea@beta.test", "", 200},
		// What every tenant shares is the service admin's.
		{&ann, "POST", "/tenants", `{"domain":"evil.test"}`, 403},
		{&ann, "DELETE", "/tenants/beta.test", "", 403},
		{&ben, "GET", "/federation", "", 403},
		{&ben, "POST", "/federation", `{"block":["acme.test"]}`, 403},
		{&ben, "GET", "/certificates/revoked", "", 403},
		{&ben, "GET", "/federation/partners", "", 403},
		{&ben, "GET", "/tenants/acme.test/federation", "", 403},
		{&ben, "POST", "/tenants/acme.test/federation", `{"block":["partner.test"]}`, 403},
		{&ben, "POST", "/tenants/beta.test/federation", `{"block":["partner.test"]}`, 200},
		{&ben, "GET", "/tenants/beta.test/federation", "", 200},
		{&ann, "POST", "/federation/partners", `{"domain":"evil.test"}`, 403},
		{&ann, "DELETE", "/federation/partners/partner.test", "", 403},
		{service, "GET", "/federation", "", 200},
	} {
		if got := c.who.do(c.method, c.path, c.body, nil); got != c.want {
			t.Errorf("%s's admin: %s %s: %d, want %d", tenantOfToken(c.who, &ann, &ben), c.method, c.path, got, c.want)
		}
	}
	var bea adminUser
	service.must("GET", "/users/sip:bea@beta.test", "", 200, &bea)
	if !bea.Enabled {
		t.Fatal("bea was disabled by another tenant's admin")
	}
	service.must("GET", "/users", "", 200, &users)
	if len(users) != 5 {
		t.Fatalf("the service admin sees %d users, want every tenant's 5", len(users))
	}
	tenantAdminsRevoke(t, service, &ann)
}

// tenantAdminsRevoke: acme.test's admin (ann) revokes the certificate
// of a user of acme.test, given with its serial; not one of beta.test's
// (403), nor a serial without the certificate that says whose it is.
func tenantAdminsRevoke(t *testing.T, service, ann *admin) {
	t.Helper()
	type issued struct {
		Serial      string `json:"serial"`
		Certificate string `json:"certificate"`
	}
	var amys, beas issued
	ann.must("POST", "/certificates", `{"uri":"sip:amy@acme.test","days":30}`, 201, &amys)
	service.must("POST", "/certificates", `{"uri":"sip:bea@beta.test","days":30}`, 201, &beas)
	revoke := func(serial, pem string) string {
		b, _ := json.Marshal(map[string]string{"reason": "keyCompromise", "certificate": pem})
		return string(b)
	}
	for _, c := range []struct {
		serial, body string
		want         int
	}{
		{beas.Serial, revoke(beas.Serial, beas.Certificate), 403}, // another tenant's user
		{beas.Serial, `{"reason":"keyCompromise"}`, 400},          // whose? the certificate says
		{beas.Serial, revoke(beas.Serial, amys.Certificate), 400}, // amy's certificate, bea's serial
		{amys.Serial, revoke(amys.Serial, amys.Certificate), 200},
		{amys.Serial, revoke(amys.Serial, amys.Certificate), 409}, // already
	} {
		if got := ann.do("POST", "/certificates/"+c.serial+"/revoke", c.body, nil); got != c.want {
			t.Errorf("acme.test's admin revokes %s: %d, want %d", c.serial, got, c.want)
		}
	}
	var revoked []revocationJSON
	service.must("GET", "/certificates/revoked", "", 200, &revoked)
	if len(revoked) != 1 || revoked[0].Serial != amys.Serial {
		t.Fatalf("revoked: %+v, want amy's %s alone", revoked, amys.Serial)
	}
}

func tenantOfToken(who, ann, ben *admin) string {
	switch who {
	case ann:
		return "acme.test"
	case ben:
		return "beta.test"
	}
	return "the service"
}

// TestTenantConfigRefusals: a bad "tenants" entry stops the server with
// the field named.
func TestTenantConfigRefusals(t *testing.T) {
	for _, c := range []struct {
		tenants string
		says    string
	}{
		{`[{"domain":""}]`, `field "tenants[0].domain"`},
		{`[{"domain":"acme.test"},{"domain":"ACME.test"}]`, `field "tenants[1].domain": acme.test is listed twice`},
		{`[{"domain":"localhost"}]`, `field "tenants[0].domain": "localhost" is not a DNS domain`},
	} {
		data := t.TempDir()
		path := filepath.Join(t.TempDir(), "parley.json")
		if err := os.WriteFile(path, []byte(`{"tenants":`+c.tenants+`}`), 0o600); err != nil {
			t.Fatal(err)
		}
		err := run(t.Context(), append(allOnPortZero(data), "-config", path), &strings.Builder{}, &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("tenants %s: %v, want it to say %s", c.tenants, err, c.says)
		}
	}
}

// TestAdminCommandManagesTenants: the admin command line adds, lists and
// deletes tenants, as a person running the server would.
func TestAdminCommandManagesTenants(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "parley-admin")
	if out, err := exec.Command("go", "build", "-o", bin, "../admin").CombinedOutput(); err != nil {
		t.Fatalf("go build ../admin: %v\n%s", err, out)
	}
	data := t.TempDir()
	s := startServerArgs(t, data, allOnPortZero(data))
	admin := func(args ...string) (string, error) {
		base := []string{"-https", s.listeners["https"], "-ca", filepath.Join(data, "ca", pki.CACertFile),
			"-token-file", filepath.Join(data, adminTokenFile)}
		out, err := exec.Command(bin, append(base, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := admin("tenant", "add", "acme.test", "-name", "Acme"); err != nil || !strings.Contains(out, `"domain": "acme.test"`) && !strings.Contains(out, `"domain":"acme.test"`) {
		t.Fatalf("tenant add: %v\n%s", err, out)
	}
	if out, err := admin("tenants"); err != nil || !strings.Contains(out, "acme.test") || !strings.Contains(out, demoDomain) {
		t.Fatalf("tenants: %v\n%s", err, out)
	}
	if out, err := admin("tenant", "add", "acme.test"); err == nil || !strings.Contains(out, "exists") {
		t.Fatalf("tenant add of an existing tenant: %v\n%s", err, out)
	}
	if out, err := admin("tenant", "delete", "acme.test"); err != nil {
		t.Fatalf("tenant delete: %v\n%s", err, out)
	}
	if out, err := admin("tenants"); err != nil || strings.Contains(out, "acme.test") {
		t.Fatalf("tenants after the delete: %v\n%s", err, out)
	}
}
