package dnstest

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestLookups(t *testing.T) {
	s := Start(t)
	s.AddHost("Partner.test", net.IPv4(127, 0, 0, 3))
	s.AddHost("partner.test", net.ParseIP("::1"))
	s.AddSRV("_sipfederationtls._tcp.partner.test", SRV{Target: "edge.partner.test", Port: 5062, Priority: 10})
	r := s.Resolver()
	ctx := context.Background()
	ips, err := r.LookupIP(ctx, "ip4", "partner.test")
	if err != nil || len(ips) != 1 || !ips[0].Equal(net.IPv4(127, 0, 0, 3)) {
		t.Fatalf("A partner.test: %v %v", ips, err)
	}
	ips, err = r.LookupIP(ctx, "ip6", "partner.test")
	if err != nil || len(ips) != 1 || !ips[0].Equal(net.ParseIP("::1")) {
		t.Fatalf("AAAA partner.test: %v %v", ips, err)
	}
	_, srvs, err := r.LookupSRV(ctx, "sipfederationtls", "tcp", "partner.test")
	if err != nil || len(srvs) != 1 || srvs[0].Target != "edge.partner.test." || srvs[0].Port != 5062 {
		t.Fatalf("SRV: %+v %v", srvs, err)
	}
	var dnsErr *net.DNSError
	if _, err := r.LookupIP(ctx, "ip4", "nowhere.test"); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("an unknown name: %v, want not found", err)
	}
}

// FuzzAnswer: no query, however malformed, makes the server panic.
func FuzzAnswer(f *testing.F) {
	s := &Server{ips: map[string][]net.IP{"a.test": {net.IPv4(127, 0, 0, 2)}}, srvs: map[string][]SRV{}}
	f.Add([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, q []byte) { _, _ = s.answer(q) })
}
