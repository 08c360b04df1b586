package pki

import (
	"bytes"
	"context"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Two front ends of a pool load one CA from a shared directory and share
// one revocation store: a revocation made on either is on the CRL both
// serve, they serve one CRL rather than two of the same number, and the
// number only grows whichever front end a verifier asks.
func TestCAsSharingAStoreServeOneCRL(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ca")
	shared := &MemoryRevocations{}
	cfg := CAConfig{CRLDistributionPoints: []string{testDP}, Revocations: shared}
	a, err := OpenCA(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenCA(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	derA, _, err := a.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	derB, _, err := b.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(derA, derB) {
		t.Fatal("two front ends with nothing revoked signed two different CRLs")
	}
	first := mustCRL(t, b)

	if err := a.Revoke(ctx, big.NewInt(0x2a), ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if err := b.Revoke(ctx, big.NewInt(0x2a), ReasonKeyCompromise); !errors.Is(err, ErrAlreadyRevoked) {
		t.Fatalf("revoking on B what A revoked: %v, want ErrAlreadyRevoked", err)
	}
	onB := mustCRL(t, b)
	if len(onB.RevokedCertificateEntries) != 1 || onB.RevokedCertificateEntries[0].SerialNumber.Int64() != 0x2a {
		t.Fatalf("B's CRL does not list what A revoked: %v", onB.RevokedCertificateEntries)
	}
	if onB.Number.Cmp(first.Number) <= 0 {
		t.Fatalf("CRL number went from %s to %s", first.Number, onB.Number)
	}
	if err := b.Revoke(ctx, big.NewInt(0x2b), ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	onA := mustCRL(t, a)
	if len(onA.RevokedCertificateEntries) != 2 || onA.Number.Cmp(onB.Number) <= 0 {
		t.Fatalf("A's CRL after B's revocation: number %s (B's was %s), %d entries", onA.Number, onB.Number, len(onA.RevokedCertificateEntries))
	}
	for _, ca := range []*CA{a, b} {
		revs, err := ca.Revocations(ctx)
		if err != nil || len(revs) != 2 {
			t.Fatalf("Revocations: %v, %v", revs, err)
		}
	}
	// ca.json is not written by CAs with a store: two processes writing
	// their own view of it would lose each other's revocations.
	state, err := readCAState(filepath.Join(dir, CAStateFile))
	if err != nil || len(state.Revoked) != 0 {
		t.Fatalf("ca.json written by a CA with a store: %+v, %v", state, err)
	}
}

// A CA that kept its revocations in ca.json and is then given a store
// moves them there, and its CRL numbers go on from the file's.
func TestCAMovesItsRevocationsToAStore(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ca")
	cfg := CAConfig{CRLDistributionPoints: []string{testDP}}
	ca, err := OpenCA(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(ctx, big.NewInt(7), ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	before := mustCRL(t, ca)
	mustCRL(t, ca) // still current: the same number
	cfg.Revocations = &MemoryRevocations{}
	moved, err := OpenCA(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	revs, err := cfg.Revocations.RevocationList(ctx, IssuerID(ca.Certificate()))
	if err != nil || len(revs.Revoked) != 1 || revs.Revoked[0].Serial.Int64() != 7 || revs.Revoked[0].Reason != ReasonKeyCompromise {
		t.Fatalf("store after the move: %+v, %v", revs, err)
	}
	after := mustCRL(t, moved)
	if after.Number.Cmp(before.Number) <= 0 || len(after.RevokedCertificateEntries) != 1 {
		t.Fatalf("CRL after the move: number %s (before %s), %d entries", after.Number, before.Number, len(after.RevokedCertificateEntries))
	}
	if _, err := OpenCA(dir, cfg); err != nil { // moving again adds nothing
		t.Fatal(err)
	}
	if revs, _ := cfg.Revocations.RevocationList(ctx, IssuerID(ca.Certificate())); len(revs.Revoked) != 1 {
		t.Fatalf("a second move listed %d revocations", len(revs.Revoked))
	}
}

// flakyStore is a MemoryRevocations whose server can go away.
type flakyStore struct {
	MemoryRevocations
	down atomic.Bool
}

var errDown = errors.New("store down")

func (f *flakyStore) RevocationList(ctx context.Context, issuer string) (RevocationList, error) {
	if f.down.Load() {
		return RevocationList{}, errDown
	}
	return f.MemoryRevocations.RevocationList(ctx, issuer)
}

func (f *flakyStore) UpdateRevocationList(ctx context.Context, issuer string, change func(*RevocationList) error) error {
	if f.down.Load() {
		return errDown
	}
	return f.MemoryRevocations.UpdateRevocationList(ctx, issuer, change)
}

// While the store is away, revoking fails and the CRL last served goes on
// being served until its nextUpdate, as verifiers' caches keep it; then
// the distribution point answers 503.
func TestCAWhileItsStoreIsAway(t *testing.T) {
	ctx := context.Background()
	clk := &clock{}
	clk.Set(time.Now())
	store := &flakyStore{}
	ca, err := NewCA(CAConfig{Revocations: store, CRLValidity: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	store.down.Store(true)
	if _, _, err := ca.CRL(ctx); !errors.Is(err, ErrRevocationStore) {
		t.Fatalf("CRL with the store away and none served yet: %v, want ErrRevocationStore", err)
	}
	store.down.Store(false)
	served := mustCRL(t, ca)
	store.down.Store(true)
	if err := ca.Revoke(ctx, big.NewInt(7), ReasonKeyCompromise); !errors.Is(err, ErrRevocationStore) {
		t.Fatalf("Revoke with the store away: %v, want ErrRevocationStore", err)
	}
	clk.Set(clk.Now().Add(50 * time.Minute)) // past half: a new one would be signed
	if again := mustCRL(t, ca); again.Number.Cmp(served.Number) != 0 {
		t.Fatalf("with the store away, CRL %s was served instead of the last one, %s", again.Number, served.Number)
	}
	clk.Set(clk.Now().Add(11 * time.Minute)) // past its nextUpdate
	rec := httptest.NewRecorder()
	ca.CRLHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ca.crl", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("CRL handler once the last CRL expired: %d, want 503", rec.Code)
	}
	store.down.Store(false)
	if back := mustCRL(t, ca); back.Number.Cmp(served.Number) <= 0 {
		t.Fatalf("after the store returned: CRL %s, want one after %s", back.Number, served.Number)
	}
}

// A store holding a damaged list (another writer's bug, a bad restore)
// must not be signed from.
func TestCARefusesADamagedStoredList(t *testing.T) {
	ctx := context.Background()
	store := &MemoryRevocations{}
	ca, err := NewCA(CAConfig{Revocations: store})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	damage := []struct {
		change func(*RevocationList)
		want   string // what the refusal names
	}{
		{func(l *RevocationList) { l.Revoked = []Revocation{{Serial: big.NewInt(-1), RevokedAt: at}} }, "bad serial"},
		{func(l *RevocationList) {
			l.Revoked = []Revocation{{Serial: big.NewInt(3), RevokedAt: at}, {Serial: big.NewInt(3), RevokedAt: at}}
		}, "listed twice"},
		{func(l *RevocationList) { l.Revoked = []Revocation{{Serial: big.NewInt(3), Reason: 7, RevokedAt: at}} }, "bad reason"},
		{func(l *RevocationList) { l.Revoked = []Revocation{{Serial: big.NewInt(3)}} }, "no revocation time"},
		{func(l *RevocationList) { l.CRL = &PublishedCRL{Covers: 1} }, "CRL number"},
		{func(l *RevocationList) { l.CRL = &PublishedCRL{Number: big.NewInt(1), Covers: 1} }, "covers 1 revocations of 0"},
	}
	for i, d := range damage {
		_ = store.UpdateRevocationList(ctx, ca.issuer, func(l *RevocationList) error { *l = RevocationList{}; d.change(l); return nil })
		if _, _, err := ca.CRL(ctx); !errors.Is(err, ErrRevocationStore) || !strings.Contains(err.Error(), d.want) {
			t.Fatalf("damage %d: CRL gave %v, want ErrRevocationStore naming %q", i, err, d.want)
		}
	}
}

func TestCRLHandlerHeaders(t *testing.T) {
	ca, _ := NewCA(CAConfig{})
	rec := httptest.NewRecorder()
	ca.CRLHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ca.crl", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/pkix-crl" || rec.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET: %d %v", rec.Code, rec.Header())
	}
	if _, err := ParseCRL(rec.Body.Bytes()); err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	ca.CRLHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ca.crl", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d, want 405", rec.Code)
	}
}
