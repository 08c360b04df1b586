package store

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/siptest"
	"github.com/parleyuc/parley/internal/testpki"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
)

// fromAuth lets every request through as the user in its From.
type fromAuth struct{}

func (fromAuth) Authenticate(req *sip.Request, _ sip.ServerTransaction) *auth.Identity {
	return &auth.Identity{URI: req.From().Address.Addr(), Tenant: "example.test", Kind: auth.Internal}
}

// BenchmarkNotifyFanOut measures one PUBLISH delivered to 1,000 watchers
// (subscriptions over 10 TLS connections, answered by the watchers) with
// the publications and the policies on each store, in one run: the time
// from the PUBLISH until the last NOTIFY is answered.
func BenchmarkNotifyFanOut(b *testing.B) {
	type stores struct {
		pubs     presence.PublicationStore
		policies presence.PolicyStore
	}
	for _, tc := range []struct {
		name string
		open func(b *testing.B) stores
	}{
		{"memory", func(*testing.B) stores {
			return stores{presence.NewMemoryPublications(), presence.NewMemoryPolicies()}
		}},
		{"bolt", func(b *testing.B) stores {
			db, err := OpenBolt(filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			return stores{db.Publications(), db.Policies()}
		}},
		{"redis", func(b *testing.B) stores {
			r, err := OpenRedis(b.Context(), RedisConfig{URL: redisServer(b), Prefix: fmt.Sprintf("bench-%d:", time.Now().UnixNano())})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = r.Close() })
			return stores{r.Publications(), r.Policies()}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchFanOut(b, tc.open(b)) })
	}
}

func benchFanOut(b *testing.B, st struct {
	pubs     presence.PublicationStore
	policies presence.PolicyStore
}) {
	const watchers, conns = 1000, 10
	const alice = "sip:alice@example.test"
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test"})
	policy, err := presence.NewPresencePolicy(presence.PresencePolicyConfig{Store: st.policies})
	if err != nil {
		b.Fatal(err)
	}
	for i := -1; i < conns; i++ {
		uri := "sip:w" + strconv.Itoa(i) + "@example.test"
		if i < 0 {
			uri = alice
		} else if err := policy.SetContact(ctx, alice, uri, presence.Colleague); err != nil { // no spim limit
			b.Fatal(err)
		}
		if err := dir.PutUser(auth.User{URI: uri, Enabled: true}); err != nil {
			b.Fatal(err)
		}
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(logger)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(logger)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ua.Close() })
	srv, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(logger))
	client, _ := sipgo.NewClient(ua, sipgo.WithClientLogger(logger))
	reg, err := presence.NewRegistrar(presence.RegistrarConfig{Auth: fromAuth{}, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	ps, err := presence.NewPresenceServer(presence.PresenceServerConfig{Auth: fromAuth{}, Directory: dir, Policy: policy, Registrar: reg,
		Client: client, Publications: st.pubs, Logger: logger, MaxWatcherSubscriptions: watchers})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ps.Close() })
	srv.OnSubscribe(ps.HandleSubscribe)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	p := testpki.New(b)
	go func() {
		_ = srv.ServeTLS(tls.NewListener(ln, pki.ServerTLSConfig(p.Server(b, "sip.example.test"), p.Verifier)))
	}()

	var answered atomic.Int64
	var wg sync.WaitGroup
	b.Cleanup(wg.Wait)
	for i := range conns {
		c, err := tls.Dial("tcp", ln.Addr().String(), pki.ClientTLSConfig(nil, p.Verifier, "sip.example.test"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		local := c.LocalAddr().String()
		for j := range watchers / conns {
			callID := fmt.Sprintf("sub-%d-%d", i, j)
			msg := "SUBSCRIBE sip:alice@example.test SIP/2.0\r\nVia: SIP/2.0/TLS " + local + ";branch=z9hG4bK" + callID + "\r\n" +
				"Max-Forwards: 70\r\nFrom: <sip:w" + strconv.Itoa(i) + "@example.test>;tag=" + callID + "\r\nTo: <sip:alice@example.test>\r\n" +
				"Call-ID: " + callID + "\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:w" + strconv.Itoa(i) + "@" + local + ";transport=tls>\r\n" +
				"Event: presence\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"
			if _, err := c.Write([]byte(msg)); err != nil {
				b.Fatal(err)
			}
		}
		wg.Go(func() { siptest.AnswerNotifies(bufio.NewReader(c), c, &answered) })
	}
	deadline := time.Now().Add(60 * time.Second)
	for ps.Subscriptions() < watchers || answered.Load() < watchers {
		if time.Now().After(deadline) {
			b.Fatalf("%d subscriptions, %d initial NOTIFYs answered", ps.Subscriptions(), answered.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	publish := func(i int) {
		doc := (&presence.Presence{Entity: alice, Availability: []presence.Availability{presence.Busy, presence.Available}[i%2], Note: strconv.Itoa(i)}).MarshalPIDF()
		m, err := sip.ParseMessage(fmt.Appendf(nil, "PUBLISH sip:alice@example.test SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKp%d\r\n"+
			"Max-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=p\r\nTo: <sip:alice@example.test>\r\nCall-ID: pub%d\r\nCSeq: 1 PUBLISH\r\n"+
			"Event: presence\r\nExpires: 600\r\nContent-Type: application/pidf+xml\r\nContent-Length: %d\r\n\r\n%s", i, i, len(doc), doc))
		if err != nil {
			b.Fatal(err)
		}
		tx := &answerTx{}
		ps.HandlePublish(m.(*sip.Request), tx)
		if tx.res.StatusCode != 200 {
			b.Fatalf("PUBLISH: %d %s", tx.res.StatusCode, tx.res.Reason)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		target := answered.Load() + watchers
		publish(i)
		for answered.Load() < target {
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.ReportMetric(float64(watchers)*float64(b.N)/b.Elapsed().Seconds(), "NOTIFY/s")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/fan-out")
}
