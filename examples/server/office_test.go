package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/parleytest"
)

// officeUsers writes a directory of n users of the demo tenant
// (office000, office001, ...; password "pw-" and the user name) into
// data, before the server's first start.
func officeUsers(t *testing.T, data string, n int) {
	t.Helper()
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := auth.NewMemoryDirectory()
	if err := dir.PutTenant(auth.Tenant{Domain: demoDomain, Name: "Office"}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("office%03d", i)
		u := auth.User{URI: "sip:" + name + "@" + demoDomain, DisplayName: name, Tenant: demoDomain, Enabled: true,
			// Digest needs only the HA1; the PBKDF2 hash (600,000
			// rounds each) is for password checks this test makes none of.
			Credentials: auth.Credentials{HA1SHA256: sha256Hex(name + ":" + demoDomain + ":pw-" + name)}}
		if err := dir.PutUser(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := dir.Save(filepath.Join(data, directoryFile)); err != nil {
		t.Fatal(err)
	}
}

// officeSignIn signs n office users in at once from this machine's one
// address, 50 at a time, each on a TLS connection of its own kept open,
// and counts the sign-ins answered 200 and those refused with 503 (the
// throttle).
func officeSignIn(t *testing.T, s *server, n int) (ok, throttled int) {
	t.Helper()
	verifier := s.verifier(t)
	var okN, throttledN atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var clients []*parleytest.Client
	var firstErr error
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("office%03d", i)
			c, err := parleytest.Dial(parleytest.ClientConfig{Addr: s.listeners["sip-tls"], ServerName: "localhost", Verifier: verifier,
				Domain: demoDomain, User: name, Password: "pw-" + name})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
			err = c.SignIn(ctx)
			var st *parleytest.StatusError
			switch {
			case err == nil:
				okN.Add(1)
			case errors.As(err, &st) && st.Code == 503:
				throttledN.Add(1)
			default:
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, c := range clients {
		c.HangUp()
	}
	if firstErr != nil && int(okN.Load()+throttledN.Load()) < n {
		t.Logf("sign-ins neither accepted nor throttled: %d, the first: %v", n-int(okN.Load()+throttledN.Load()), firstErr)
	}
	return int(okN.Load()), int(throttledN.Load())
}

// TestOfficeBehindOneAddress: with the throttles and the connection cap
// per address raised in the config, 500 people behind one NAT address
// sign in at once; with the defaults, the same burst is throttled.
func TestOfficeBehindOneAddress(t *testing.T) {
	const people = 500
	data := t.TempDir()
	officeUsers(t, data, people)
	cfgFile := filepath.Join(t.TempDir(), "office.json")
	if err := os.WriteFile(cfgFile, []byte(`{"limits": {
		"max_conns_per_address": 1000,
		"throttle": {"per_address": {"rate": 500, "burst": 2000}, "per_subnet": {"rate": 500, "burst": 2000}}
	}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerArgs(t, data, append(allOnPortZero(data), "-config", cfgFile))
	if ok, throttled := officeSignIn(t, s, people); ok != people {
		t.Fatalf("with the office's limits: %d of %d signed in, %d throttled", ok, people, throttled)
	}

	// The defaults (20 requests a second per address, bursts of 100)
	// stop a burst like this one early: most of it gets 503.
	data = t.TempDir()
	officeUsers(t, data, 200)
	s = startServer(t, data)
	ok, throttled := officeSignIn(t, s, 200)
	if throttled == 0 || ok > 100 {
		t.Fatalf("with the default limits: %d of 200 signed in, %d throttled; want the burst throttled", ok, throttled)
	}
	t.Logf("with the default limits: %d of 200 signed in, %d throttled", ok, throttled)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
