package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleyuc/parley/auth"
)

// BenchmarkDirectoryUser measures the directory lookup a sign-in makes
// (auth.Directory.User, once per authenticated request on a new
// connection and once per request on an associated one to re-check the
// user), on each directory store in one run: 10,000 users, looked up in
// turn, serially and from 32 goroutines.
func BenchmarkDirectoryUser(b *testing.B) {
	for _, tc := range []struct {
		name string
		open func(b *testing.B) auth.DirectoryStore
	}{
		{"memory", func(*testing.B) auth.DirectoryStore { return auth.NewMemoryDirectory() }},
		{"bolt", func(b *testing.B) auth.DirectoryStore {
			db, err := OpenBolt(filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			return db.Directory()
		}},
		{"redis", func(b *testing.B) auth.DirectoryStore {
			r, err := OpenRedis(b.Context(), RedisConfig{URL: redisServer(b), Prefix: fmt.Sprintf("bench-%d:", time.Now().UnixNano())})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = r.Close() })
			return r.Directory()
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := tc.open(b)
			if err := d.SaveTenant(b.Context(), auth.Tenant{Domain: "example.test"}); err != nil {
				b.Fatal(err)
			}
			const users = 10000
			aors := make([]string, users)
			for i := range aors {
				aors[i] = fmt.Sprintf("sip:u%05d@example.test", i)
				if err := d.SaveUser(b.Context(), auth.User{URI: aors[i], Enabled: true, Credentials: auth.Credentials{HA1SHA256: "00"}}); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if _, err := d.User(b.Context(), aors[i%users]); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("32-clients", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(16) // 2 cores × 16 = 32 goroutines
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if _, err := d.User(b.Context(), aors[i%users]); err != nil {
							b.Error(err)
							return
						}
						i += 7
					}
				})
			})
		})
	}
}
