package main

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/parleyuc/parley/internal/testredis"
)

// roster is a client's view of a meeting's roster, from its "roster <pid>
// <status> <name>" lines since it last joined again ("rejoining"; the
// first NOTIFY may come before the INVITE's 200): display name -> status,
// and the participant ID of each name.
func roster(c *clientProcess) (status, pid map[string]string) {
	status, pid = map[string]string{}, map[string]string{}
	lines := c.stdout.Lines()
	from := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "rejoining ") {
			from = i + 1
		}
	}
	for _, l := range lines[from:] {
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 || f[0] != "roster" {
			continue
		}
		if f[2] == "disconnected" {
			if pid[f[3]] == f[1] {
				delete(status, f[3])
			}
			continue
		}
		status[f[3]], pid[f[3]] = f[2], f[1]
	}
	return status, pid
}

// awaitRoster waits until c's roster is want (name -> status), and
// returns the participant IDs by name.
func awaitRoster(t *testing.T, c *clientProcess, want map[string]string, timeout time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, pids := roster(c)
		if maps.Equal(got, want) {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's roster %v; want %v\nstdout:\n%s\nstderr:\n%s", c.name, got, want, c.stdout.String(), c.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOneMeetingAcrossThreeFrontEnds: three front ends of a pool, each its
// own process, on one redis-server. A user joins through B first, which
// then hosts the meeting; the organizer joins through A and a guest
// through C, whose front ends pass their requests on to B. All three see
// one roster with the three of them; the guest waits in the lobby until
// the organizer, on A, admits her (an INFO A passes on to B), and the
// guest's own conference-state subscription, through C, sees each change.
// Then B is killed (-9): within the stated bound (the lease's 10 s TTL, a
// third of it for the other front ends to notice, and the clients'
// retries) every client has joined again on its own, the user's through
// A or C, and they see one roster again, the guest admitted once more; the
// lease, read throughout, never names two hosts. Last, the guest's client
// is killed: C tells the host, and the others see her leave.
func TestOneMeetingAcrossThreeFrontEnds(t *testing.T) {
	if testing.Short() {
		t.Skip("three servers and three clients")
	}
	rds := testredis.Run(t)
	data := t.TempDir()
	pool := []string{"-store", "redis", "-redis", rds.URL}
	a := startServer(t, data, append(pool, "-pool", "127.0.0.1:0")...)
	b := startServer(t, data, append(pool, "-pool", "127.0.0.2:0", "-sip-tls", "127.0.0.2:0")...)
	c := startServer(t, data, append(pool, "-pool", "127.0.0.3:0", "-sip-tls", "127.0.0.3:0")...)
	b.passwords, c.passwords = a.passwords, a.passwords // printed once, by the first
	// The user's client knows the whole pool, B first.
	all := &serverProcess{dataDir: data, listeners: maps.Clone(b.listeners), passwords: a.passwords}
	all.listeners["sip-tls"] = strings.Join([]string{b.listeners["sip-tls"], a.listeners["sip-tls"], c.listeners["sip-tls"]}, ",")

	r := runClient(t, a, "alice", "schedule", "-subject", "Pool", "-access", "organization")
	var m meeting
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &m) != nil {
		t.Fatalf("schedule: exit %d\n%s", r.code, r.stderr)
	}
	stopWatch := testredis.WatchLease(t, rds.URL, m.ID)

	bob := startClient(t, all, "bob", "join", m.ID)
	bob.waitLine(t, "joined "+m.ID, wait)
	alice := startClient(t, a, "alice", "join", m.ID)
	alice.waitLine(t, "joined "+m.ID, wait)
	guest := startClient(t, c, "", "join", "-guest", "Visitor", "-key", m.ConferenceKey, m.ID)
	guest.waitLine(t, "lobby "+m.ID, wait)

	const alicE, boB, visitor = "Alice Liddell", "Bob Builder", "Visitor"
	waiting := map[string]string{alicE: "connected", boB: "connected", visitor: "pending"}
	everyone := map[string]string{alicE: "connected", boB: "connected", visitor: "connected"}
	pids := awaitRoster(t, alice, waiting, wait)
	awaitRoster(t, bob, waiting, wait)
	alice.send(t, "admit "+pids[visitor])
	guest.waitLine(t, "joined "+m.ID, wait)
	for _, cl := range []*clientProcess{alice, bob, guest} {
		awaitRoster(t, cl, everyone, wait)
	}
	// The guest's subscription through C saw her wait, then get in.
	if !strings.Contains(guest.stdout.String(), "roster "+pids[visitor]+" pending Visitor") {
		t.Fatalf("the guest's view through C never showed her waiting:\n%s", guest.stdout.String())
	}

	b.kill()
	killed := time.Now()
	// The bound: B's lease lapses within its TTL (10 s); A and C look every
	// third of it; each client retries every second.
	const bound = 10*time.Second + 10*time.Second/3 + 5*time.Second
	bob.waitLine(t, "rejoining "+m.ID, wait)
	for _, cl := range []*clientProcess{alice, guest} {
		cl.waitLine(t, "host-lost "+m.ID, bound)
	}
	pids = awaitRoster(t, alice, waiting, bound)
	t.Logf("the organizer sees the guest waiting again %v after B died", time.Since(killed).Round(10*time.Millisecond))
	alice.send(t, "admit "+pids[visitor])
	for _, cl := range []*clientProcess{alice, bob, guest} {
		awaitRoster(t, cl, everyone, wait)
	}
	t.Logf("one roster again %v after B died", time.Since(killed).Round(10*time.Millisecond))

	samples := stopWatch()
	if err := testredis.OneHost(samples); err != nil {
		t.Fatal(err)
	}
	// A client connected to a front end that does not host the meeting
	// dies: its front end sees the connection close and sends the host
	// the BYE the client cannot send; the others see it leave.
	victim, watcher, name := guest, alice, visitor // through C
	if samples[len(samples)-1].Host == c.listeners["pool"] {
		victim, watcher, name = alice, bob, alicE // through A
	}
	pids = awaitRoster(t, watcher, everyone, wait)
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	watcher.waitLine(t, "roster "+pids[name]+" disconnected", wait)

	if first, last := samples[0].Host, samples[len(samples)-1].Host; first != b.listeners["pool"] || last == first {
		t.Fatalf("the lease went from %s to %s; want from B (%s) to another", first, last, b.listeners["pool"])
	}
}
