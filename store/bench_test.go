package store

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/presence"
)

// benchAuth lets every REGISTER through as the user in its To.
type benchAuth struct{}

func (benchAuth) Authenticate(req *sip.Request, _ sip.ServerTransaction) *auth.Identity {
	return &auth.Identity{URI: req.To().Address.Addr()}
}

// answerTx is the one thing of a server transaction the Registrar uses:
// it keeps the answer.
type answerTx struct {
	sip.ServerTransaction
	res *sip.Response
}

func (t *answerTx) Respond(res *sip.Response) error { t.res = res; return nil }

// BenchmarkRegister measures REGISTER refreshes through the Registrar
// (parsing aside: each user's request is built once, its CSeq raised)
// on each location store in one run: 1,000 users, each refresh a read
// and a write of the user's bindings.
func BenchmarkRegister(b *testing.B) {
	for _, tc := range []struct {
		name  string
		store func(b *testing.B) presence.LocationStore
	}{
		{"memory", func(*testing.B) presence.LocationStore { return presence.NewMemoryLocation() }},
		{"bolt", func(b *testing.B) presence.LocationStore {
			db, err := OpenBolt(filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			return db.Locations()
		}},
		{"redis", func(b *testing.B) presence.LocationStore {
			r, err := OpenRedis(b.Context(), RedisConfig{URL: redisServer(b), Prefix: fmt.Sprintf("bench-%d:", time.Now().UnixNano())})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = r.Close() })
			return r.Locations()
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			reg, err := presence.NewRegistrar(presence.RegistrarConfig{Auth: benchAuth{}, Store: tc.store(b),
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			const users = 1000
			reqs := make([]*sip.Request, users)
			for i := range reqs {
				m, err := sip.ParseMessage(fmt.Appendf(nil, "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK%d\r\n"+
					"Max-Forwards: 70\r\nFrom: <sip:u%d@example.test>;tag=1\r\nTo: <sip:u%d@example.test>\r\nCall-ID: c%d\r\nCSeq: 1 REGISTER\r\n"+
					"Contact: <sip:u%d@192.0.2.1:5061;transport=tls>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n", i, i, i, i, i))
				if err != nil {
					b.Fatal(err)
				}
				reqs[i] = m.(*sip.Request)
				reqs[i].SetSource(fmt.Sprintf("192.0.2.1:%d", 10000+i))
				reqs[i].SetTransport("TLS")
			}
			b.Run("serial", func(b *testing.B) {
				tx := &answerTx{}
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					req := reqs[i%users]
					req.CSeq().SeqNo++
					reg.HandleRegister(req, tx)
					if tx.res.StatusCode != 200 {
						b.Fatalf("REGISTER: %d %s", tx.res.StatusCode, tx.res.Reason)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "REGISTER/s")
			})
			// 32 clients at once, each refreshing users of its own, as a
			// front end under load does: bbolt serializes its writers,
			// Redis pipelines connections.
			b.Run("32-clients", func(b *testing.B) {
				const clients = 32
				b.SetParallelism(clients / runtime.GOMAXPROCS(0))
				var next atomic.Int64
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					mine := int(next.Add(1)-1) % clients
					tx := &answerTx{}
					for i := 0; pb.Next(); i++ {
						req := reqs[mine*(users/clients)+i%(users/clients)] // users of its own
						req.CSeq().SeqNo++
						reg.HandleRegister(req, tx)
						if tx.res.StatusCode != 200 {
							b.Errorf("REGISTER: %d %s", tx.res.StatusCode, tx.res.Reason)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "REGISTER/s")
			})
		})
	}
}
