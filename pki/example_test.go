package pki_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/parleyuc/parley/pki"
)

// Two front-end servers talk over mutual TLS, each verifying the other's
// certificate (chain, EKUs, CRL) on the handshake; then one is revoked.
func Example() {
	// The CA's CRL is served over plain HTTP at its distribution point.
	mux := http.NewServeMux()
	web := httptest.NewServer(mux)
	defer web.Close()
	ca, err := pki.NewCA(pki.CAConfig{CRLDistributionPoints: []string{web.URL + "/pki/ca.crl"}})
	if err != nil {
		panic(err)
	}
	mux.Handle("/pki/ca.crl", ca.CRLHandler())

	crls, err := pki.NewCRLCache(pki.CRLCacheConfig{})
	if err != nil {
		panic(err)
	}
	defer crls.Close()
	verifier, err := pki.NewVerifier(pki.VerifierConfig{Roots: ca.CertPool(), CRLs: crls})
	if err != nil {
		panic(err)
	}

	keyPair := func(name string) (*pki.KeyPair, *x509.Certificate) {
		c, err := ca.IssueServer(pki.ServerCertRequest{DNSNames: []string{name}, ClientAuth: true})
		if err != nil {
			panic(err)
		}
		tc, _ := c.TLSCertificate()
		kp, err := pki.NewKeyPair(tc)
		if err != nil {
			panic(err)
		}
		return kp, c.Leaf
	}
	fe1, _ := keyPair("fe1.example.test")
	fe2, fe2Leaf := keyPair("fe2.example.test")

	ln, err := tls.Listen("tcp", "127.0.0.1:0", pki.MutualTLSServerConfig(fe1, verifier))
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	peer := make(chan string)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			panic(err)
		}
		peer <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), pki.ClientTLSConfig(fe2, verifier, "fe1.example.test"))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Println("fe2 reached", conn.ConnectionState().PeerCertificates[0].Subject.CommonName)
	fmt.Println("fe1 accepted", <-peer)

	// Revoke fe2; once the cache refreshes, its certificate is refused.
	if err := ca.Revoke(context.Background(), fe2Leaf.SerialNumber, pki.ReasonKeyCompromise); err != nil {
		panic(err)
	}
	_ = crls.Refresh(context.Background())
	_, err = verifier.Verify(context.Background(), []*x509.Certificate{fe2Leaf}, pki.VerifyOptions{Purpose: pki.MutualServerAuth})
	fmt.Println("fe2 revoked:", errors.Is(err, pki.ErrRevoked))
	// Output:
	// fe2 reached fe1.example.test
	// fe1 accepted fe2.example.test
	// fe2 revoked: true
}
