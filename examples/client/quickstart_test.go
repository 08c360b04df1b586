package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyuc/parley/internal/baresiptest"
)

// TestQuickStart runs the README's quick start and tour as a newcomer
// would, every part a separate process: the server built from
// examples/server on a data directory it creates, alice with this client,
// bob with baresip (a third-party SIP client) and with this client for
// his messages, a guest who joins through the lobby, the admin's command
// line; then the server restarts on the same data directory, and alice's
// meeting and contacts are still there.
func TestQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server twice, baresip and six clients")
	}
	data := filepath.Join(t.TempDir(), "parley-data") // the first run makes it
	s := startServer(t, data)
	for _, want := range []string{"demo user sip:alice@example.test password ", "demo user sip:bob@example.test password ", "Parley is running.", "trust the demo CA:"} {
		waitOutput(t, s.stdout, want)
	}

	// bob signs in with baresip, which publishes his presence.
	bob := baresiptest.Start(t, baresiptest.Account{User: "bob", Domain: "example.test", Password: s.password("bob"),
		Registrar: s.listeners["sip-tls"], CAFile: s.caFile()}, "module_app presence.so")
	// alice signs in with the client and watches bob.
	alice := startClient(t, s, "alice", "online", "-watch", "bob")
	alice.waitLine(t, "signed-in sip:alice@example.test", 15*time.Second)
	alice.waitLine(t, "presence sip:bob@example.test available", 15*time.Second)
	bob.Command(t, "/presence_offline")
	alice.waitLine(t, "presence sip:bob@example.test offline", 15*time.Second)
	bob.Command(t, "/presence_online")
	alice.waitLine(t, "presence sip:bob@example.test available", 15*time.Second)

	// Messages, both ways: alice types one to bob's baresip; bob answers
	// from a script.
	alice.send(t, "send bob are you coming to the demo?")
	alice.waitLine(t, "sent sip:bob@example.test", 10*time.Second)
	bob.Out.WaitFor(t, "are you coming to the demo?", 10*time.Second)
	if r := runClient(t, s, "bob", "send", "alice", "on my way"); r.code != 0 {
		t.Fatalf("bob sends: %d %s", r.code, r.stderr)
	}
	alice.waitLine(t, "message sip:bob@example.test on my way", 10*time.Second)

	// alice keeps bob as a workgroup contact and schedules a meeting.
	if r := runClient(t, s, "alice", "contacts", "add", "bob", "workgroup"); r.code != 0 {
		t.Fatalf("contacts add: %d %s", r.code, r.stderr)
	}
	r := runClient(t, s, "alice", "schedule", "-subject", "Quick start")
	var m struct {
		ID      string `json:"id"`
		Key     string `json:"conference_key"`
		JoinURL string `json:"join_url"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &m) != nil || m.ID == "" || m.Key == "" {
		t.Fatalf("schedule: %d %s %s", r.code, r.stdout, r.stderr)
	}

	// alice joins and admits whoever waits; a guest with the conference
	// key waits in the lobby until she does. The organizer's "admitted"
	// line is the proof that the guest waited: with -admit-all she is
	// admitted at once, and sipgo hands each response to its transaction
	// on a goroutine of its own, so the 200 may overtake the 182 Queued
	// and the guest print no "lobby" line (TestMeetingLobbyAndAdmission checks it where
	// nobody admits).
	organizer := startClient(t, s, "alice", "join", "-admit-all", m.ID)
	organizer.waitLine(t, "joined "+m.ID, 15*time.Second)
	guest := startClient(t, s, "", "join", "-guest", "Visitor", "-key", m.Key, m.ID)
	organizer.waitLine(t, "admitted ", 15*time.Second)
	guest.waitLine(t, "joined "+m.ID, 15*time.Second)

	// The admin sees the meeting with both in it, and who is signed in.
	shown := runAdmin(t, s, "meeting", "show", m.ID)
	if !strings.Contains(shown, `"display_name": "Visitor"`) || !strings.Contains(shown, `"role": "organizer"`) {
		t.Fatalf("admin meeting show:\n%s", shown)
	}
	if sessions := runAdmin(t, s, "sessions"); !strings.Contains(sessions, "sip:bob@example.test") || !strings.Contains(sessions, "sip:alice@example.test") {
		t.Fatalf("admin sessions:\n%s", sessions)
	}

	// Everyone leaves; the server restarts on the same data directory.
	for _, c := range []*clientProcess{guest, organizer, alice} {
		c.closeStdin(t)
		if code := c.wait(t, 15*time.Second); code != 0 {
			t.Fatalf("%s exited %d\n%s", c.name, code, c.stderr.String())
		}
	}
	if err := s.stop(); err != nil {
		t.Fatalf("server stop: %v\n%s", err, s.logs.String())
	}
	s = startServer(t, data)
	if strings.Contains(s.stdout.String(), "demo user") {
		t.Fatal("the restarted server made the demo users again")
	}

	// alice's meeting and contacts are still there, and the guest still
	// gets in with the key (to the lobby: nobody is there to admit).
	r = runClient(t, s, "alice", "meetings")
	if r.code != 0 || !strings.Contains(r.stdout, m.ID) || !strings.Contains(r.stdout, "Quick start") {
		t.Fatalf("meetings after the restart: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = runClient(t, s, "alice", "contacts", "list")
	if r.code != 0 || !strings.Contains(r.stdout, `"uri": "sip:bob@example.test"`) || !strings.Contains(r.stdout, `"level": "workgroup"`) {
		t.Fatalf("contacts after the restart: %d %s %s", r.code, r.stdout, r.stderr)
	}
	again := startClient(t, s, "", "join", "-guest", "Visitor", "-key", m.Key, m.ID)
	again.waitLine(t, "lobby "+m.ID, 15*time.Second)
}

// waitOutput waits for a line of the server's stdout containing text.
func waitOutput(t *testing.T, out *lineLog, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not print %q:\n%s", text, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runAdmin runs examples/admin against s with its admin token and
// returns what it printed; it must succeed.
func runAdmin(t *testing.T, s *serverProcess, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.admin, append([]string{"-https", s.listeners["https"], "-ca", s.caFile(),
		"-token-file", filepath.Join(s.dataDir, "admin-token")}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if exit, ok := err.(*exec.ExitError); ok {
			stderr = exit.Stderr
		}
		t.Fatalf("parley-admin %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}
