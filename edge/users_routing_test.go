package edge

import (
	"context"
	"encoding/base64"
	"github.com/emiago/sipgo"
	"github.com/parleyuc/parley/internal/dnstest"
	"github.com/parleyuc/parley/internal/testpki"
	"github.com/parleyuc/parley/pki"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/sipx"
)

// TestRemoveHeadersAnyCase: sipx.RemoveHeaders (used by asUser and strip) on a
// header whose name came off the wire in another case: sipgo's GetHeaders
// matches case-insensitively, RemoveHeader exactly, so the loop never ends.
func TestRemoveHeadersAnyCase(t *testing.T) {
	for _, name := range []string{"p-asserted-identity", "P-ASSERTED-IDENTITY", "p-parley-flow"} {
		raw := "MESSAGE sip:alice@example.test SIP/2.0\r\n" +
			"Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK-1\r\n" +
			"From: <sip:mallory@example.test>;tag=a\r\nTo: <sip:alice@example.test>\r\n" +
			"Call-ID: x\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n" +
			name + ": <sip:ceo@partner.test>\r\nContent-Length: 0\r\n\r\n"
		msg, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		req := msg.(*sip.Request)
		done := make(chan struct{})
		go func() {
			sipx.RemoveHeaders(req, append(assertionHeaders, auth.EdgeFlowHeader)...)
			close(done)
		}()
		select {
		case <-done:
			if req.GetHeader("P-Asserted-Identity") != nil || req.GetHeader(auth.EdgeFlowHeader) != nil {
				t.Errorf("%s: still there:\n%s", name, req)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("RemoveHeaders of a %q header never returns (spins a CPU forever)", name)
		}
	}
}

// TestUserLowercaseAssertionDoesNotHangTheEdge: any client of the user
// listener (no certificate, no credentials) sends "p-asserted-identity" in
// lower case; the edge's handler spins forever in asUser and never answers.
func TestUserLowercaseAssertionDoesNotHangTheEdge(t *testing.T) {
	s := newSite(t)
	anyone := s.peer(s.userEdge, "edge.example.test", nil)
	req := anyone.request(sip.MESSAGE, "sip:alice@example.test", "sip:alice@example.test", "",
		sip.NewHeader("p-asserted-identity", "<sip:pat@partner.test>"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := anyone.client.Do(ctx, req)
	if err != nil || res == nil {
		t.Fatalf("no answer from the edge to a request with a lower-case assertion header: %v %v", res, err)
	}
	if res.StatusCode == 200 {
		t.Fatalf("a user's own assertion accepted: %v", res)
	}
}

// flowFields decodes the payload of an edge flow token (ft=) in a header
// value: hmactoken only MACs, it does not encrypt.
func flowFields(t *testing.T, v string) string {
	t.Helper()
	i := strings.Index(v, "ft=")
	if i < 0 {
		t.Fatalf("no flow token in %q", v)
	}
	tok := strings.TrimRight(v[i+3:], ">")
	tok, _, _ = strings.Cut(tok, ";")
	p, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\x00", " | ")
}

// TestUserGuestsRecordRouteHidesTheInternalServer: the Record-Route a
// guest gets carries the flow token in clear: the internal server's
// address (and the edge's connection name for the guest) in base64.
func TestUserGuestsRecordRouteHidesTheInternalServer(t *testing.T) {
	s := newSite(t)
	_, _, c := s.guestInMeeting(t)
	rr := c.ok.GetHeaders("Record-Route")
	if len(rr) == 0 {
		t.Fatal("no Record-Route")
	}
	if f := flowFields(t, rr[0].Value()); strings.Contains(f, s.internal) {
		t.Errorf("the guest reads the internal server's address %s in its Record-Route's token: %s", s.internal, f)
	}
}

// remoteDeviceTag is the To tag a remoteDevice answers SUBSCRIBEs with.
const remoteDeviceTag = "devtag"

// remoteDevice is a tenant user's device signed in through the edge's
// user listener that also answers SUBSCRIBE (capturing it).
func remoteDevice(t *testing.T, d *deployment, user string, extra ...sip.Header) (*fedPhone, chan *sip.Request, *sip.Response) {
	t.Helper()
	ua, _ := sipgo.NewUA(sipgo.WithUserAgentDNSResolver(d.dns.Resolver()), sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(nil, d.verifier, "")))
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua)
	p := &fedPhone{t: t, d: d, dest: d.userEdge, user: user, client: client, inbox: make(chan *sip.Request, 8), notifies: make(chan *sip.Request, 16)}
	subs := make(chan *sip.Request, 4)
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		p.inbox <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
		subs <- req
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if to := res.To(); to != nil && !to.Params.Has("tag") {
			to.Params.Add("tag", remoteDeviceTag)
		}
		res.AppendHeader(sip.NewHeader("Contact", "<sip:"+user+"-dev@"+d.ip+";transport=tls>"))
		res.AppendHeader(sip.NewHeader("Expires", "600"))
		_ = tx.Respond(res)
	})
	t.Cleanup(func() { _ = client.Close(); _ = ua.Close() })
	reg := p.request(sip.REGISTER, "sip:"+d.domain, append([]sip.Header{sip.NewHeader("Expires", "600"), sip.NewHeader("Supported", "path")}, extra...)...)
	res := p.do(reg)
	if res.StatusCode != 200 {
		t.Fatalf("%s registers through the edge: %v", p.aor(), res)
	}
	return p, subs, res
}

// TestUserInternalRecordRouteStaysInside: a SUBSCRIBE from inside
// to a remote user carries the internal Router's Record-Route, naming the
// internal server (and its token naming inside flows), to the device.
func TestUserInternalRecordRouteStaysInside(t *testing.T) {
	dns := dnstest.Start(t)
	a := newDeployment(t, dns, "a.test", "127.0.0.2", testpki.New(t))
	_, subs, _ := remoteDevice(t, a, "alice")
	bob := a.phone("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		_, _ = bob.client.Do(ctx, bob.request(sip.SUBSCRIBE, "sip:alice@a.test", sip.NewHeader("Event", "dialog"), sip.NewHeader("Expires", "600")))
	}()
	sub := received(t, subs, "SUBSCRIBE at remote alice")
	_, internalPort, _ := net.SplitHostPort(a.internal)
	for _, h := range sub.GetHeaders("Record-Route") {
		if strings.Contains(h.Value(), "sip.a.test") || strings.Contains(h.Value(), ":"+internalPort) {
			t.Errorf("the remote device sees the internal server in Record-Route: %s", h.Value())
		}
	}
}

// TestUserRegisterOKHidesInsideContacts: the 200 OK to a remote user's
// REGISTER lists every binding of the AOR; hideContact rewrites only the
// first Contact, so the user's inside devices' addresses reach outside.
func TestUserRegisterOKHidesInsideContacts(t *testing.T) {
	dns := dnstest.Start(t)
	a := newDeployment(t, dns, "a.test", "127.0.0.2", testpki.New(t))
	desk := a.phone("alice")
	for _, c := range []string{"<sip:alice-desk@10.20.30.40:5061;transport=tls>", "<sip:alice-lab@10.20.30.41:5061;transport=tls>"} {
		req := desk.request(sip.REGISTER, "sip:a.test", sip.NewHeader("Expires", "600"))
		req.RemoveHeader("Contact")
		req.AppendHeader(sip.NewHeader("Contact", c))
		if res := desk.do(req); res.StatusCode != 200 {
			t.Fatalf("inside registration: %v", res)
		}
	}
	_, _, ok := remoteDevice(t, a, "alice")
	if s := ok.String(); strings.Contains(s, "10.20.30.4") || len(ok.GetHeaders("Contact")) != 1 ||
		!strings.Contains(ok.GetHeader("Contact").Value(), "alice-dev@"+a.ip+";") {
		t.Errorf("the 200 OK to the remote REGISTER shows inside devices, or not the device's own binding as it registered it:\n%s", s)
	}
}

// TestUserPathStaysBelowTheEdges: a remote user's own Path header
// stays above the edge's (the edge appends its Path; RFC 3327 has each
// proxy add its own on top), so the internal server routes requests for the
// user by the user's route first and the edge's flow token is not on top:
// the user's device no longer gets its requests through the edge.
func TestUserPathStaysBelowTheEdges(t *testing.T) {
	dns := dnstest.Start(t)
	a := newDeployment(t, dns, "a.test", "127.0.0.2", testpki.New(t))
	alice, _, ok := remoteDevice(t, a, "alice", sip.NewHeader("Path", "<sip:192.0.2.66:5061;transport=tls;lr>"))
	if p := ok.GetHeaders("Path"); len(p) > 0 && !strings.Contains(p[0].Value(), "ft=") {
		t.Errorf("the registration's first Path is the user's: %v", p)
	}
	bob := a.phone("bob")
	if res := bob.message("sip:alice@a.test", "hi"); res.StatusCode != 200 {
		t.Errorf("bob to remote alice with a Path of her own: %v", res)
	}
	select {
	case <-alice.inbox:
	case <-time.After(2 * time.Second):
		t.Error("remote alice got nothing")
	}
}

// TestUserPathCannotSendColleaguesMessagesToAPartner: with a Path of her
// own above the edge's and a Contact in a partner domain, remote alice has
// the edge take the internal Router's request for her as outbound
// federation: bob's message to alice goes to a user of b.test of her
// choosing, asserted as bob.
func TestUserPathCannotSendColleaguesMessagesToAPartner(t *testing.T) {
	pa, pb := testpki.New(t), testpki.New(t)
	dns := dnstest.Start(t)
	a := newDeployment(t, dns, "a.test", "127.0.0.2", pa, pb.CA.Certificate())
	b := newDeployment(t, dns, "b.test", "127.0.0.3", pb, pa.CA.Certificate())
	a.partners["b.test"] = b.edge
	b.partners["a.test"] = a.edge
	victim := b.phone("bob")

	alice := &fedPhone{t: t, d: a, dest: a.userEdge, user: "alice"}
	ua, _ := sipgo.NewUA(sipgo.WithUserAgentDNSResolver(dns.Resolver()), sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(nil, a.verifier, "")))
	alice.client, _ = sipgo.NewClient(ua)
	t.Cleanup(func() { _ = alice.client.Close(); _ = ua.Close() })
	reg := alice.request(sip.REGISTER, "sip:a.test", sip.NewHeader("Expires", "600"), sip.NewHeader("Path", "<sip:192.0.2.66:5061;transport=tls;lr>"))
	reg.RemoveHeader("Contact")
	reg.AppendHeader(sip.NewHeader("Contact", "<sip:bob@b.test;transport=tls>"))
	if res := alice.do(reg); res.StatusCode != 200 {
		t.Fatalf("remote alice registers: %v", res)
	}
	bob := a.phone("bob")
	go func() { // alice's made-up device answers nothing: bob's MESSAGE may time out
		req := bob.request(sip.MESSAGE, "sip:alice@a.test", sip.NewHeader("Content-Type", "text/plain"))
		req.SetBody([]byte("for alice's eyes only"))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if res, err := bob.client.Do(ctx, req); err == nil && res != nil && res.StatusCode == 401 {
			_, _ = bob.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "bob", Password: federationPassword})
		}
	}()
	select {
	case m := <-victim.inbox:
		t.Errorf("a message bob sent to alice reached bob@b.test, asserted as %v:\n%s", m.GetHeader("P-Asserted-Identity"), m.Body())
	case <-time.After(2 * time.Second):
	}
}

// TestUserGuestFlowTokenOnlyToItsMeeting: a guest reuses the route of its
// own meeting dialog (same Call-ID and tag) for a request to a user: the
// edge forwards it inside without the meeting check (the internal server
// answers, here with its challenge).
func TestUserGuestFlowTokenOnlyToItsMeeting(t *testing.T) {
	s := newSite(t)
	_, guest, c := s.guestInMeeting(t)

	req := guest.inDialog(c, sip.MESSAGE)
	var target sip.Uri
	_ = sip.ParseUri("sip:alice@example.test", &target)
	req.Recipient = target
	req.RemoveHeader("To")
	req.AppendHeader(&sip.ToHeader{Address: target}) // no tag: a new request
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := guest.client.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 403 || res.GetHeader("WWW-Authenticate") != nil {
		t.Errorf("a guest's MESSAGE to a user along its meeting's route reached inside: %v", res)
	}
}
