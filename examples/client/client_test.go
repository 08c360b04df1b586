package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wait is how long a test waits for a client's line.
const wait = 15 * time.Second

// TestPresenceAndMessages: alice and bob online in two clients, as in the
// README: alice sees bob's status and note, each receives the other's
// messages (a one-shot send and a command on stdin), and when bob quits
// alice sees him offline and a message to him is refused with 480.
func TestPresenceAndMessages(t *testing.T) {
	srv := startServer(t, t.TempDir())
	alice := startClient(t, srv, "alice", "online", "-watch", "bob")
	alice.waitLine(t, "signed-in sip:alice@example.test", wait)
	alice.waitLine(t, "presence sip:bob@example.test offline", wait)

	bob := startClient(t, srv, "bob", "online", "-status", "busy", "-note", "In a meeting")
	bob.waitLine(t, "signed-in sip:bob@example.test", wait)
	if got := alice.waitLine(t, "presence sip:bob@example.test ", wait); got != "presence sip:bob@example.test busy In a meeting" {
		t.Fatalf("alice saw %q, want bob busy with his note", got)
	}

	r := runClient(t, srv, "bob", "send", "alice", "hello")
	if r.code != 0 || r.stdout != "sent sip:alice@example.test\n" {
		t.Fatalf("send: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if got := alice.waitLine(t, "message ", wait); got != "message sip:bob@example.test hello" {
		t.Fatalf("alice got %q", got)
	}

	alice.send(t, "send bob hi there,  bob")
	alice.waitLine(t, "sent sip:bob@example.test", wait)
	if got := bob.waitLine(t, "message ", wait); got != "message sip:alice@example.test hi there,  bob" {
		t.Fatalf("bob got %q", got)
	}
	alice.send(t, "send carol@example.test anyone?")
	if got := alice.waitLine(t, "error ", wait); !strings.Contains(got, "404") {
		t.Fatalf("a message to an unknown user: %q, want an error line with 404", got)
	}

	bob.send(t, "status dnd Focusing on the release")
	if got := alice.waitLine(t, "presence sip:bob@example.test ", wait); got != "presence sip:bob@example.test dnd Focusing on the release" {
		t.Fatalf("alice saw %q after bob's status command", got)
	}
	bob.send(t, "frobnicate")
	bob.waitLine(t, `error unknown command "frobnicate"`, wait)

	bob.send(t, "quit")
	if code := bob.wait(t, wait); code != 0 {
		t.Fatalf("bob's quit: exit %d\n%s", code, bob.stderr.String())
	}
	if got := alice.waitLine(t, "presence sip:bob@example.test ", wait); got != "presence sip:bob@example.test offline" {
		t.Fatalf("after bob quit alice saw %q, want offline", got)
	}
	r = runClient(t, srv, "alice", "send", "bob", "still there?")
	if r.code != 1 || !strings.Contains(r.stderr, "480 Temporarily Unavailable") || r.stdout != "" {
		t.Fatalf("send to bob signed out: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}

	// The end of stdin signs alice out.
	alice.closeStdin(t)
	if code := alice.wait(t, wait); code != 0 {
		t.Fatalf("alice at the end of stdin: exit %d\n%s", code, alice.stderr.String())
	}
	r = runClient(t, srv, "bob", "send", "alice", "bye")
	if r.code != 1 || !strings.Contains(r.stderr, "480") {
		t.Fatalf("send to alice signed out: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
}

// TestWatch: watch prints the watched user's presence as it changes and
// exits after -count lines; online -for signs in for that long only; the
// password comes from a file.
func TestWatch(t *testing.T) {
	srv := startServer(t, t.TempDir())
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(srv.password("alice")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startClient(t, srv, "", "-user", "alice", "-password-file", pw, "watch", "-count", "3", "bob")
	w.waitLine(t, "presence sip:bob@example.test offline", wait)
	bob := startClient(t, srv, "bob", "online", "-status", "away", "-for", "2s")
	bob.waitLine(t, "signed-in", wait)
	if code := bob.wait(t, wait); code != 0 {
		t.Fatalf("online -for 2s: exit %d\n%s", code, bob.stderr.String())
	}
	if code := w.wait(t, wait); code != 0 {
		t.Fatalf("watch -count 3: exit %d\n%s", code, w.stderr.String())
	}
	want := []string{"presence sip:bob@example.test offline", "presence sip:bob@example.test away", "presence sip:bob@example.test offline"}
	if lines := w.stdout.Lines(); !slices.Equal(lines, want) {
		t.Fatalf("watch -count 3 printed %q, want %q", lines, want)
	}
}

// meeting is what schedule prints.
type meeting struct {
	ID            string `json:"id"`
	Focus         string `json:"focus"`
	JoinURL       string `json:"join_url"`
	ConferenceKey string `json:"conference_key"`
	DialInID      string `json:"dial_in_id"`
	Access        string `json:"access"`
	Subject       string `json:"subject"`
}

// TestMeetingLobbyAndAdmission: alice schedules a meeting; a guest
// joining through the Access Edge with the conference key waits in the
// lobby; alice joins with -admit-all (by the join URL), which admits it;
// both follow the roster; the guest leaves on quit, alice on SIGINT.
func TestMeetingLobbyAndAdmission(t *testing.T) {
	srv := startServer(t, t.TempDir())
	r := runClient(t, srv, "alice", "schedule", "-subject", "Demo day", "-access", "organization")
	var m meeting
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &m) != nil {
		t.Fatalf("schedule: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if m.Focus != "sip:"+m.ID+"@example.test" || m.ConferenceKey == "" || m.DialInID == "" || m.Access != "organization" ||
		m.Subject != "Demo day" || !strings.HasSuffix(m.JoinURL, "/meet/"+m.ID) {
		t.Fatalf("scheduled %+v", m)
	}
	if !strings.HasPrefix(r.stdout, "{\n  \"id\": ") {
		t.Fatalf("schedule's JSON is not indented:\n%s", r.stdout)
	}
	r = runClient(t, srv, "alice", "meetings")
	var list []meeting
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list) != 1 || list[0].ID != m.ID {
		t.Fatalf("meetings: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}

	// A wrong key: refused, exit 1.
	r = runClient(t, srv, "", "join", "-guest", "Mallory", "-key", "not-the-key", m.ID)
	if r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Fatalf("join with a wrong key: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}

	guest := startClient(t, srv, "", "-sip", srv.listeners["edge-users"], "-server-name", "edge.example.test",
		"join", "-guest", "Visitor", "-key", m.ConferenceKey, m.ID)
	guest.waitLine(t, "lobby "+m.ID, wait)
	f := strings.Fields(guest.waitLine(t, "roster ", wait))
	if len(f) != 4 || f[2] != "pending" || f[3] != "Visitor" {
		t.Fatalf("the guest in the lobby sees %q", f)
	}
	pid := f[1]

	alice := startClient(t, srv, "alice", "join", "-admit-all", m.JoinURL)
	alice.waitLine(t, "joined "+m.ID, wait)
	alice.waitLine(t, "roster "+pid+" pending Visitor", wait)
	alice.waitLines(t, wait, "admitted "+pid, "roster "+pid+" connected Visitor")
	guest.waitLines(t, wait, "joined "+m.ID, "roster "+pid+" connected Visitor")

	guest.send(t, "quit")
	guest.waitLine(t, "left "+m.ID, wait)
	if code := guest.wait(t, wait); code != 0 {
		t.Fatalf("guest quit: exit %d\n%s", code, guest.stderr.String())
	}
	alice.waitLine(t, "roster "+pid+" disconnected Visitor", wait)
	if err := alice.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	alice.waitLine(t, "left "+m.ID, wait)
	if code := alice.wait(t, wait); code != 0 {
		t.Fatalf("alice after SIGINT: exit %d\n%s", code, alice.stderr.String())
	}

	// A guest waiting with nobody to admit it leaves the lobby (CANCEL).
	late := startClient(t, srv, "", "join", "-guest", "Late", "-key", m.ConferenceKey, m.Focus)
	late.waitLine(t, "lobby "+m.ID, wait)
	late.send(t, "quit")
	late.waitLine(t, "left "+m.ID, wait)
	if code := late.wait(t, wait); code != 0 {
		t.Fatalf("quit in the lobby: exit %d\n%s", code, late.stderr.String())
	}

	r = runClient(t, srv, "alice", "join", strings.Repeat("a", 26))
	if r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Fatalf("join an unknown meeting: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
}

// TestSettingsAndRelay: contacts round trip, privacy mode and relay
// credentials over HTTPS with Digest.
func TestSettingsAndRelay(t *testing.T) {
	srv := startServer(t, t.TempDir())
	type contacts struct {
		PrivacyMode bool `json:"privacy_mode"`
		Contacts    []struct{ URI, Level string }
	}
	list := func() contacts {
		t.Helper()
		r := runClient(t, srv, "alice", "contacts", "list")
		var c contacts
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &c) != nil {
			t.Fatalf("contacts list: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		return c
	}
	if c := list(); len(c.Contacts) != 0 || c.PrivacyMode {
		t.Fatalf("a new user's contacts: %+v", c)
	}
	r := runClient(t, srv, "alice", "contacts", "add", "bob", "workgroup")
	if r.code != 0 || !strings.Contains(r.stdout, `"level": "workgroup"`) {
		t.Fatalf("contacts add: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if c := list(); len(c.Contacts) != 1 || c.Contacts[0].URI != "sip:bob@example.test" || c.Contacts[0].Level != "workgroup" {
		t.Fatalf("contacts after add: %+v", c)
	}
	if r := runClient(t, srv, "alice", "privacy", "on"); r.code != 0 || !strings.Contains(r.stdout, `"privacy_mode": true`) {
		t.Fatalf("privacy on: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if c := list(); !c.PrivacyMode {
		t.Fatal("privacy mode not on after privacy on")
	}
	if r := runClient(t, srv, "alice", "contacts", "remove", "sip:bob@example.test"); r.code != 0 || r.stdout != "" {
		t.Fatalf("contacts remove: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if c := list(); len(c.Contacts) != 0 {
		t.Fatalf("contacts after remove: %+v", c)
	}

	r = runClient(t, srv, "alice", "relay")
	var cred struct {
		Username, Password string
		TTL                int
		URIs               []string
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &cred) != nil {
		t.Fatalf("relay: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.HasSuffix(cred.Username, ":sip:alice@example.test") || cred.Password == "" || cred.TTL <= 0 || cred.TTL > 8*3600 ||
		len(cred.URIs) == 0 || slices.ContainsFunc(cred.URIs, func(u string) bool { return !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") }) {
		t.Fatalf("relay credentials %+v", cred)
	}
}

// TestFailures: what goes wrong says so, with exit status 1 for a
// failure and 2 for a usage error.
func TestFailures(t *testing.T) {
	srv := startServer(t, t.TempDir())
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("not-her-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		user string // signed in with the user's password in PARLEY_PASSWORD, if set
		args []string
		code int
		says []string
	}{
		{"wrong password, SIP", "alice", []string{"-password-file", wrong, "online"}, 1, []string{"401", "wrong user name or password"}},
		{"wrong password, HTTPS", "alice", []string{"-password-file", wrong, "relay"}, 1, []string{"401", "wrong user name or password"}},
		{"no password", "", []string{"-user", "alice", "send", "bob", "hi"}, 2, []string{"PARLEY_PASSWORD"}},
		{"no user", "", []string{"relay"}, 2, []string{"-user"}},
		{"bad flag", "alice", []string{"-bogus", "relay"}, 2, []string{"-bogus"}},
		{"bad command flag", "alice", []string{"online", "-bogus"}, 2, []string{"-bogus"}},
		{"unknown command", "alice", []string{"frob"}, 2, []string{`unknown command "frob"`}},
		{"bad status", "alice", []string{"online", "-status", "sleepy"}, 2, []string{"sleepy"}},
		{"bad level", "alice", []string{"contacts", "add", "bob", "friend"}, 2, []string{"friend"}},
		{"no command", "alice", nil, 2, []string{"usage:"}},
		{"server not trusted for the name", "alice", []string{"-server-name", "other.test", "send", "bob", "hi"}, 1, []string{"not other.test"}},
		{"server not trusted for the name, HTTPS", "alice", []string{"-server-name", "other.test", "relay"}, 1, []string{"not other.test"}},
		{"no CA file", "alice", []string{"-ca", filepath.Join(t.TempDir(), "none.crt"), "relay"}, 1, []string{"-ca", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runClient(t, srv, tt.user, tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.code, r.stdout, r.stderr)
			}
			for _, s := range tt.says {
				if !strings.Contains(r.stderr, s) {
					t.Fatalf("stderr does not say %q:\n%s", s, r.stderr)
				}
			}
			if !strings.HasPrefix(r.stderr, "parley-client: ") && !strings.HasPrefix(r.stderr, "usage: ") && !strings.Contains(r.stderr, "\nparley-client: ") {
				t.Fatalf("stderr not prefixed parley-client:\n%s", r.stderr)
			}
			if r.stdout != "" {
				t.Fatalf("stdout:\n%s", r.stdout)
			}
		})
	}
}
