package edge

import (
	"crypto/x509"
	"net"
	"strconv"
	"testing"

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
