package store

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/parleyuc/parley/pki"
)

// TestPoolRevocationsOnRedis: two front ends of a pool load the CA from
// their shared directory, each serving the CRL at its own distribution
// point, with their revocations on one real redis-server. A certificate
// revoked on A is refused by a verifier that fetches the CRL from B, and
// a verifier fetching from both never sees a CRL number go back.
func TestPoolRevocationsOnRedis(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ca")
	r := openRedis(t)
	serve := func() (*httptest.Server, **pki.CA) {
		var ca *pki.CA
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { ca.CRLHandler().ServeHTTP(w, req) }))
		t.Cleanup(srv.Close)
		return srv, &ca
	}
	srvA, caA := serve()
	srvB, caB := serve()
	var err error
	if *caA, err = pki.OpenCA(dir, pki.CAConfig{CRLDistributionPoints: []string{srvA.URL}, Revocations: r.Revocations()}); err != nil {
		t.Fatal(err)
	}
	if *caB, err = pki.OpenCA(dir, pki.CAConfig{CRLDistributionPoints: []string{srvB.URL}, Revocations: r.Revocations()}); err != nil {
		t.Fatal(err)
	}
	crls, err := pki.NewCRLCache(pki.CRLCacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer crls.Close()
	// One certificate checked at each front end's distribution point.
	onA, err := (*caA).IssueServer(pki.ServerCertRequest{DNSNames: []string{"a.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	onB, err := (*caA).IssueServer(pki.ServerCertRequest{DNSNames: []string{"b.example.test"}, CRLDistributionPoints: []string{srvB.URL}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*pki.Certificate{onA, onB} {
		if err := crls.Check(ctx, c.Leaf, c.Issuer); err != nil {
			t.Fatal(err)
		}
	}
	if err := (*caA).Revoke(ctx, onB.Leaf.SerialNumber, pki.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if err := (*caB).Revoke(ctx, onA.Leaf.SerialNumber, pki.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if err := crls.Refresh(ctx); err != nil {
		t.Fatalf("refreshing the CRLs of both front ends: %v", err)
	}
	for _, c := range []*pki.Certificate{onA, onB} {
		if err := crls.Check(ctx, c.Leaf, c.Issuer); !errors.Is(err, pki.ErrRevoked) {
			t.Fatalf("%s after its revocation on the other front end: %v, want ErrRevoked", c.Leaf.DNSNames[0], err)
		}
	}
}
