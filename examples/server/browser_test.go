package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestBrowserMeeting is the web client end to end, in Debian's headless
// Chromium driven by playwright-core (e2e/meeting.mjs): alice, the
// organizer, and an anonymous guest open the meeting's link; the guest
// waits in the lobby hearing the music, alice admits her, and each decodes
// the other's video through the media bridge. The meeting view's
// screenshots are kept in $PARLEY_ARTIFACTS (default: artifacts/ at the
// repository's root) for CI to publish.
func TestBrowserMeeting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	node, err := exec.LookPath("node")
	_, errChromium := os.Stat(chromium)
	_, errModules := os.Stat(filepath.Join("e2e", "node_modules", "playwright-core"))
	if err != nil || errChromium != nil || errModules != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node (%v), %s (%v) and e2e's playwright-core (%v) are needed; .ci/run installs them", err, chromium, errChromium, errModules)
		}
		t.Skip("node, chromium or e2e/node_modules missing: run npm ci in examples/server/e2e")
	}
	artifacts := os.Getenv("PARLEY_ARTIFACTS")
	if artifacts == "" {
		artifacts, _ = filepath.Abs(filepath.Join("..", "..", "artifacts"))
	}

	s := startServer(t, t.TempDir())
	c := s.httpsClient(t)
	alicePW := s.passwords["sip:alice@example.test"]
	body, _ := json.Marshal(map[string]string{"subject": "Browser demo", "access": "organization"})
	res := digestDo(t, c, "POST", "https://"+s.listeners["https"]+"/api/meetings", "alice", alicePW, body)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("schedule: %s %s", res.Status, b)
	}
	var m struct {
		JoinURL string `json:"join_url"`
		Key     string `json:"conference_key"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	// Chromium is told to accept the server's key and no other.
	page, err := c.Get(m.JoinURL)
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	spki := sha256.Sum256(page.TLS.PeerCertificates[0].RawSubjectPublicKeyInfo)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "meeting.mjs")
	cmd.Dir = "e2e"
	cmd.Env = append(os.Environ(), "PARLEY_JOIN_URL="+m.JoinURL, "PARLEY_KEY="+m.Key, "PARLEY_USER=alice", "PARLEY_PASSWORD="+alicePW,
		"PARLEY_SPKI="+base64.StdEncoding.EncodeToString(spki[:]), "PARLEY_ARTIFACTS="+artifacts, "CHROMIUM="+chromium)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("e2e/meeting.mjs:\n%s", out.String())
	if err != nil {
		t.Fatalf("the browser test failed: %v\nserver log:\n%s", err, s.logs.String())
	}
	for _, f := range []string{"lobby.png", "meeting.png"} {
		if st, err := os.Stat(filepath.Join(artifacts, f)); err != nil || st.Size() < 10_000 {
			t.Fatalf("screenshot %s: %v", f, err)
		}
	}
}
