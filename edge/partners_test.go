package edge

import (
	"crypto/x509"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/dnstest"
	"github.com/parleyuc/parley/internal/testpki"
	"github.com/parleyuc/parley/pki"
)

// TestPartnerFoundBySRV: with DiscoverPartners, a.test's edge finds
// b.test's in DNS (the _sipfederationtls._tcp SRV record, its target a
// name the certificate carries) with nothing configured for b.test; a
// domain with no edge in DNS gets 404.
func TestPartnerFoundBySRV(t *testing.T) {
	pa, pb := testpki.New(t), testpki.New(t)
	dns := dnstest.Start(t)
	discover := func(c *AccessEdgeConfig) { c.DiscoverPartners = true }
	a := newDeploymentWith(t, dns, "a.test", "127.0.0.2", pa, discover, pb.CA.Certificate())
	b := newDeploymentWith(t, dns, "b.test", "127.0.0.3", pb, discover, pa.CA.Certificate())
	for _, d := range []*deployment{a, b} {
		host, port, _ := net.SplitHostPort(d.edge)
		p, _ := strconv.Atoi(port)
		dns.AddSRV("_sipfederationtls._tcp."+d.domain, dnstest.SRV{Target: host, Port: uint16(p), Priority: 10})
	}
	alice, bob := a.phone("alice"), b.phone("bob")
	if res := alice.message("sip:bob@b.test", "found you"); res.StatusCode != 200 {
		t.Fatalf("alice to bob, b.test's edge found by SRV: %v", res)
	}
	if m := received(t, bob.inbox, "MESSAGE at bob"); string(m.Body()) != "found you" {
		t.Fatalf("bob got:\n%s", m)
	}
	if res := bob.message("sip:alice@a.test", "and you"); res.StatusCode != 200 {
		t.Fatalf("bob to alice: %v", res)
	}
	received(t, alice.inbox, "MESSAGE at alice")
	if res := alice.message("sip:carol@c.test", "anyone?"); res.StatusCode != 404 {
		t.Fatalf("a domain with no edge in DNS: %v, want 404", res)
	}
}

// TestPartnerCAsBindDomains: a.test trusts both b.test's and c.test's
// CAs; bound to its own CA, b.test's domain is refused on a certificate
// c.test's CA issued, while b.test's own edge passes both ways. Unbound,
// the same certificate passes: the binding is what refuses it.
func TestPartnerCAsBindDomains(t *testing.T) {
	pa, pb, pc := testpki.New(t), testpki.New(t), testpki.New(t)
	forged := testpki.KeyPair(t)(pc.CA.IssueServer(pki.ServerCertRequest{DNSNames: []string{"b.test"}, ClientAuth: true}))
	for _, bound := range []bool{true, false} {
		dns := dnstest.Start(t)
		var bind func(*AccessEdgeConfig)
		if bound {
			bCAs := x509.NewCertPool()
			bCAs.AddCert(pb.CA.Certificate())
			bind = func(c *AccessEdgeConfig) { c.PartnerCAs = map[string]*x509.CertPool{"B.test": bCAs} }
		}
		a := newDeploymentWith(t, dns, "a.test", "127.0.0.2", pa, bind, pb.CA.Certificate(), pc.CA.Certificate())
		b := newDeployment(t, dns, "b.test", "127.0.0.3", pb, pa.CA.Certificate())
		a.partners["b.test"] = b.edge
		b.partners["a.test"] = a.edge

		// b.test's own edge, its own CA: both ways.
		alice, bob := a.phone("alice"), b.phone("bob")
		if res := bob.message("sip:alice@a.test", "from b's own edge"); res.StatusCode != 200 {
			t.Fatalf("bound %v: bob to alice: %v", bound, res)
		}
		received(t, alice.inbox, "MESSAGE at alice")
		if res := alice.message("sip:bob@b.test", "to b's own edge"); res.StatusCode != 200 {
			t.Fatalf("bound %v: alice to bob: %v", bound, res)
		}
		received(t, bob.inbox, "MESSAGE at bob")

		// c.test's CA vouching for b.test.
		code := sendToEdge(t, a, forged, "sip:mallory@b.test")
		if bound && code != 403 {
			t.Fatalf("a certificate for b.test from c.test's CA, b.test bound to its CA: %d, want 403", code)
		}
		if !bound && code == 403 {
			t.Fatal("the same certificate with b.test not bound: 403, so the binding is not what refused it")
		}
	}
}

// TestBlockedPartnerHearsOnlyTheEnd: once b.test is blocked, a.test's
// edge passes nothing more of dialogs that began before, from inside to
// b.test, but their end: a final NOTIFY reaches one watcher, and a
// presence change is not sent to the other.
func TestBlockedPartnerHearsOnlyTheEnd(t *testing.T) {
	pa, pb := testpki.New(t), testpki.New(t)
	dns := dnstest.Start(t)
	a := newDeployment(t, dns, "a.test", "127.0.0.2", pa, pb.CA.Certificate())
	b := newDeployment(t, dns, "b.test", "127.0.0.3", pb, pa.CA.Certificate())
	a.partners["b.test"] = b.edge
	b.partners["a.test"] = a.edge
	alice := a.phone("alice")
	bob, bAlice := b.phone("bob"), b.phone("alice")
	for _, w := range []*fedPhone{bob, bAlice} {
		sub := w.request(sip.SUBSCRIBE, "sip:alice@a.test", sip.NewHeader("Event", "presence"), sip.NewHeader("Accept", "application/pidf+xml"),
			sip.NewHeader("Expires", "600"))
		if res := w.do(sub); res.StatusCode != 200 {
			t.Fatalf("%s watches alice@a.test: %v", w.aor(), res)
		}
		received(t, w.notifies, w.aor()+"'s first NOTIFY")
	}

	if err := a.federation.Block("b.test"); err != nil {
		t.Fatal(err)
	}
	if n := a.presence.EndSubscriptions(func(w *auth.Identity) bool { return w.URI == "sip:alice@b.test" }); n != 1 {
		t.Fatalf("EndSubscriptions ended %d, want alice@b.test's", n)
	}
	n := received(t, bAlice.notifies, "alice@b.test's final NOTIFY")
	if st := n.GetHeader("Subscription-State"); st == nil || st.Value() != "terminated;reason=rejected" || len(n.Body()) != 0 {
		t.Fatalf("alice@b.test's final NOTIFY:\n%s", n)
	}

	offline := alice.request(sip.PUBLISH, "sip:alice@a.test", sip.NewHeader("Event", "presence"), sip.NewHeader("Expires", "600"),
		sip.NewHeader("Content-Type", "application/pidf+xml"))
	offline.SetBody([]byte(`<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@a.test">` +
		`<tuple id="t"><status><basic>closed</basic></status></tuple></presence>`))
	if res := alice.do(offline); res.StatusCode != 200 {
		t.Fatalf("alice publishes: %v", res)
	}
	select {
	case n := <-bob.notifies:
		t.Fatalf("bob, of a blocked domain, was sent alice's change:\n%s", n)
	case <-time.After(time.Second):
	}
}
