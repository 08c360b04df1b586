package main

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/internal/dnstest"
	"github.com/parleyuc/parley/pki"
)

// organization is one reference server run by its own organization, on
// its own loopback address, configured by its config file alone.
type organization struct {
	domain, ip string
	data       string
	edgePort   int
	s          *server
	kill       func()   // ends s's process
	more       []string // tenants besides domain
}

// freePort returns a TCP port free on ip now (the edge's port must be in
// the partner's config before either server starts).
func freePort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("loopback address %s: %v", ip, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func newOrganization(t *testing.T, domain, ip string) *organization {
	t.Helper()
	o := &organization{domain: domain, ip: ip, data: t.TempDir(), edgePort: freePort(t, ip)}
	// The CA first: the partner's config names its certificate.
	if _, err := pki.OpenCA(filepath.Join(o.data, "ca"), pki.CAConfig{CommonName: domain + " CA"}); err != nil {
		t.Fatal(err)
	}
	return o
}

// tenants is o's config's "tenants".
func (o *organization) tenants() []map[string]string {
	out := []map[string]string{{"domain": o.domain}}
	for _, d := range o.more {
		out = append(out, map[string]string{"domain": d})
	}
	return out
}

func (o *organization) caFile() string { return filepath.Join(o.data, "ca", pki.CACertFile) }

// start runs o's server as its own process, federating with partner: at
// the partner's edge address if static, else found by DNS SRV.
func (o *organization) start(t *testing.T, dns *dnstest.Server, partner *organization, static bool) {
	t.Helper()
	p := map[string]any{"domain": partner.domain, "ca": partner.caFile()}
	if static {
		p["edge"] = net.JoinHostPort(partner.domain, strconv.Itoa(partner.edgePort))
	}
	o.startWith(t, dns, []any{p})
}

// startWith runs o's server as its own process with partners in its
// config (none: only those its admin adds).
func (o *organization) startWith(t *testing.T, dns *dnstest.Server, partners []any) {
	t.Helper()
	cfg := map[string]any{
		"listen": o.ip, "data": o.data,
		"http": ":0", "https": ":0", "sip_tls": ":0", "sip_wss": ":0", "edge_users": ":0", "turn": ":0", "turns": ":0", "media": ":0",
		"edge":       net.JoinHostPort(o.ip, strconv.Itoa(o.edgePort)),
		"tenants":    o.tenants(),
		"federation": map[string]any{"partners": partners, "dns": dns.Addr},
	}
	file := writeConfig(t, cfg)
	o.s, o.kill = startServerProcessArgs(t, o.data, []string{"-config", file})
	for name, addr := range o.s.listeners { // dialed on the address bound
		_, port, _ := net.SplitHostPort(addr)
		o.s.listeners[name] = net.JoinHostPort(o.ip, port)
	}
}

// user adds user to o's directory and signs them in.
func (o *organization) user(t *testing.T, name string) *phone {
	t.Helper()
	const password = "a long enough password"
	o.s.admin(t).must("POST", "/users", `{"uri":"sip:`+name+`@`+o.domain+`","enabled":true,"meeting_license":true,"password":"`+password+`"}`, 201, nil)
	return signIn(t, o.s, name+"@"+o.domain, password)
}

// TestTwoOrganizationsFederate: two reference servers, acme.test on
// 127.0.0.2 and partner.test on 127.0.0.3, each a process configured by
// its own config file alone (its tenant, and the other as a partner whose
// CA it trusts), find each other's edges (in the config, or by DNS SRV):
// alice and carol exchange messages both ways and see each other's
// presence; carol joins alice's meeting as a federated participant
// through the lobby, admitted by alice; once acme.test's admin blocks
// partner.test, carol's
// subscription to alice's presence ends and her next message is refused.
func TestTwoOrganizationsFederate(t *testing.T) {
	for _, static := range []bool{true, false} {
		name := "DNS SRV"
		if static {
			name = "static partners"
		}
		t.Run(name, func(t *testing.T) {
			dns := dnstest.Start(t)
			acme, partner := newOrganization(t, "acme.test", "127.0.0.2"), newOrganization(t, "partner.test", "127.0.0.3")
			for _, o := range []*organization{acme, partner} {
				dns.AddHost(o.domain, net.ParseIP(o.ip))
				if !static {
					dns.AddSRV("_sipfederationtls._tcp."+o.domain, dnstest.SRV{Target: o.domain, Port: uint16(o.edgePort), Priority: 10})
				}
			}
			acme.start(t, dns, partner, static)
			partner.start(t, dns, acme, static)
			alice, carol := acme.user(t, "alice"), partner.user(t, "carol")

			if code := alice.send(t, sip.MESSAGE, "sip:carol@partner.test", "text/plain", "hello partner"); code != 200 {
				t.Fatalf("alice to carol: %d", code)
			}
			await(t, carol.messages, "MESSAGE at carol", "hello partner")
			if code := carol.send(t, sip.MESSAGE, "sip:alice@acme.test", "text/plain", "hello acme"); code != 200 {
				t.Fatalf("carol to alice: %d", code)
			}
			await(t, alice.messages, "MESSAGE at alice", "hello acme")

			alice.watch(t, "sip:carol@partner.test")
			await(t, alice.notifies, "NOTIFY of carol's presence at alice", "<basic>open</basic>")
			carol.watch(t, "sip:alice@acme.test")
			await(t, carol.notifies, "NOTIFY of alice's presence at carol", "<basic>open</basic>")

			if static {
				federatedMeetingJoin(t, acme, alice, carol)
			}

			acme.s.admin(t).must("POST", "/federation", `{"block":["partner.test"]}`, 200, nil)
			await(t, carol.notifies, "the end of carol's subscription to alice", "Subscription-State: terminated;reason=rejected")
			if code := carol.send(t, sip.MESSAGE, "sip:alice@acme.test", "text/plain", "still there?"); code != 403 {
				t.Fatalf("carol to alice once acme.test blocked partner.test: %d, want 403", code)
			}
		})
	}
}

// federatedMeetingJoin: alice schedules a meeting and joins it over SIP,
// watching its state; carol of the partner joins through both edges,
// waits in the lobby as a federated participant, and is admitted.
func federatedMeetingJoin(t *testing.T, acme *organization, alice, carol *phone) {
	t.Helper()
	res := digestDo(t, acme.s.httpsClient(t), "POST", "https://"+acme.s.listeners["https"]+"/api/meetings", "alice", alice.password,
		[]byte(`{"subject":"With our partner","access":"organization"}`))
	var m scheduled
	if res.StatusCode != http.StatusCreated || json.NewDecoder(res.Body).Decode(&m) != nil {
		t.Fatalf("alice schedules: %s", res.Status)
	}
	res.Body.Close()
	notifies := make(chan *sip.Request, 32)
	alice.srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		if ev := req.GetHeader("Event"); ev != nil && ev.Value() == "conference" {
			notifies <- req
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	contact := sip.NewHeader("Contact", "<sip:alice@127.0.0.1;transport=tls>")
	invite := alice.request(sip.INVITE, m.Focus, contact)
	in, err := alice.do(invite)
	if err != nil || in.StatusCode != 200 {
		t.Fatalf("alice joins her meeting: %v %v", in, err)
	}
	if res, err := alice.do(alice.request(sip.SUBSCRIBE, m.Focus, sip.NewHeader("Event", "conference"), contact)); err != nil || res.StatusCode != 200 {
		t.Fatalf("alice watches her meeting: %v %v", res, err)
	}

	joined := make(chan *sip.Response, 1)
	go func() {
		res, err := carol.do(carol.request(sip.INVITE, m.Focus, sip.NewHeader("Contact", "<sip:carol@127.0.0.1;transport=tls>")))
		if err != nil {
			res = nil
		}
		joined <- res
	}()
	carolID := awaitPending(t, notifies, "sip:carol@partner.test")
	admit := &conference.ControlRequest{ID: "1", Admit: &conference.Target{Participant: carolID}}
	info := inMeetingDialog(alice.sipUser, invite, in, sip.INFO)
	info.AppendHeader(sip.NewHeader("Content-Type", conference.ControlType))
	info.SetBody(admit.Marshal())
	if res, err := alice.do(info); err != nil || res.StatusCode != 200 {
		t.Fatalf("alice admits carol: %v %v", res, err)
	}
	select {
	case res := <-joined:
		if res == nil || res.StatusCode != 200 {
			t.Fatalf("carol, admitted: %v", res)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("carol still waits after her admission")
	}
}

// awaitPending waits until the user entity waits in the lobby as a
// federated participant, and returns its participant ID.
func awaitPending(t *testing.T, notifies <-chan *sip.Request, entity string) string {
	t.Helper()
	u := awaitPendingUser(t, notifies, entity, func(u conference.User) bool { return u.Entity == entity })
	if u.Type != "federated" {
		t.Fatalf("%s waits in the lobby as %q, want federated", entity, u.Type)
	}
	return string(u.Endpoints[0].ParticipantID())
}
