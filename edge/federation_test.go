package edge

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/dnstest"
	"github.com/parleyuc/parley/internal/testpki"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
)

// deployment is one Parley installation: its own CA, tenant, internal
// server (registrar, router, presence) and Access Edge, on its own
// loopback address.
type deployment struct {
	t          *testing.T
	domain, ip string
	pki        *testpki.PKI
	verifier   *pki.Verifier
	crls       *pki.CRLCache
	federation *Federation
	internal   string // SIP TLS address of the internal server
	edge       string // the Access Edge's address
	userEdge   string // its address for remote users
	edgeCert   *pki.Certificate
	partners   map[string]string
	dns        *dnstest.Server
	presence   *presence.PresenceServer
}

const federationPassword = "federation-secret"

// newDeployment starts a deployment of domain on ip. trust lists the CA
// certificates it trusts besides its own (cross-trust with partners);
// partners is filled in later (the other deployment's edge address).
func newDeployment(t *testing.T, dns *dnstest.Server, domain, ip string, p *testpki.PKI, trust ...*x509.Certificate) *deployment {
	t.Helper()
	return newDeploymentWith(t, dns, domain, ip, p, nil, trust...)
}

// newDeploymentWith is newDeployment with its Access Edge's config
// changed by edit (nil: none).
func newDeploymentWith(t *testing.T, dns *dnstest.Server, domain, ip string, p *testpki.PKI, edit func(*AccessEdgeConfig), trust ...*x509.Certificate) *deployment {
	t.Helper()
	d := &deployment{t: t, domain: domain, ip: ip, pki: p, federation: NewFederation(), partners: map[string]string{}, dns: dns}
	dns.AddHost("sip."+domain, net.ParseIP(ip))
	dns.AddHost("edge."+domain, net.ParseIP(ip))
	roots := x509.NewCertPool()
	roots.AddCert(p.CA.Certificate())
	for _, c := range trust {
		roots.AddCert(c)
	}
	var err error
	d.crls, err = pki.NewCRLCache(pki.CRLCacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.crls.Close() })
	d.verifier, err = pki.NewVerifier(pki.VerifierConfig{Roots: roots, CRLs: d.crls})
	if err != nil {
		t.Fatal(err)
	}
	addr := net.ParseIP(ip)
	// Servers are dialed by name (TLS verifies the name dialed), which
	// the test's DNS resolves to the deployment's address.
	internalKP := testpki.KeyPair(t)(p.CA.IssueServer(pki.ServerCertRequest{DNSNames: []string{"sip." + domain}, IPAddresses: []net.IP{addr}, ClientAuth: true}))
	d.edgeCert, err = p.CA.IssueServer(pki.ServerCertRequest{DNSNames: []string{"edge." + domain, domain}, IPAddresses: []net.IP{addr}, ClientAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	edgeKP := testpki.KeyPair(t)(d.edgeCert, nil)

	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: domain})
	for _, user := range []string{"alice", "bob"} {
		h := sha256.Sum256([]byte(user + ":" + domain + ":" + federationPassword))
		_ = dir.PutUser(auth.User{URI: "sip:" + user + "@" + domain, DisplayName: user, Tenant: domain, Enabled: true,
			Credentials: auth.Credentials{HA1SHA256: hex.EncodeToString(h[:])}})
	}
	authn, err := auth.New(auth.Config{Directory: dir, Realm: domain, Edges: []string{"edge." + domain}, EdgeCA: p.CA.Certificate(), DisableMD5: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = authn.Close() })

	// The edge first: the router needs its address.
	eln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("loopback address %s: %v", ip, err)
	}
	d.edge = "edge." + domain + ":" + portOf(eln.Addr())
	uln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	d.userEdge = "edge." + domain + ":" + portOf(uln.Addr())
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	d.internal = "sip." + domain + ":" + portOf(ln.Addr())

	ua, _ := sipgo.NewUA(sipgo.WithUserAgent("internal-"+domain), sipgo.WithUserAgentDNSResolver(dns.Resolver()),
		sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(internalKP, d.verifier, "")))
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua)
	reg, _ := presence.NewRegistrar(presence.RegistrarConfig{Auth: authn})
	policy, _ := presence.NewPresencePolicy(presence.PresencePolicyConfig{})
	router, err := presence.NewRouter(presence.RouterConfig{Auth: authn, Directory: dir, Locator: reg, Client: client, Policy: policy,
		Connections: ua.TransportLayer(), Listeners: map[string]string{"TLS": d.internal}, Edge: d.edge, Resolver: dns.Resolver()})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := presence.NewPresenceServer(presence.PresenceServerConfig{Auth: authn, Directory: dir, Policy: policy, Registrar: reg,
		Client: client, Connections: ua.TransportLayer()})
	if err != nil {
		t.Fatal(err)
	}
	d.presence = ps
	srv.OnRegister(reg.HandleRegister)
	srv.OnMessage(router.HandleMessage)
	srv.OnPublish(ps.HandlePublish)
	srv.OnSubscribe(presence.SubscribeHandler(router.OutboundSubscribe(ps.HandleSubscribe), router.HandleSubscribe))
	for _, m := range []sip.RequestMethod{sip.ACK, sip.BYE, sip.INFO, sip.NOTIFY} {
		srv.OnRequest(m, router.HandleInDialog)
	}

	eua, _ := sipgo.NewUA(sipgo.WithUserAgent("edge-"+domain), sipgo.WithUserAgentDNSResolver(dns.Resolver()),
		sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(edgeKP, d.verifier, "")))
	esrv, _ := sipgo.NewServer(eua)
	eclient, _ := sipgo.NewClient(eua)
	aeCfg := AccessEdgeConfig{Federation: d.federation, Domains: []string{domain}, Internal: d.internal,
		Listener: d.edge, Client: eclient, Connections: eua.TransportLayer(), InternalNames: []string{"sip." + domain},
		InternalCA: p.CA.Certificate(), Partners: d.partners, Resolver: dns.Resolver()}
	if edit != nil {
		edit(&aeCfg)
	}
	ae, err := NewAccessEdge(aeCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ae.Close() })
	for _, m := range edgeMethods {
		esrv.OnRequest(m, ae.HandleRequest)
	}
	done := make(chan struct{}, 3)
	go func() {
		defer func() { done <- struct{}{} }()
		_ = srv.ServeTLS(authn.Listener(tls.NewListener(ln, pki.ServerTLSConfig(internalKP, d.verifier))))
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		_ = esrv.ServeTLS(ae.Listener(tls.NewListener(eln, pki.MutualTLSServerConfig(edgeKP, d.verifier))))
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		_ = esrv.ServeTLS(ae.UserListener(tls.NewListener(uln, pki.ServerTLSConfig(edgeKP, d.verifier))))
	}()
	t.Cleanup(func() {
		_ = ps.Close()
		_ = ln.Close()
		_ = eln.Close()
		_ = uln.Close()
		_ = eclient.Close()
		_ = eua.Close()
		_ = client.Close()
		_ = ua.Close()
		<-done
		<-done
		<-done
	})
	return d
}

// edgeMethods are the methods the tests' Access Edges take.
var edgeMethods = []sip.RequestMethod{sip.INVITE, sip.ACK, sip.BYE, sip.INFO, sip.SUBSCRIBE, sip.NOTIFY, sip.MESSAGE, sip.OPTIONS,
	sip.REGISTER, sip.PUBLISH}

// fedPhone is a user's device, signed in to its deployment (at its
// internal server, or through its edge if dest says so).
type fedPhone struct {
	t        *testing.T
	d        *deployment
	dest     string
	user     string
	client   *sipgo.Client
	inbox    chan *sip.Request
	notifies chan *sip.Request
}

func (d *deployment) phone(user string) *fedPhone { return d.phoneAt(user, d.internal) }

// phoneAt is phone, signed in at dest.
func (d *deployment) phoneAt(user, dest string) *fedPhone {
	d.t.Helper()
	ua, _ := sipgo.NewUA(sipgo.WithUserAgentDNSResolver(d.dns.Resolver()), sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(nil, d.verifier, "")))
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua)
	p := &fedPhone{t: d.t, d: d, dest: dest, user: user, client: client, inbox: make(chan *sip.Request, 8), notifies: make(chan *sip.Request, 16)}
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		p.inbox <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		p.notifies <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	d.t.Cleanup(func() { _ = client.Close(); _ = ua.Close() })
	if res := p.do(p.request(sip.REGISTER, "sip:"+d.domain, sip.NewHeader("Expires", "600"))); res.StatusCode != 200 {
		d.t.Fatalf("%s registers: %v", p.aor(), res)
	}
	return p
}

func (p *fedPhone) aor() string { return "sip:" + p.user + "@" + p.d.domain }

func (p *fedPhone) request(method sip.RequestMethod, target string, headers ...sip.Header) *sip.Request {
	var to, from sip.Uri
	_ = sip.ParseUri(target, &to)
	_ = sip.ParseUri(p.aor(), &from)
	req := sip.NewRequest(method, to)
	params := sip.NewParams()
	params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(&sip.FromHeader{Address: from, Params: params})
	if method == sip.REGISTER {
		req.AppendHeader(&sip.ToHeader{Address: from})
	} else {
		req.AppendHeader(&sip.ToHeader{Address: to})
	}
	req.AppendHeader(sip.NewHeader("Contact", "<sip:"+p.user+"-dev@"+p.d.ip+";transport=tls>"))
	for _, h := range headers {
		req.AppendHeader(h)
	}
	req.SetTransport("TLS")
	req.SetDestination(p.dest)
	return req
}

func (p *fedPhone) do(req *sip.Request) *sip.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.client.Do(ctx, req)
	if err == nil && res != nil && res.StatusCode == 401 {
		res, err = p.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.user, Password: federationPassword})
	}
	if err != nil || res == nil {
		p.t.Fatalf("%s %s: %v", req.Method, req.Recipient.String(), err)
	}
	return res
}

func (p *fedPhone) message(to, text string) *sip.Response {
	req := p.request(sip.MESSAGE, to, sip.NewHeader("Content-Type", "text/plain"))
	req.SetBody([]byte(text))
	return p.do(req)
}

func received(t *testing.T, ch chan *sip.Request, what string) *sip.Request {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s", what)
		return nil
	}
}

// TestTwoDeploymentsFederate: two Parley deployments on 127.0.0.2 and
// 127.0.0.3, each with its own CA and trusting the other's, exchange
// messages and presence through both Access Edges; a blocked domain, a
// partner certificate naming another domain and a revoked partner
// certificate are each refused.
func TestTwoDeploymentsFederate(t *testing.T) {
	pa, pb := testpki.New(t), testpki.New(t)
	dns := dnstest.Start(t)
	a := newDeployment(t, dns, "a.test", "127.0.0.2", pa, pb.CA.Certificate())
	b := newDeployment(t, dns, "b.test", "127.0.0.3", pb, pa.CA.Certificate())
	a.partners["b.test"] = b.edge
	b.partners["a.test"] = a.edge

	alice, bob := a.phone("alice"), b.phone("bob")

	// Messages both ways, each asserted as the federated sender.
	if res := alice.message("sip:bob@b.test", "hello from a"); res.StatusCode != 200 {
		t.Fatalf("alice to bob: %v", res)
	}
	m := received(t, bob.inbox, "MESSAGE at bob")
	if string(m.Body()) != "hello from a" || m.GetHeader("P-Asserted-Identity") == nil ||
		!strings.Contains(m.GetHeader("P-Asserted-Identity").Value(), "sip:alice@a.test") {
		t.Fatalf("bob got:\n%s", m)
	}
	if res := bob.message("sip:alice@a.test", "hello from b"); res.StatusCode != 200 {
		t.Fatalf("bob to alice: %v", res)
	}
	if m := received(t, alice.inbox, "MESSAGE at alice"); string(m.Body()) != "hello from b" {
		t.Fatalf("alice got:\n%s", m)
	}

	// Presence both ways: a subscription through both edges, and its
	// NOTIFY back.
	for _, w := range []struct {
		watcher    *fedPhone
		presentity string
	}{{alice, "sip:bob@b.test"}, {bob, "sip:alice@a.test"}} {
		sub := w.watcher.request(sip.SUBSCRIBE, w.presentity, sip.NewHeader("Event", "presence"), sip.NewHeader("Accept", "application/pidf+xml"),
			sip.NewHeader("Expires", "600"))
		if res := w.watcher.do(sub); res.StatusCode != 200 {
			t.Fatalf("%s watches %s: %v", w.watcher.aor(), w.presentity, res)
		}
		n := received(t, w.watcher.notifies, "NOTIFY for "+w.presentity)
		if !strings.Contains(string(n.Body()), "<basic>open</basic>") {
			t.Fatalf("%s sees %s:\n%s", w.watcher.aor(), w.presentity, n.Body())
		}
	}

	// A blocked domain: b.test's users no longer reach a.test.
	a.federation.Block("b.test")
	if res := bob.message("sip:alice@a.test", "blocked"); res.StatusCode != 403 {
		t.Errorf("message from a blocked domain: %v", res)
	}
	// ... nor a.test's users b.test.
	if res := alice.message("sip:bob@b.test", "blocked"); res.StatusCode != 403 {
		t.Errorf("message to a blocked domain: %v", res)
	}
	a.federation.Forget("b.test")

	// A partner certificate naming another domain than the sender's.
	rogueKP := testpki.KeyPair(t)(pb.CA.IssueServer(pki.ServerCertRequest{DNSNames: []string{"c.test"}, ClientAuth: true}))
	if code := sendToEdge(t, a, rogueKP, "sip:mallory@b.test"); code != 403 {
		t.Errorf("certificate for c.test sending for b.test: %d", code)
	}

	// A partner CA's certificate naming a.test's internal server is not
	// an internal server: it cannot send a.test's users out.
	impostor := testpki.KeyPair(t)(pb.CA.IssueServer(pki.ServerCertRequest{DNSNames: []string{"sip.a.test", "b.test"}, ClientAuth: true}))
	req := func() int {
		ua, _ := sipgo.NewUA(sipgo.WithUserAgentDNSResolver(a.dns.Resolver()), sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(impostor, a.verifier, "")))
		client, _ := sipgo.NewClient(ua)
		defer func() { _ = client.Close(); _ = ua.Close() }()
		var to, f sip.Uri
		_ = sip.ParseUri("sip:bob@b.test", &to)
		_ = sip.ParseUri("sip:alice@a.test", &f)
		r := sip.NewRequest(sip.MESSAGE, to)
		params := sip.NewParams()
		params.Add("tag", sip.GenerateTagN(8))
		r.AppendHeader(&sip.FromHeader{Address: f, Params: params})
		r.AppendHeader(&sip.ToHeader{Address: to})
		r.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<sip:alice@a.test>"))
		r.SetBody([]byte("forged"))
		r.SetTransport("TLS")
		r.SetDestination(a.edge)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		res, err := client.Do(ctx, r)
		if err != nil || res == nil {
			return 0
		}
		return res.StatusCode
	}()
	if req != 403 {
		t.Errorf("a partner CA's certificate for a.test's internal server sending as alice: %d", req)
	}
	select {
	case m := <-bob.inbox:
		t.Errorf("bob got a forged message:\n%s", m)
	default:
	}

	// A revoked partner certificate: the handshake fails.
	revokedCert, err := pb.CA.IssueServer(pki.ServerCertRequest{DNSNames: []string{"b.test"}, ClientAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	revoked := testpki.KeyPair(t)(revokedCert, nil)
	if err := pb.CA.Revoke(context.Background(), revokedCert.Leaf.SerialNumber, 1); err != nil {
		t.Fatal(err)
	}
	_ = a.crls.Refresh(context.Background())
	if code := sendToEdge(t, a, revoked, "sip:mallory@b.test"); code != 0 {
		t.Errorf("revoked certificate: %d, want no TLS session", code)
	}
}

// sendToEdge sends a MESSAGE from "from" to alice at d's edge with cert,
// and returns the status, or 0 if no TLS session could be made.
func sendToEdge(t *testing.T, d *deployment, cert *pki.KeyPair, from string) int {
	t.Helper()
	ua, _ := sipgo.NewUA(sipgo.WithUserAgentDNSResolver(d.dns.Resolver()), sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(cert, d.verifier, "")))
	client, _ := sipgo.NewClient(ua)
	defer func() { _ = client.Close(); _ = ua.Close() }()
	p := &fedPhone{t: t, d: d, dest: d.edge, client: client}
	var to, f sip.Uri
	_ = sip.ParseUri("sip:alice@"+d.domain, &to)
	_ = sip.ParseUri(from, &f)
	req := sip.NewRequest(sip.MESSAGE, to)
	params := sip.NewParams()
	params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(&sip.FromHeader{Address: f, Params: params})
	req.AppendHeader(&sip.ToHeader{Address: to})
	req.SetBody([]byte("x"))
	req.SetTransport("TLS")
	req.SetDestination(d.edge)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := p.client.Do(ctx, req)
	if err != nil || res == nil {
		return 0
	}
	return res.StatusCode
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}
