package store

import (
	"fmt"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleyuc/parley/pki"
)

// BenchmarkServeCRL measures CA.CRL, what the distribution point does for
// each fetch, on each revocation store: the list of 1,000 revocations and
// the published CRL are read from the store (and decoded) every time; the
// CRL is current, so nothing is signed.
func BenchmarkServeCRL(b *testing.B) {
	for _, tc := range []struct {
		name  string
		store func(b *testing.B) pki.RevocationStore
	}{
		{"memory", func(*testing.B) pki.RevocationStore { return &pki.MemoryRevocations{} }},
		{"bolt", func(b *testing.B) pki.RevocationStore {
			db, err := OpenBolt(filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			return db.Revocations()
		}},
		{"redis", func(b *testing.B) pki.RevocationStore {
			r, err := OpenRedis(b.Context(), RedisConfig{URL: redisServer(b), Prefix: fmt.Sprintf("bench-%d:", time.Now().UnixNano())})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = r.Close() })
			return r.Revocations()
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ca, err := pki.NewCA(pki.CAConfig{Revocations: tc.store(b)})
			if err != nil {
				b.Fatal(err)
			}
			for i := range 1000 {
				if err := ca.Revoke(b.Context(), big.NewInt(int64(1000+i)), pki.ReasonKeyCompromise); err != nil {
					b.Fatal(err)
				}
			}
			der, _, err := ca.CRL(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(der)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := ca.CRL(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
