// Package dnstest is a DNS server on loopback for tests: A, AAAA and SRV
// records set by the test, so that servers on 127.0.0.2 and 127.0.0.3
// are found and dialed by name, as TLS needs (it carries no name for an
// address), and federation partners are found by SRV.
package dnstest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Server answers the queries of the records it holds; NXDOMAIN for a
// name it has none of. It is safe for concurrent use.
type Server struct {
	// Addr is the UDP address it listens on (127.0.0.1:port).
	Addr string

	mu   sync.Mutex
	ips  map[string][]net.IP // lower-case name without the final dot
	srvs map[string][]SRV
}

// SRV is a service record: _service._proto.name points at Target:Port.
type SRV struct {
	Target           string
	Port             uint16
	Priority, Weight uint16
}

// Start starts a Server, closed when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: pc.LocalAddr().String(), ips: map[string][]net.IP{}, srvs: map[string][]SRV{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if res, err := s.answer(buf[:n]); err == nil {
				_, _ = pc.WriteTo(res, from)
			}
		}
	}()
	t.Cleanup(func() { _ = pc.Close(); <-done })
	return s
}

func key(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// AddHost makes name resolve to ip (A for IPv4, AAAA for IPv6).
func (s *Server) AddHost(name string, ip net.IP) {
	s.mu.Lock()
	s.ips[key(name)] = append(s.ips[key(name)], ip)
	s.mu.Unlock()
}

// AddSRV adds a service record at name (for example
// "_sipfederationtls._tcp.partner.test").
func (s *Server) AddSRV(name string, r SRV) {
	s.mu.Lock()
	s.srvs[key(name)] = append(s.srvs[key(name)], r)
	s.mu.Unlock()
}

// Resolver returns a resolver that asks this server only.
func (s *Server) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.Addr)
	}}
}

// answer builds the response to one query.
func (s *Server) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	name := key(q.Name.String())
	s.mu.Lock()
	ips, srvs := s.ips[name], s.srvs[name]
	s.mu.Unlock()
	rcode := dnsmessage.RCodeSuccess
	if len(ips) == 0 && len(srvs) == 0 {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired,
		RCode: rcode})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	for _, ip := range ips {
		switch v4 := ip.To4(); {
		case q.Type == dnsmessage.TypeA && v4 != nil:
			rh.Type = dnsmessage.TypeA
			err = b.AResource(rh, dnsmessage.AResource{A: [4]byte(v4)})
		case q.Type == dnsmessage.TypeAAAA && v4 == nil:
			rh.Type = dnsmessage.TypeAAAA
			err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: [16]byte(ip.To16())})
		}
		if err != nil {
			return nil, err
		}
	}
	if q.Type == dnsmessage.TypeSRV {
		for _, r := range srvs {
			target, err := dnsmessage.NewName(key(r.Target) + ".")
			if err != nil {
				return nil, err
			}
			rh.Type = dnsmessage.TypeSRV
			if err := b.SRVResource(rh, dnsmessage.SRVResource{Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: target}); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}
