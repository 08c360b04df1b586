package main

import (
	"errors"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/parleyuc/parley/internal/testredis"
	"github.com/parleyuc/parley/pki"
)

// BenchmarkPoolWithdrawal measures, over b.N trials each, how long a
// withdrawal made on front end A takes to close what it ends on front
// end B: from the admin's request to A (disabling a user; revoking a
// certificate) until B has closed the connection the user's certificate
// opened there. Two front ends in this process, one redis-server; the
// median and p99 are reported in milliseconds.
//
//	go test -run '^$' -bench BenchmarkPoolWithdrawal -benchtime 100x ./examples/server
func BenchmarkPoolWithdrawal(b *testing.B) {
	rds := testredis.Run(b)
	data := b.TempDir()
	limits := b.TempDir() + "/limits.json" // trials from one address: no throttling
	if err := os.WriteFile(limits, []byte(`{"limits": {"throttle": {"per_address": {"rate": 10000, "burst": 10000},
		"per_subnet": {"rate": 10000, "burst": 10000}}}}`), 0o600); err != nil {
		b.Fatal(err)
	}
	pool := []string{"-store", "redis", "-redis", rds.URL, "-config", limits}
	a := startServer(b, data, append(pool, "-pool", "127.0.0.1:0")...)
	fe := startServer(b, data, append(pool, "-pool", "127.0.0.2:0", "-sip-tls", "127.0.0.2:0")...)
	admin := a.admin(b)
	admin.must("POST", "/users", `{"uri":"sip:carol@example.test","display_name":"Carol","enabled":true}`, http.StatusCreated, nil)
	verifier := fe.verifier(b)
	issue := func() (*pki.KeyPair, string) { return issueCertificate(b, a, "sip:carol@example.test") }
	// closedAfter signs carol in on B, runs withdraw on A, and returns how
	// long until B closed her connection.
	closedAfter := func(kp *pki.KeyPair, withdraw func()) time.Duration {
		conn, err := certSignIn(fe, kp, verifier, "carol")
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		withdraw()
		_ = conn.SetReadDeadline(start.Add(10 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			b.Fatalf("carol's connection on B not closed: %v", err)
		}
		return time.Since(start)
	}
	report := func(b *testing.B, d []time.Duration) {
		slices.Sort(d)
		ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
		b.ReportMetric(ms(d[len(d)/2]), "median-ms")
		b.ReportMetric(ms(d[min(len(d)-1, len(d)*99/100)]), "p99-ms")
		b.ReportMetric(0, "ns/op")
	}

	b.Run("disable", func(b *testing.B) {
		kp, _ := issue()
		var d []time.Duration
		for b.Loop() {
			d = append(d, closedAfter(kp, func() {
				admin.must("PATCH", "/users/sip:carol@example.test", `{"enabled":false}`, http.StatusOK, nil)
			}))
			admin.must("PATCH", "/users/sip:carol@example.test", `{"enabled":true}`, http.StatusOK, nil)
		}
		report(b, d)
	})
	b.Run("revoke", func(b *testing.B) {
		var d []time.Duration
		for b.Loop() {
			b.StopTimer()
			kp, serial := issue()
			b.StartTimer()
			d = append(d, closedAfter(kp, func() {
				admin.must("POST", "/certificates/"+serial+"/revoke", `{}`, http.StatusOK, nil)
			}))
		}
		report(b, d)
	})
}
