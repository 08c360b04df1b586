package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
)

// BenchmarkMutualTLSHandshake measures full (not resumed) mutual-TLS
// handshakes over loopback TCP between two servers.
//
//   - stock-go: crypto/tls verifying both sides itself (chain and name,
//     no EKU presence check, no revocation).
//   - parley-crl-cached: pki.MutualTLSServerConfig and pki.ClientTLSConfig,
//     every check of the Verifier with the CRL in the cache on both sides.
//
// The difference is the cost of Parley's verification on a handshake.
func BenchmarkMutualTLSHandshake(b *testing.B) {
	p := newTestPKI(b, CRLCacheConfig{})
	fe1, fe2 := p.benchServer(b, "fe1.example.test"), p.benchServer(b, "fe2.example.test")

	stockServer := baseConfig()
	stockServer.Certificates = []tls.Certificate{*fe1.Certificate()}
	stockServer.ClientAuth = tls.RequireAndVerifyClientCert
	stockServer.ClientCAs = p.ca.CertPool()
	stockClient := baseConfig()
	stockClient.Certificates = []tls.Certificate{*fe2.Certificate()}
	stockClient.RootCAs = p.ca.CertPool()
	stockClient.ServerName = "fe1.example.test"

	cases := []struct {
		name           string
		server, client *tls.Config
	}{
		{"stock-go", stockServer, stockClient},
		{"parley-crl-cached", MutualTLSServerConfig(fe1, p.v), ClientTLSConfig(fe2, p.v, "fe1.example.test")},
	}
	for _, c := range cases {
		c.server.SessionTicketsDisabled = true
		b.Run(c.name, func(b *testing.B) {
			if sErr, cErr := handshake(b, c.server, c.client); sErr != nil || cErr != nil {
				b.Fatalf("server %v, client %v", sErr, cErr) // also warms the CRL cache
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					tc := tls.Server(conn, c.server)
					_ = tc.Handshake()
					_ = tc.Close()
				}
			}()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				conn, err := tls.Dial("tcp", ln.Addr().String(), c.client)
				if err != nil {
					b.Fatal(err)
				}
				// Wait for the server's verdict on our certificate too.
				_, _ = conn.Read(make([]byte, 1))
				_ = conn.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}

func (p *testPKI) benchServer(b *testing.B, name string) *KeyPair {
	c, err := p.ca.IssueServer(ServerCertRequest{DNSNames: []string{name}, ClientAuth: true})
	if err != nil {
		b.Fatal(err)
	}
	return keyPair(b, c)
}

// BenchmarkVerify isolates certificate verification from the handshake:
// crypto/x509's chain verification alone against the Verifier's full
// check (key, EKUs, distribution point, chain, cached CRL lookup).
func BenchmarkVerify(b *testing.B) {
	p := newTestPKI(b, CRLCacheConfig{})
	c, err := p.ca.IssueServer(ServerCertRequest{DNSNames: []string{"fe2.example.test"}, ClientAuth: true})
	if err != nil {
		b.Fatal(err)
	}
	peer := []*x509.Certificate{c.Leaf}
	opts := VerifyOptions{Purpose: MutualServerAuth}
	b.Run("x509-chain-only", func(b *testing.B) {
		xo := x509.VerifyOptions{Roots: p.ca.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Leaf.Verify(xo); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parley-crl-cached", func(b *testing.B) {
		if _, err := p.v.Verify(context.Background(), peer, opts); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.v.Verify(context.Background(), peer, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("crl-check-cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := p.crls.Check(context.Background(), c.Leaf, p.ca.Certificate()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
