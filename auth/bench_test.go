package auth

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
)

// BenchmarkBearerVerify: one bearer token checked end to end by the
// Authenticator (signature against the cached JWKS, claims, directory).
func BenchmarkBearerVerify(b *testing.B) {
	op := startOP(b)
	a, err := New(Config{Directory: testDirectory(b), Realm: "example.test", OIDC: []OIDCProvider{op.provider()},
		Throttle: mustThrottle(b, ThrottleConfig{PerAddress: Limit{1e12, 1e9}, PerSubnet: Limit{1e12, 1e9}})})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	at := &attempt{method: "REGISTER", uri: "sip:example.test", host: "example.test", from: "sip:alice@example.test",
		credentials: "Bearer " + op.sign(b, op.kp, nil), source: netip.MustParseAddr("192.0.2.1"), sip: true}
	if v := a.check(context.Background(), at); v.id == nil {
		b.Fatalf("token refused: %d", v.status) // also fetches the JWKS once
	}
	b.ReportAllocs()
	for b.Loop() {
		if v := a.check(context.Background(), at); v.id == nil {
			b.Fatal("refused")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkDigestVerify: one Digest Authorization checked (nonce MAC,
// directory, response hash, nonce-count).
func BenchmarkDigestVerify(b *testing.B) {
	for _, alg := range []string{algSHA256, algMD5} {
		b.Run(alg, func(b *testing.B) {
			a, err := New(Config{Directory: testDirectory(b), Realm: "example.test",
				Throttle: mustThrottle(b, ThrottleConfig{PerAddress: Limit{1e12, 1e9}, PerSubnet: Limit{1e12, 1e9}})})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			at := &attempt{method: "REGISTER", uri: "sip:example.test", host: "example.test", from: "sip:alice@example.test",
				source: netip.MustParseAddr("192.0.2.1"), sip: true, uriMatches: func(u string) bool { return u == "sip:example.test" }}
			// Credentials are made ahead, a batch per fresh nonce, so the
			// loop measures only their verification.
			var batch []string
			refill := func() {
				nonce := a.nonces.mint()
				batch = batch[:0]
				for nc := 1; nc <= 20000; nc++ {
					c := digestCredentials("example.test", nonce, alg, "REGISTER", "sip:example.test", "alice", alicePassword, nc)
					batch = append(batch, c[len("Authorization: "):])
				}
			}
			refill()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				if i == len(batch) {
					b.StopTimer()
					refill()
					i = 0
					b.StartTimer()
				}
				at.credentials = batch[i]
				i++
				if v := a.check(context.Background(), at); v.id == nil {
					b.Fatalf("refused: %d %s", v.status, v.reason)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
		})
	}
}

// BenchmarkThrottleAllow: Throttle.Allow from many goroutines, each source
// address its own, 256 addresses per /24.
func BenchmarkThrottleAllow(b *testing.B) {
	th := mustThrottle(b, ThrottleConfig{PerAddress: Limit{1e12, 1e9}, PerSubnet: Limit{1e12, 1e9}})
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1) << 16
		for pb.Next() {
			i++
			addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			if ok, _ := th.Allow(addr, ""); !ok {
				panic(fmt.Sprint("refused ", addr))
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}
