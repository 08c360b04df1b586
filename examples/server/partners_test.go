package main

import (
	"encoding/json"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/internal/dnstest"
	"github.com/parleyuc/parley/internal/testredis"
	"github.com/parleyuc/parley/pki"
)

// buildAdmin builds the admin command line (examples/admin) and returns
// a func that runs it against s as its service admin.
func buildAdmin(t *testing.T, s *server) func(args ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parley-admin")
	if out, err := exec.Command("go", "build", "-o", bin, "../admin").CombinedOutput(); err != nil {
		t.Fatalf("go build ../admin: %v\n%s", err, out)
	}
	return func(args ...string) (string, error) {
		base := []string{"-https", s.listeners["https"], "-ca", filepath.Join(s.data, "ca", pki.CACertFile),
			"-token-file", filepath.Join(s.data, adminTokenFile)}
		out, err := exec.Command(bin, append(base, args...)...).CombinedOutput()
		return string(out), err
	}
}

// adminRefusal sends method path with body as a's admin and returns the
// status and the error the answer carries.
func adminRefusal(t *testing.T, a *admin, method, path, body string) (int, string) {
	t.Helper()
	req := mustRequest(t, method, a.base+path, []byte(body))
	req.Header.Set("Authorization", "Bearer "+a.token)
	res, err := a.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	var e struct{ Error string }
	_ = json.Unmarshal(data, &e)
	return res.StatusCode, e.Error
}

// TestPartnersFromTheAdminAPI: acme.test's server starts with no partner
// in its config, and partner.test's does not reach it (acme.test's edge
// does not trust partner.test's CA). acme.test's admin adds partner.test
// with parley-admin (its edge, its CA's PEM): at once alice and carol
// exchange messages both ways and see each other's presence, without a
// restart. The partner is kept: after acme.test's server restarts it is
// still listed and still reachable. Removed with parley-admin, it is
// blocked at once: carol's subscription to alice's presence ends and
// her next message is refused. Bad partners are refused naming the
// field at fault.
func TestPartnersFromTheAdminAPI(t *testing.T) {
	dns := dnstest.Start(t)
	acme, partner := newOrganization(t, "acme.test", "127.0.0.2"), newOrganization(t, "partner.test", "127.0.0.3")
	for _, o := range []*organization{acme, partner} {
		dns.AddHost(o.domain, net.ParseIP(o.ip))
	}
	acme.startWith(t, dns, []any{}) // no partner: its admin adds them
	partner.start(t, dns, acme, true)
	alice, carol := acme.user(t, "alice"), partner.user(t, "carol")
	for _, c := range []struct {
		from *phone
		to   string
	}{{alice, "sip:carol@partner.test"}, {carol, "sip:alice@acme.test"}} {
		req := c.from.request(sip.MESSAGE, c.to, sip.NewHeader("Content-Type", "text/plain"))
		req.SetBody([]byte("anyone there?"))
		if res, err := c.from.do(req); err == nil && res.StatusCode == 200 {
			t.Fatalf("%s reached before acme.test's admin added partner.test", c.to)
		}
	}

	a := acme.s.admin(t)
	for _, c := range []struct{ body, says string }{
		{`{"domain":"acme.test"}`, "domain: acme.test is one of this server's tenants"},
		{`{"domain":"no-dots"}`, "domain: "},
		{`{"domain":"x.test","edge":"127.0.0.3:5061"}`, "edge: "},
		{`{"domain":"x.test","edge":"edge.x.test"}`, "edge: "},
		{`{"domain":"x.test","ca":"not a certificate"}`, "ca: "},
		{`{"domain":"x.test","cert":"x"}`, "body: "},
	} {
		if code, msg := adminRefusal(t, a, "POST", "/federation/partners", c.body); code != 400 || !strings.Contains(msg, c.says) {
			t.Errorf("partner %s: %d %q, want 400 saying %q", c.body, code, msg, c.says)
		}
	}
	if code, _ := adminRefusal(t, a, "DELETE", "/federation/partners/x.test", ""); code != 404 {
		t.Errorf("deleting a partner there is not: %d, want 404", code)
	}

	run := buildAdmin(t, acme.s)
	edgeAddr := net.JoinHostPort(partner.domain, strconv.Itoa(partner.edgePort))
	if out, err := run("partner", "add", "partner.test", "-edge", edgeAddr, "-ca", partner.caFile()); err != nil || !strings.Contains(out, `"source": "admin"`) {
		t.Fatalf("partner add: %v\n%s", err, out)
	}
	if out, err := run("partner", "add", "partner.test"); err == nil || !strings.Contains(out, "exists") {
		t.Fatalf("partner add of a partner there is: %v\n%s", err, out)
	}
	exchange := func(alice, carol *phone, what string) {
		t.Helper()
		if code := alice.send(t, sip.MESSAGE, "sip:carol@partner.test", "text/plain", "hello partner "+what); code != 200 {
			t.Fatalf("alice to carol %s: %d", what, code)
		}
		await(t, carol.messages, "MESSAGE at carol", "hello partner "+what)
		if code := carol.send(t, sip.MESSAGE, "sip:alice@acme.test", "text/plain", "hello acme "+what); code != 200 {
			t.Fatalf("carol to alice %s: %d", what, code)
		}
		await(t, alice.messages, "MESSAGE at alice", "hello acme "+what)
	}
	exchange(alice, carol, "once added")
	alice.watch(t, "sip:carol@partner.test")
	await(t, alice.notifies, "NOTIFY of carol's presence at alice", "<basic>open</basic>")

	// A restart keeps the partner.
	acme.kill()
	acme.startWith(t, dns, []any{})
	alice = signIn(t, acme.s, "alice@acme.test", alice.password)
	run = buildAdmin(t, acme.s)
	if out, err := run("partners"); err != nil || !strings.Contains(out, `"domain": "partner.test"`) || !strings.Contains(out, edgeAddr) ||
		!strings.Contains(out, "partner.test CA") {
		t.Fatalf("partners after a restart: %v\n%s", err, out)
	}
	exchange(alice, carol, "after a restart")
	carol.watch(t, "sip:alice@acme.test")
	await(t, carol.notifies, "NOTIFY of alice's presence at carol", "<basic>open</basic>")

	if out, err := run("partner", "delete", "partner.test"); err != nil {
		t.Fatalf("partner delete: %v\n%s", err, out)
	}
	await(t, carol.notifies, "the end of carol's subscription to alice", "Subscription-State: terminated;reason=rejected")
	if code := carol.send(t, sip.MESSAGE, "sip:alice@acme.test", "text/plain", "still there?"); code != 403 {
		t.Fatalf("carol to alice once partner.test was removed: %d, want 403", code)
	}
	if out, err := run("partners"); err != nil || strings.Contains(out, "partner.test") {
		t.Fatalf("partners after the delete: %v\n%s", err, out)
	}
	if out, err := run("federation"); err != nil || !strings.Contains(out, `"blocked": [
    "partner.test"`) {
		t.Fatalf("the federation policy once partner.test was removed: %v\n%s", err, out)
	}
}

// poolFrontEnd starts a front end of o's pool on ip, its own process,
// on redis: o's config (its tenant, partner as a static partner, the
// test DNS), with the edge on edge.
func (o *organization) poolFrontEnd(t *testing.T, ip, edge, redisURL string, dns *dnstest.Server, partner *organization) *server {
	t.Helper()
	file := writeConfig(t, map[string]any{
		"listen": ip, "data": o.data,
		"http": ":0", "https": ":0", "sip_tls": ":0", "sip_wss": ":0", "edge_users": ":0", "turn": ":0", "turns": ":0", "media": ":0",
		"edge":    edge,
		"tenants": []map[string]string{{"domain": o.domain}},
		"federation": map[string]any{"dns": dns.Addr, "partners": []any{map[string]any{"domain": partner.domain, "ca": partner.caFile(),
			"edge": net.JoinHostPort(partner.domain, strconv.Itoa(partner.edgePort))}}},
	})
	s, _ := startServerProcessArgs(t, o.data, []string{"-config", file, "-store", "redis", "-redis", redisURL, "-pool", ip + ":0"})
	for name, addr := range s.listeners {
		_, port, _ := net.SplitHostPort(addr)
		s.listeners[name] = net.JoinHostPort(ip, port)
	}
	return s
}

// TestPoolFollowsTenantAndFederationChanges: acme.test runs a pool of
// two front ends on one redis-server, A (127.0.0.2) and B (127.0.0.4,
// whose edge partner.test's server reaches). What acme.test's admin
// changes through A, B follows at once: a new tenant is on B's
// certificate, a partner added on A is B's partner, and once A blocks
// partner.test, carol's subscription to alice's presence, held by B,
// ends and her next message through B is refused.
func TestPoolFollowsTenantAndFederationChanges(t *testing.T) {
	rds := testredis.Run(t)
	dns := dnstest.Start(t)
	acme, partner := newOrganization(t, "acme.test", "127.0.0.4"), newOrganization(t, "partner.test", "127.0.0.3")
	for _, o := range []*organization{acme, partner} {
		dns.AddHost(o.domain, net.ParseIP(o.ip))
	}
	a := acme.poolFrontEnd(t, "127.0.0.2", "127.0.0.2:0", rds.URL, dns, partner)
	b := acme.poolFrontEnd(t, "127.0.0.4", net.JoinHostPort(acme.ip, strconv.Itoa(acme.edgePort)), rds.URL, dns, partner)
	partner.start(t, dns, acme, true)
	acme.s = a
	acme.user(t, "alice") // signed in on A
	carol := partner.user(t, "carol")
	carol.watch(t, "sip:alice@acme.test") // through B's edge: B holds the subscription
	await(t, carol.notifies, "NOTIFY of alice's presence at carol", "<basic>open</basic>")

	within := func(what string, done func() bool) {
		t.Helper()
		start := time.Now()
		for !done() {
			if time.Since(start) > 2*time.Second {
				t.Fatalf("%s: not within 2 s of the change on A", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a.admin(t).must("POST", "/tenants", `{"domain":"gamma.test","name":"Gamma"}`, 201, nil)
	within("B's certificate names gamma.test", func() bool { return namesDomain(t, b, "gamma.test") })
	a.admin(t).must("DELETE", "/tenants/gamma.test", "", 204, nil)
	within("B's certificate no longer names gamma.test", func() bool { return !namesDomain(t, b, "gamma.test") })

	a.admin(t).must("POST", "/federation/partners", `{"domain":"other.test","edge":"edge.other.test:5061"}`, 201, nil)
	within("other.test a partner on B", func() bool {
		var list []partnerJSON
		b.admin(t).must("GET", "/federation/partners", "", 200, &list)
		return len(list) == 2 && list[1].Domain == "other.test" && list[1].Source == "admin"
	})

	blocked := time.Now()
	a.admin(t).must("POST", "/federation", `{"block":["partner.test"]}`, 200, nil)
	await(t, carol.notifies, "the end of carol's subscription to alice, held by B", "Subscription-State: terminated;reason=rejected")
	if d := time.Since(blocked); d > 2*time.Second {
		t.Fatalf("carol's subscription on B ended %v after A blocked partner.test", d)
	}
	if code := carol.send(t, sip.MESSAGE, "sip:alice@acme.test", "text/plain", "still there?"); code != 403 {
		t.Fatalf("carol to alice through B once A blocked partner.test: %d, want 403", code)
	}
}

// TestTenantFederationPolicy: acme.test's server hosts acme.test and
// beta.test, both federating with partner.test. acme.test's own policy
// blocks partner.test (the service's still allows it): carol of
// partner.test no longer reaches alice of acme.test, nor alice her,
// and carol's subscription to alice's presence ends; bea of beta.test
// and carol still reach each other.
func TestTenantFederationPolicy(t *testing.T) {
	dns := dnstest.Start(t)
	acme, partner := newOrganization(t, "acme.test", "127.0.0.2"), newOrganization(t, "partner.test", "127.0.0.3")
	acme.more = []string{"beta.test"}
	for _, o := range []*organization{acme, partner} {
		dns.AddHost(o.domain, net.ParseIP(o.ip))
	}
	acmeEdge := net.JoinHostPort(acme.domain, strconv.Itoa(acme.edgePort))
	acme.start(t, dns, partner, true)
	partner.startWith(t, dns, []any{ // acme.test's edge serves both its tenants
		map[string]any{"domain": "acme.test", "ca": acme.caFile(), "edge": acmeEdge},
		map[string]any{"domain": "beta.test", "ca": acme.caFile(), "edge": acmeEdge}})
	const password = "a long enough password"
	acme.s.admin(t).must("POST", "/users", `{"uri":"sip:bea@beta.test","enabled":true,"password":"`+password+`"}`, 201, nil)
	alice, bea, carol := acme.user(t, "alice"), signIn(t, acme.s, "bea@beta.test", password), partner.user(t, "carol")
	carol.watch(t, "sip:alice@acme.test")
	await(t, carol.notifies, "NOTIFY of alice's presence at carol", "<basic>open</basic>")
	reach := func(from *phone, to string, want int) {
		t.Helper()
		if code := from.send(t, sip.MESSAGE, to, "text/plain", "hello"); code != want {
			t.Fatalf("%s to %s: %d, want %d", from.name, to, code, want)
		}
	}
	reach(carol, "sip:alice@acme.test", 200)

	a := acme.s.admin(t)
	a.must("POST", "/tenants/acme.test/federation", `{"block":["partner.test"]}`, 200, nil)
	await(t, carol.notifies, "the end of carol's subscription to alice", "Subscription-State: terminated;reason=rejected")
	reach(carol, "sip:alice@acme.test", 403)
	reach(alice, "sip:carol@partner.test", 403)
	reach(carol, "sip:bea@beta.test", 200)
	reach(bea, "sip:carol@partner.test", 200)
	var policy struct{ Blocked []string }
	a.must("GET", "/federation", "", 200, &policy)
	if len(policy.Blocked) != 0 {
		t.Fatalf("the service's policy blocks %v: acme.test's own block is acme.test's alone", policy.Blocked)
	}
	a.must("GET", "/tenants/acme.test/federation", "", 200, &policy)
	if len(policy.Blocked) != 1 || policy.Blocked[0] != "partner.test" {
		t.Fatalf("acme.test's own policy blocks %v, want partner.test", policy.Blocked)
	}
	a.must("GET", "/tenants/nowhere.test/federation", "", 404, nil)

	// Forgotten again: carol reaches alice once more.
	a.must("POST", "/tenants/acme.test/federation", `{"forget":["partner.test"]}`, 200, nil)
	reach(carol, "sip:alice@acme.test", 200)
}
