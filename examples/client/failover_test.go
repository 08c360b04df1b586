package main

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/parleyuc/parley/internal/testredis"
)

// TestFailover: the client given a pool's front ends (-sip A,B) signs in
// on the first; when A dies (SIGKILL), it signs in again on B by itself
// within seconds, and messages reach it there; a one-shot command with A
// first still goes through B.
func TestFailover(t *testing.T) {
	rds := testredis.Run(t)
	data := t.TempDir()
	pool := []string{"-store", "redis", "-redis", rds.URL}
	a := startServer(t, data, append(pool, "-pool", "127.0.0.1:0")...)
	b := startServer(t, data, append(pool, "-pool", "127.0.0.2:0", "-sip-tls", "127.0.0.2:0")...)
	// The clients' view of the pool: A's settings, both SIP addresses.
	both := &serverProcess{dataDir: data, listeners: maps.Clone(a.listeners), passwords: a.passwords}
	both.listeners["sip-tls"] = a.listeners["sip-tls"] + "," + b.listeners["sip-tls"]

	alice := startClient(t, both, "alice", "online")
	alice.waitLine(t, "signed-in sip:alice@example.test", wait)
	bob := startClient(t, b, "bob", "online", "-watch", "alice")
	bob.waitLine(t, "signed-in sip:bob@example.test", wait)

	a.kill() // SIGKILL: no goodbye to anyone
	killed := time.Now()
	alice.waitLine(t, "signed-in sip:alice@example.test", 15*time.Second)
	// The client says so on stderr before it signs in again, but the two
	// pipes are read apart: the line may reach us a moment later.
	for said := time.Now().Add(5 * time.Second); !strings.Contains(alice.stderr.String(), "signing in again"); {
		if time.Now().After(said) {
			t.Fatalf("alice's client did not say it lost its connection:\n%s", alice.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("alice signed in again, on B, %v after A died", time.Since(killed).Round(10*time.Millisecond))

	if r := runClient(t, b, "bob", "send", "alice", "found you on B"); r.code != 0 {
		t.Fatalf("bob to alice after the failover: exit %d\n%s", r.code, r.stderr)
	}
	if got := alice.waitLine(t, "message ", wait); got != "message sip:bob@example.test found you on B" {
		t.Fatalf("alice got %q", got)
	}
	// A one-shot command that tries A first (dead) goes through B.
	if r := runClient(t, both, "alice", "send", "bob", "and you on B"); r.code != 0 {
		t.Fatalf("send with A dead and B next: exit %d\n%s", r.code, r.stderr)
	}
	if got := bob.waitLine(t, "message ", wait); got != "message sip:alice@example.test and you on B" {
		t.Fatalf("bob got %q", got)
	}
}

// TestJoinThroughAnotherFrontEnd: two front ends of a pool; alice joins a
// meeting through A, which hosts it. Bob's client, given only B, joins
// through B, which passes the join on to A: both see one roster with both
// of them, and bob's client was not sent anywhere else.
func TestJoinThroughAnotherFrontEnd(t *testing.T) {
	rds := testredis.Run(t)
	data := t.TempDir()
	pool := []string{"-store", "redis", "-redis", rds.URL}
	a := startServer(t, data, append(pool, "-pool", "127.0.0.1:0")...)
	b := startServer(t, data, append(pool, "-pool", "127.0.0.2:0", "-sip-tls", "127.0.0.2:0")...)
	b.passwords = a.passwords
	r := runClient(t, a, "alice", "schedule", "-access", "organization")
	var m meeting
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &m) != nil {
		t.Fatalf("schedule: exit %d\n%s", r.code, r.stderr)
	}
	alice := startClient(t, a, "alice", "join", m.ID)
	alice.waitLine(t, "joined "+m.ID, wait)
	bob := startClient(t, b, "bob", "join", m.ID)
	bob.waitLine(t, "joined "+m.ID, wait)
	sees := func(c *clientProcess, who string) {
		t.Helper()
		for {
			if line := c.waitLine(t, "roster ", wait); strings.Contains(line, " connected "+who) {
				return
			}
		}
	}
	sees(bob, "Alice")
	sees(alice, "Bob")
	if strings.Contains(bob.stdout.String(), "redirected") {
		t.Fatalf("bob's client was redirected:\n%s", bob.stdout.String())
	}
}
