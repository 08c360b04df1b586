package edge

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/internal/sipx"
	"github.com/parleyuc/parley/internal/testpki"
	"github.com/parleyuc/parley/pki"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	goleak.VerifyTestMain(m)
}

// site is an internal server with a meeting focus, and an Access Edge in
// front of it for partners.
type site struct {
	t          testing.TB
	pki        *testpki.PKI
	focus      *conference.Focus
	tokens     *conference.TokenIssuer
	federation *Federation
	internal   string // the internal server's SIP TLS address
	edge       string // the Access Edge's address for partners
	userEdge   string // its address for remote users and guests
	authn      *auth.Authenticator
	relay      *RelayCredentials
	secrets    *Secrets
	access     *AccessEdge
}

func newSite(t testing.TB) *site {
	t.Helper()
	p := testpki.New(t)
	s := &site{t: t, pki: p, federation: NewFederation()}
	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test"})
	h := sha256.Sum256([]byte("alice:example.test:alice-secret"))
	_ = dir.PutUser(auth.User{URI: "sip:alice@example.test", DisplayName: "Alice", Tenant: "example.test", Enabled: true,
		MeetingLicense: true, Credentials: auth.Credentials{HA1SHA256: hex.EncodeToString(h[:])}})

	// The internal server: auth trusts the edge's certificate to assert
	// federated users.
	meetings := conference.NewMemoryMeetings()
	authn, err := auth.New(auth.Config{Directory: dir, Realm: "example.test", Conferences: conference.Keys(meetings, nil),
		Edges: []string{"edge.example.test"}, EdgeCA: p.CA.Certificate(), DisableMD5: true})
	if err != nil {
		t.Fatal(err)
	}
	ua, _ := sipgo.NewUA()
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.internal = ln.Addr().String()
	s.tokens, _ = conference.NewTokenIssuer(nil, nil)
	s.focus, err = conference.NewFocus(conference.FocusConfig{Meetings: meetings, Directory: dir, Tokens: s.tokens,
		JoinURL: "https://meet.example.test", Auth: authn, Client: client, Connections: ua.TransportLayer(),
		Listeners: map[string]string{"TLS": s.internal}})
	if err != nil {
		t.Fatal(err)
	}
	authn.OnConnectionClose(s.focus.FlowClosed)
	notFound := func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 404, "Not Found", nil))
	}
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.ACK, sip.BYE, sip.INFO, sip.SUBSCRIBE} {
		srv.OnRequest(m, s.focus.Dispatch(notFound))
	}
	// Relay credentials over the signaling channel.
	s.authn, s.secrets = authn, NewSecrets(0, nil)
	s.relay, err = NewRelayCredentials(RelayCredentialsConfig{Secrets: s.secrets, Auth: authn,
		URIs: []string{"turn:127.0.0.1:3478?transport=udp"}})
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRequest(MethodService, s.relay.HandleService)
	// MESSAGE answers with who the internal server thinks sent it.
	srv.OnMessage(authn.Require(func(id *auth.Identity, req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("X-Identity", id.Kind.String()+" "+id.URI))
		_ = tx.Respond(res)
	}))
	internalKP := p.Server(t, "sip.example.test")

	// The Access Edge: its own certificate, to partners as a server and
	// to the internal server as a client.
	edgeKP := p.Peer(t, "edge.example.test")
	eua, _ := sipgo.NewUA(sipgo.WithUserAgent("edge"), sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(edgeKP, p.Verifier, "sip.example.test")))
	esrv, _ := sipgo.NewServer(eua)
	eclient, _ := sipgo.NewClient(eua)
	eln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.edge = eln.Addr().String()
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.userEdge = uln.Addr().String()
	isMeeting := func(uri sip.Uri) bool {
		m, err := s.focus.Meeting(context.Background(), conference.MeetingID(uri.User))
		return err == nil && strings.EqualFold(m.Tenant, uri.Host)
	}
	ae, err := NewAccessEdge(AccessEdgeConfig{Federation: s.federation, Domains: []string{"example.test"}, Internal: s.internal,
		Listener: s.edge, Client: eclient, Connections: eua.TransportLayer(), Meetings: isMeeting})
	if err != nil {
		t.Fatal(err)
	}
	s.access = ae
	t.Cleanup(func() { _ = ae.Close() })
	for _, m := range edgeMethods {
		esrv.OnRequest(m, ae.HandleRequest)
	}

	done := make(chan struct{}, 3)
	go func() {
		defer func() { done <- struct{}{} }()
		_ = srv.ServeTLS(authn.Listener(tls.NewListener(ln, pki.ServerTLSConfig(internalKP, p.Verifier))))
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		_ = esrv.ServeTLS(ae.Listener(tls.NewListener(eln, pki.MutualTLSServerConfig(edgeKP, p.Verifier))))
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		_ = esrv.ServeTLS(ae.UserListener(tls.NewListener(uln, pki.ServerTLSConfig(edgeKP, p.Verifier))))
	}()
	t.Cleanup(func() {
		_ = s.focus.Close()
		_ = ln.Close()
		_ = eln.Close()
		_ = uln.Close()
		_ = eclient.Close()
		_ = eua.Close()
		_ = client.Close()
		_ = ua.Close()
		_ = authn.Close()
		<-done
		<-done
		<-done
	})
	return s
}

// peer is a SIP client over TLS: a tenant user on the internal server, or
// a partner server sending for its users through the edge.
type peer struct {
	t          testing.TB
	ua         *sipgo.UserAgent
	client     *sipgo.Client
	dest       string
	user, pass string
	notifies   chan *sip.Request
	byes       chan *sip.Request
}

func (s *site) peer(dest, serverName string, cert *pki.KeyPair) *peer {
	ua, _ := sipgo.NewUA(sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(cert, s.pki.Verifier, serverName)))
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua)
	p := &peer{t: s.t, ua: ua, client: client, dest: dest, notifies: make(chan *sip.Request, 32), byes: make(chan *sip.Request, 4)}
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		p.notifies <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		p.byes <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	s.t.Cleanup(func() { _ = client.Close(); _ = ua.Close() })
	return p
}

// partner is partner.test's server, connecting to the edge with a
// certificate that names partner.test.
func (s *site) partner(names ...string) *peer {
	if len(names) == 0 {
		names = []string{"partner.test"}
	}
	return s.peer(s.edge, "edge.example.test", s.pki.Peer(s.t, names...))
}

// call is one dialog a peer started: its INVITE and the answer.
type call struct {
	invite *sip.Request
	ok     *sip.Response
	cseq   uint32
}

func (p *peer) request(method sip.RequestMethod, target, from, display string, headers ...sip.Header) *sip.Request {
	var uri, f sip.Uri
	_ = sip.ParseUri(target, &uri)
	_ = sip.ParseUri(from, &f)
	req := sip.NewRequest(method, uri)
	params := sip.NewParams()
	params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(&sip.FromHeader{DisplayName: display, Address: f, Params: params})
	req.AppendHeader(&sip.ToHeader{Address: uri})
	req.AppendHeader(sip.NewHeader("Contact", "<sip:"+f.User+"-dev@127.0.0.1;transport=tls>"))
	for _, h := range headers {
		req.AppendHeader(h)
	}
	req.SetTransport("TLS")
	req.SetDestination(p.dest)
	return req
}

func (p *peer) do(req *sip.Request, timeout time.Duration) *sip.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := p.client.Do(ctx, req)
	if err == nil && res != nil && res.StatusCode == 401 && p.user != "" {
		res, err = p.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.user, Password: p.pass})
	}
	if err != nil || res == nil {
		p.t.Fatalf("%s: %v %v", req.Method, res, err)
	}
	return res
}

func (p *peer) join(focus, from, display string, timeout time.Duration) *call {
	p.t.Helper()
	c := &call{invite: p.request(sip.INVITE, focus, from, display), cseq: 10}
	c.ok = p.do(c.invite, timeout)
	if c.ok.StatusCode != 200 {
		p.t.Fatalf("%s joins: %v", from, c.ok)
	}
	return c
}

// inDialog builds a request in c's dialog, routed as the 200 says.
func (p *peer) inDialog(c *call, method sip.RequestMethod) *sip.Request {
	req := sip.NewRequest(method, *c.ok.Contact().Address.Clone())
	req.AppendHeader(c.invite.From())
	req.AppendHeader(c.ok.To())
	req.AppendHeader(c.invite.CallID())
	c.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: c.cseq, MethodName: method})
	rr := c.ok.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- { // the caller's route set is the reverse
		req.AppendHeader(sip.NewHeader("Route", rr[i].Value()))
	}
	req.SetTransport("TLS")
	req.SetDestination(p.dest)
	return req
}

func (p *peer) control(c *call, r *conference.ControlRequest) (int, *conference.ControlResponse) {
	p.t.Helper()
	req := p.inDialog(c, sip.INFO)
	req.AppendHeader(sip.NewHeader("Content-Type", conference.ControlType))
	req.SetBody(r.Marshal())
	res := p.do(req, 5*time.Second)
	cr, _ := conference.ParseControlResponse(res.Body())
	return res.StatusCode, cr
}

// TestFederatedUserJoinsThroughTheEdgeAndIsPromoted: a user of a partner
// domain, sent by its server over mutual TLS, reaches a meeting's focus
// through the Access Edge as a federated participant: it waits in the
// lobby ("anyone from my organization"), is admitted and promoted by the
// organizer, gets a presenter's media token and the conference state, all
// through the edge.
func TestFederatedUserJoinsThroughTheEdgeAndIsPromoted(t *testing.T) {
	s := newSite(t)
	alice := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal}
	m, err := s.focus.Schedule(context.Background(), alice, conference.MeetingOptions{Access: conference.AccessOrganization})
	if err != nil {
		t.Fatal(err)
	}
	org := s.peer(s.internal, "sip.example.test", nil)
	org.user, org.pass = "alice", "alice-secret"
	orgCall := org.join(m.Focus(), "sip:alice@example.test", "Alice", 5*time.Second)

	partner := s.partner()
	joined := make(chan *call, 1)
	go func() {
		c := &call{invite: partner.request(sip.INVITE, m.Focus(), "sip:pat@partner.test", "Pat"), cseq: 10}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.ok, _ = partner.client.Do(ctx, c.invite)
		joined <- c
	}()

	// Pat waits in the lobby as a federated participant.
	var pat conference.Participant
	for deadline := time.Now().Add(5 * time.Second); pat.ID == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, p := range s.focus.Participants(m.ID) {
			if p.URI == "sip:pat@partner.test" {
				pat = p
			}
		}
	}
	if pat.ID == "" || pat.Type != conference.Federated || pat.State != conference.InLobby || pat.DisplayName != "Pat" {
		t.Fatalf("federated participant %+v", pat)
	}
	if code, _ := org.control(orgCall, &conference.ControlRequest{ID: "1", Admit: &conference.Target{Participant: string(pat.ID)}}); code != 200 {
		t.Fatalf("admit: %d", code)
	}
	patCall := <-joined
	if patCall.ok == nil || patCall.ok.StatusCode != 200 {
		t.Fatalf("pat's INVITE: %v", patCall.ok)
	}
	if rr := patCall.ok.GetHeaders("Record-Route"); len(rr) != 1 || !strings.Contains(rr[0].Value(), s.edge) {
		t.Fatalf("Record-Route %v: the edge stays in the dialog", rr)
	}
	// Federated users are promoted once they have joined.
	if code, _ := org.control(orgCall, &conference.ControlRequest{ID: "2", Promote: &conference.Target{Participant: string(pat.ID)}}); code != 200 {
		t.Fatalf("promote: %d", code)
	}
	code, cr := partner.control(patCall, &conference.ControlRequest{ID: "p1", AddUser: &conference.AddUser{}})
	if code != 200 || cr == nil || cr.MediaGrant == nil {
		t.Fatalf("add-user through the edge: %d %+v", code, cr)
	}
	claims, err := s.tokens.Verify(cr.MediaGrant.Token, conference.MediaClaims{Meeting: m.ID, Participant: pat.ID, Subject: "sip:pat@partner.test"})
	if err != nil || claims.Role != "presenter" {
		t.Fatalf("pat's token: %+v %v", claims, err)
	}

	// The conference state reaches pat through the edge: as a presenter it
	// sees the roster.
	sub := partner.request(sip.SUBSCRIBE, m.Focus(), "sip:pat@partner.test", "Pat", sip.NewHeader("Event", "conference"))
	if res := partner.do(sub, 5*time.Second); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE through the edge: %v", res)
	}
	select {
	case n := <-partner.notifies:
		if !strings.Contains(string(n.Body()), "sip:alice@example.test") || n.GetHeader("P-Asserted-Identity") != nil {
			t.Fatalf("NOTIFY through the edge:\n%s", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no NOTIFY through the edge")
	}
	// Pat leaves.
	if res := partner.do(partner.inDialog(patCall, sip.BYE), 5*time.Second); res.StatusCode != 200 {
		t.Fatalf("BYE through the edge: %v", res)
	}
	if len(s.focus.Participants(m.ID)) != 1 {
		t.Fatalf("participants after pat left: %+v", s.focus.Participants(m.ID))
	}
}

// TestEdgeRefusals: what the edge turns away before anything reaches
// inside.
func TestEdgeRefusals(t *testing.T) {
	s := newSite(t)
	alice := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal}
	m, _ := s.focus.Schedule(context.Background(), alice, conference.MeetingOptions{Access: conference.AccessAnyone})
	partner := s.partner()
	for _, tc := range []struct {
		name, target, from string
		want               int
	}{
		{"a user of a domain the certificate does not name", m.Focus(), "sip:quinn@other.test", 403},
		{"a request for a domain the edge does not serve", "sip:bob@elsewhere.test", "sip:pat@partner.test", 404},
		{"a partner posing as the tenant", m.Focus(), "sip:alice@example.test", 403},
	} {
		if res := partner.do(partner.request(sip.INVITE, tc.target, tc.from, ""), 5*time.Second); res.StatusCode != tc.want {
			t.Errorf("%s: %v, want %d", tc.name, res, tc.want)
		}
	}
	// A partner asserting an identity itself: the edge replaces it, the
	// internal server sees the sender the certificate vouches for.
	req := partner.request(sip.MESSAGE, "sip:alice@example.test", "sip:pat@partner.test", "", sip.NewHeader("P-Asserted-Identity", "<sip:alice@example.test>"))
	if res := partner.do(req, 5*time.Second); res.StatusCode != 200 || res.GetHeader("X-Identity") == nil || res.GetHeader("X-Identity").Value() != "federated sip:pat@partner.test" {
		t.Errorf("MESSAGE with a forged assertion: %v", res)
	}

	// Blocked by the tenant admin, at once.
	s.federation.Block("partner.test")
	if res := partner.do(partner.request(sip.INVITE, m.Focus(), "sip:pat@partner.test", ""), 5*time.Second); res.StatusCode != 403 {
		t.Errorf("blocked domain: %v", res)
	}
	s.federation.Forget("partner.test")
	s.federation.SetOpen(false)
	if res := partner.do(partner.request(sip.OPTIONS, m.Focus(), "sip:pat@partner.test", ""), 5*time.Second); res.StatusCode != 403 {
		t.Errorf("closed federation, domain not allowed: %v", res)
	}

	// Without a certificate the TLS handshake itself fails.
	noCert := s.peer(s.edge, "edge.example.test", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if res, err := noCert.client.Do(ctx, noCert.request(sip.OPTIONS, m.Focus(), "sip:pat@partner.test", "")); err == nil && res != nil {
		t.Errorf("partner without a certificate: %v", res)
	}
}

func TestFederationPolicy(t *testing.T) {
	f := NewFederation()
	if !f.Allowed("partner.test") || f.Allowed("") {
		t.Fatal("open federation by default")
	}
	f.Block("Partner.Test.")
	if f.Allowed("partner.test") {
		t.Fatal("blocked domain allowed")
	}
	f.SetOpen(false)
	f.Allow("ally.test")
	if !f.Allowed("ally.test") || f.Allowed("other.test") || f.Allowed("partner.test") {
		t.Fatal("closed federation")
	}
	f.Allow("partner.test")
	if !f.Allowed("partner.test") {
		t.Fatal("allowing a blocked domain unblocks it")
	}
	if p := f.Policy(); p.Open || len(p.Allowed) != 2 || len(p.Blocked) != 0 {
		t.Fatalf("policy %+v", p)
	}
}

// TestPartnerCannotChangeWhoItSpeaksForInADialog: with the flow token of
// its own dialog, a partner may not send in-dialog requests for another
// user or domain, nor once its domain is blocked.
func TestPartnerCannotChangeWhoItSpeaksForInADialog(t *testing.T) {
	s := newSite(t)
	alice := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal}
	m, _ := s.focus.Schedule(context.Background(), alice, conference.MeetingOptions{Access: conference.AccessAnyone})
	org := s.peer(s.internal, "sip.example.test", nil)
	org.user, org.pass = "alice", "alice-secret"
	org.join(m.Focus(), "sip:alice@example.test", "Alice", 5*time.Second)
	partner := s.partner("partner.test", "evil.test") // its certificate even names the other domain
	c := partner.join(m.Focus(), "sip:pat@partner.test", "Pat", 5*time.Second)

	// The 200 shows the edge, not the internal server.
	if ct := c.ok.Contact(); ct == nil || ct.Address.Host+":"+strconv.Itoa(ct.Address.Port) != s.edge {
		t.Fatalf("Contact to the partner: %v (internal server %s)", c.ok.Contact(), s.internal)
	}
	spoof := func(from string) *sip.Request {
		msg := partner.inDialog(c, sip.MESSAGE)
		var ruri, f sip.Uri
		_ = sip.ParseUri("sip:alice@example.test", &ruri)
		msg.Recipient = ruri
		msg.RemoveHeader("From")
		_ = sip.ParseUri(from, &f)
		tag, _ := c.invite.From().Params.Get("tag")
		p := sip.NewParams()
		p.Add("tag", tag)
		msg.AppendHeader(&sip.FromHeader{Address: f, Params: p})
		return msg
	}
	for _, from := range []string{"sip:ceo@evil.test", "sip:boss@partner.test"} {
		if res := partner.do(spoof(from), 5*time.Second); res.StatusCode != 403 {
			t.Errorf("in-dialog MESSAGE as %s: %v", from, res)
		}
	}
	// Blocked mid-dialog: its next in-dialog request is refused at the edge.
	s.federation.Block("partner.test")
	if res := partner.do(partner.inDialog(c, sip.INFO), 5*time.Second); res.StatusCode != 403 {
		t.Errorf("in-dialog INFO after the domain was blocked: %v", res)
	}
}

func TestFederationAdminAPI(t *testing.T) {
	f := NewFederation()
	srv := httptest.NewServer(f)
	defer srv.Close()
	post := func(body string) (int, FederationPolicy) {
		res, err := http.Post(srv.URL, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var p FederationPolicy
		_ = json.NewDecoder(res.Body).Decode(&p)
		return res.StatusCode, p
	}
	code, p := post(`{"block":["spam.test"],"allow":["Partner.Test"]}`)
	if code != 200 || !p.Open || len(p.Blocked) != 1 || p.Allowed[0] != "partner.test" {
		t.Fatalf("change: %d %+v", code, p)
	}
	if f.Allowed("spam.test") {
		t.Fatal("blocked over the API, still allowed")
	}
	if code, _ := post(`{"open":false}`); code != 200 || f.Allowed("other.test") || !f.Allowed("partner.test") {
		t.Fatalf("closing federation: %d", code)
	}
	for _, bad := range []string{`{"block":["not a domain"]}`, `{"blok":["x.test"]}`, `not json`} {
		if code, _ := post(bad); code != 400 {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
	if f.Policy().Open || len(f.Policy().Blocked) != 1 {
		t.Fatalf("a refused change changed something: %+v", f.Policy())
	}
	res, _ := http.Get(srv.URL)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET: %s", res.Status)
	}
}

// TestPartnerCancelReachesTheFocus: a partner's CANCEL of an INVITE waiting
// in the lobby is sent on inside, and the lobby participant is gone.
func TestPartnerCancelReachesTheFocus(t *testing.T) {
	s := newSite(t)
	alice := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal}
	m, _ := s.focus.Schedule(context.Background(), alice, conference.MeetingOptions{Access: conference.AccessOrganizer})
	partner := s.partner()
	invite := partner.request(sip.INVITE, m.Focus(), "sip:pat@partner.test", "Pat")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tx, err := partner.client.TransactionRequest(ctx, invite)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Terminate()
	waitFor := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); len(s.focus.Participants(m.ID)) != n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d participants, want %d", len(s.focus.Participants(m.ID)), n)
			}
		}
	}
	waitFor(1) // pat in the lobby
	if err := sipx.Cancel(ctx, partner.client, invite); err != nil {
		t.Fatal(err)
	}
	waitFor(0)
	select {
	case res := <-tx.Responses():
		for res != nil && res.StatusCode < 200 {
			res = <-tx.Responses()
		}
		if res == nil || res.StatusCode != 487 {
			t.Fatalf("INVITE after CANCEL: %v", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no final response to the canceled INVITE")
	}
}
