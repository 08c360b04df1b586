package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// browserTools returns node and Chromium for the browser tests, skipping
// the test (failing it under CI) when they or e2e's playwright-core are
// missing.
func browserTools(t *testing.T) (node, chromium string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a browser")
	}
	chromium = os.Getenv("CHROMIUM")
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
		t.Skip("node, chromium or e2e/node_modules missing (Debian: apt-get install chromium nodejs npm; then npm ci in examples/server/e2e)")
	}
	return node, chromium
}

// artifactsDir is where the browser tests' screenshots go:
// $PARLEY_ARTIFACTS, or artifacts/ at the repository's root.
func artifactsDir() string {
	if a := os.Getenv("PARLEY_ARTIFACTS"); a != "" {
		return a
	}
	a, _ := filepath.Abs(filepath.Join("..", "..", "artifacts"))
	return a
}

// browserMeeting is a meeting alice scheduled, for a browser scenario.
type browserMeeting struct {
	s    *server
	m    scheduled
	url  string
	spki string
}

// browserMeetingOn has alice schedule a meeting with the given JSON on a
// running server.
func browserMeetingOn(t *testing.T, s *server, body string) *browserMeeting {
	t.Helper()
	m := s.schedule(t, "alice", body)
	url := "https://" + s.listeners["https"] + "/meet/" + m.ID
	// Chromium is told to accept the server's key and no other.
	page, err := s.httpsClient(t).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	spki := sha256.Sum256(page.TLS.PeerCertificates[0].RawSubjectPublicKeyInfo)
	return &browserMeeting{s: s, m: m, url: url, spki: base64.StdEncoding.EncodeToString(spki[:])}
}

// run runs scenario of e2e/client.mjs against the meeting, failing the
// test with its output and the server's log if it fails. When a line of
// the scenario's output holds a key of hooks, its function runs (in the
// test's goroutine): the scenario asks the server side for something.
func (b *browserMeeting) run(t *testing.T, scenario string, hooks map[string]func()) {
	t.Helper()
	b.runScript(t, 90*time.Second, hooks, nil, "client.mjs", scenario)
}

// runScript runs an e2e script (and its arguments) against the meeting,
// with env added to its environment, for at most timeout; hooks are as
// for run.
func (b *browserMeeting) runScript(t *testing.T, timeout time.Duration, hooks map[string]func(), env []string, script string, args ...string) {
	t.Helper()
	node, chromium := browserTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	scenario := strings.Join(append([]string{script}, args...), " ")
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = "e2e"
	cmd.Env = append(os.Environ(), "PARLEY_JOIN_URL="+b.url, "PARLEY_KEY="+b.m.ConferenceKey, "PARLEY_USER=alice",
		"PARLEY_PASSWORD="+b.s.passwords["sip:alice@example.test"], "PARLEY_DOMAIN="+demoDomain,
		"PARLEY_SPKI="+b.spki, "PARLEY_ARTIFACTS="+artifactsDir(), "CHROMIUM="+chromium)
	cmd.Env = append(cmd.Env, env...)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	var out bytes.Buffer
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		for key, hook := range hooks {
			if strings.Contains(line, key) {
				hook()
			}
		}
	}
	err = cmd.Wait()
	t.Logf("e2e/%s (%v):\n%s", scenario, time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("the browser scenario %s failed: %v\nserver log:\n%s", scenario, err, b.s.logs.String())
	}
}

// screenshot fails the test unless the scenario saved the named screenshot.
func screenshot(t *testing.T, name string) {
	t.Helper()
	if st, err := os.Stat(filepath.Join(artifactsDir(), name)); err != nil || st.Size() < 5_000 {
		t.Fatalf("screenshot %s: %v", name, err)
	}
}

const guestMeeting = `{"subject":"Web client","access":"organization"}`

// webScenario is a browser scenario of TestWebClient: a scenario of
// e2e/client.mjs, the screenshots it must save, and what the Go side
// prepares before it runs (hooks it answers while it runs).
type webScenario struct {
	name, scenario string
	screenshots    []string
	hooks          func(t *testing.T, bm *browserMeeting) map[string]func()
}

// webScenarios are TestWebClient's; builds with Opus add the SIP caller's
// (webclient_sip_test.go).
var webScenarios = []webScenario{
	// A wrong conference key and a wrong password each say so in
	// plain words (they were a JavaScript error about reading the
	// body twice).
	{name: "JoinErrors", scenario: "join-errors"},
	// alice signs in as alice@example.test, sip:alice@example.test,
	// Alice and " ALICE ".
	{name: "SignInNames", scenario: "sign-in-names"},
	// A presenter shares the screen from the page, the admitted guest
	// sees it large beside the cameras, and the guest, an attendee,
	// has no way to start one; the presenter stops it.
	{name: "ScreenShare", scenario: "screen-share", screenshots: []string{"screen-share.png"}},
	// At 390 px and 360 px every control of the lobby and the meeting
	// is on screen, for the leader and the guest; at 1,100 px the
	// lobby's Reject button stays in its panel.
	{name: "PhoneWidth", scenario: "phone", screenshots: []string{"phone.png"}},
	// The audience muted shows in the list and on the guest's button;
	// "Join again" keeps the key; a reload keeps the guest's name.
	{name: "RejoinAndMute", scenario: "rejoin-and-mute"},
	// Two guests wait in the lobby (announced to the organizer,
	// counted); Admit all lets both in; the organizer promotes one
	// (who may then share a screen) and demotes her again, and removes
	// the other, who is told so.
	{name: "LeaderControls", scenario: "leader-controls", screenshots: []string{"lobby-list.png"}},
	// A guest stops her camera (the others see a placeholder with her
	// initials) and starts it again, and mutes and unmutes her
	// microphone, each button showing its state.
	{name: "Toggles", scenario: "toggles"},
	// The organizer and an admitted guest chat through the meeting's
	// signaling; in the lobby the guest has no chat.
	{name: "Chat", scenario: "chat"},
	// A guest rejected from the lobby, a browser that refuses the
	// camera (she still joins, to watch and listen), a lobby timeout
	// and a meeting that ends, each explained in plain words.
	{name: "ErrorPaths", scenario: "error-paths", hooks: func(t *testing.T, bm *browserMeeting) map[string]func() {
		return map[string]func(){
			"end the meeting": func() { bm.s.admin(t).must("DELETE", "/meetings/"+bm.m.ID, "", http.StatusNoContent, nil) },
		}
	}},
	// bob, a SIP participant, and alice in the browser chat: her
	// message reaches him as a MESSAGE in his INVITE dialog, his
	// reaches her page.
	{name: "SIPChat", scenario: "sip-chat", hooks: sipChatter},
	// The pre-join screen previews the camera and lists the devices;
	// alice joins muted with the camera off and changes microphone in
	// the meeting; axe-core (pinned in e2e/package.json) finds nothing
	// serious or critical on the join page and the meeting page.
	{name: "PrejoinAndAccessibility", scenario: "prejoin-a11y", screenshots: []string{"prejoin.png"}},
	// An admitted guest raises her hand from the page; the organizer
	// sees it in the list (icon and screen-reader text), hears it
	// announced and lowers it, and the guest is told; an attendee has
	// no way to lower another's; in the lobby there is no hand.
	{name: "RaiseHand", scenario: "raise-hand"},
	// Each page shows its connection (good on loopback, with round
	// trip, loss and jitter), updated every few seconds; a 900 ms round
	// trip shows as poor.
	{name: "ConnectionIndicator", scenario: "connection"},
	// With Chromium's fake cameras, the organizer changes camera in the
	// meeting: the same sender sends the new track without a new
	// offer, and the guest keeps decoding her video.
	{name: "CameraChange", scenario: "camera-change"},
	// A promoted guest leaves and rejoins: she is an attendee, told so
	// when she leaves; the organizer's page marks and announces her as
	// a presenter who came back as an attendee.
	{name: "RejoinPresenter", scenario: "rejoin-presenter"},
}

// TestWebClient runs the web client's browser scenarios (e2e/client.mjs),
// in parallel (go test's -parallel, the number of CPUs by default), each
// in a meeting of its own on one server.
func TestWebClient(t *testing.T) {
	browserTools(t)
	s := startServer(t, t.TempDir())
	for _, sc := range webScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			if sc.scenario == "prejoin-a11y" {
				if _, err := os.Stat(filepath.Join("e2e", "node_modules", "axe-core")); err != nil {
					if os.Getenv("CI") != "" {
						t.Fatal("e2e's axe-core is missing: npm ci in examples/server/e2e")
					}
					t.Skip("e2e's axe-core is missing: run npm ci in examples/server/e2e")
				}
			}
			bm := browserMeetingOn(t, s, guestMeeting)
			var hooks map[string]func()
			if sc.hooks != nil {
				hooks = sc.hooks(t, bm)
			}
			bm.run(t, sc.scenario, hooks)
			for _, f := range sc.screenshots {
				screenshot(t, f)
			}
		})
	}
}

// sipChatter has bob join the meeting over SIP (no media) and returns the
// hooks of the sip-chat scenario: when alice has written to him, he
// checks he received it as a MESSAGE and answers with one.
func sipChatter(t *testing.T, bm *browserMeeting) map[string]func() {
	bob := bm.s.sipUser(t, "bob", bm.s.passwords["sip:bob@example.test"], "localhost")
	messages := make(chan string, 16)
	bob.srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		messages <- string(req.Body())
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	invite := bob.request(sip.INVITE, bm.m.Focus, sip.NewHeader("Contact", "<sip:bob-dev@127.0.0.1;transport=tls>"))
	in, err := bob.do(invite)
	if err != nil || in.StatusCode != 200 {
		t.Fatalf("bob joins over SIP: %v %v", in, err)
	}
	ack := inMeetingDialog(bob, invite, in, sip.ACK)
	ack.CSeq().SeqNo = invite.CSeq().SeqNo
	_ = bob.client.WriteRequest(ack)
	return map[string]func(){
		"wrote to the SIP participant": func() {
			select {
			case got := <-messages:
				if got != "Alice Liddell: Hello, Bob" {
					t.Fatalf("bob received %q", got)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("bob received no MESSAGE")
			}
			msg := inMeetingDialog(bob, invite, in, sip.MESSAGE)
			msg.AppendHeader(sip.NewHeader("Content-Type", "text/plain;charset=utf-8"))
			msg.SetBody([]byte("Hello from SIP"))
			if res, err := bob.do(msg); err != nil || res.StatusCode != 200 {
				t.Fatalf("bob's MESSAGE: %v %v", res, err)
			}
		},
	}
}
