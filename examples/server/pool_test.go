package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/internal/testredis"
)

// serverProcessEnv makes the test binary run the server (with the
// arguments in it, one per line) instead of the tests: a front end a
// test can kill.
const serverProcessEnv = "PARLEY_TEST_SERVER_ARGS"

// runServerProcess is called by TestMain: in a child started by
// startServerProcess, it runs the server and exits.
func runServerProcess() {
	args := os.Getenv(serverProcessEnv)
	if args == "" {
		return
	}
	err := run(context.Background(), strings.Split(args, "\n"), os.Stdout, os.Stderr)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(0)
}

// startServerProcess runs the server in a child process; kill (or the end
// of the test) SIGKILLs it.
func startServerProcess(t testing.TB, data string, extra ...string) (s *server, kill func()) {
	t.Helper()
	return startServerProcessArgs(t, data, append(allOnPortZero(data), extra...))
}

// startServerProcessArgs is startServerProcess with the whole command
// line given.
func startServerProcessArgs(t testing.TB, data string, args []string) (s *server, kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverProcessEnv+"="+strings.Join(args, "\n"))
	s = &server{data: data, listeners: map[string]string{}, passwords: map[string]string{}}
	cmd.Stderr = &s.logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	kill = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	t.Cleanup(kill)
	s.readBanner(out, 10)
	if len(s.listeners) < 9 {
		kill()
		t.Fatalf("front end did not start:\n%s", s.logs.String())
	}
	return s, kill
}

// startPool starts n front ends of a pool, each its own process, on one
// redis-server and one data directory, extra flags to each: the i-th
// listens for the pool and for SIP-TLS on 127.0.0.(i+1), and all know the
// demo users' passwords the first printed. kill[i] ends the i-th with
// SIGKILL.
func startPool(t testing.TB, n int, extra ...string) (rds *testredis.Server, fe []*server, kill []func()) {
	t.Helper()
	rds = testredis.Run(t)
	data := t.TempDir()
	for i := range n {
		args := []string{"-store", "redis", "-redis", rds.URL, "-pool", fmt.Sprintf("127.0.0.%d:0", i+1)}
		if i > 0 {
			args = append(args, "-sip-tls", fmt.Sprintf("127.0.0.%d:0", i+1))
		}
		s, k := startServerProcess(t, data, append(args, extra...)...)
		if i > 0 {
			s.passwords = fe[0].passwords // printed once, by the first
		}
		fe, kill = append(fe, s), append(kill, k)
	}
	return rds, fe, kill
}

// phone is a signed-in SIP user: registered, answering MESSAGEs and
// NOTIFYs that arrive over its connection.
type phone struct {
	*sipUser
	messages chan string // MESSAGE bodies
	notifies chan string // NOTIFY bodies, each followed by its Subscription-State line
}

func signIn(t testing.TB, s *server, name, password string) *phone {
	t.Helper()
	p := &phone{sipUser: s.sipUser(t, name, password, "localhost"), messages: make(chan string, 16), notifies: make(chan string, 64)}
	p.srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		p.messages <- string(req.Body())
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	p.srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		state := ""
		if h := req.GetHeader("Subscription-State"); h != nil {
			state = h.Value()
		}
		p.notifies <- string(req.Body()) + "\nSubscription-State: " + state
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	user, _, _ := strings.Cut(name, "@")
	res, err := p.do(p.request(sip.REGISTER, aorOf(name),
		sip.NewHeader("Contact", "<sip:"+user+"@127.0.0.1;transport=tls>"), sip.NewHeader("Expires", "600")))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%s REGISTER: %v %v", name, res, err)
	}
	return p
}

// aorOf is the address of record of name: a user of the demo tenant, or
// user@domain.
func aorOf(name string) string {
	if strings.Contains(name, "@") {
		return "sip:" + name
	}
	return "sip:" + name + "@example.test"
}

func (p *phone) send(t *testing.T, method sip.RequestMethod, to, contentType, body string, headers ...sip.Header) int {
	t.Helper()
	req := p.request(method, to, append(headers, sip.NewHeader("Content-Type", contentType))...)
	req.SetBody([]byte(body))
	res, err := p.do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, to, err)
	}
	return res.StatusCode
}

func (p *phone) publish(t *testing.T, note string) {
	t.Helper()
	pidf := `<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:` + p.name + `@example.test">` +
		`<tuple id="t"><status><basic>open</basic></status><note>` + note + `</note></tuple></presence>`
	if code := p.send(t, sip.PUBLISH, "sip:"+p.name+"@example.test", "application/pidf+xml", pidf,
		sip.NewHeader("Event", "presence"), sip.NewHeader("Expires", "600")); code != 200 {
		t.Fatalf("%s PUBLISH: %d", p.name, code)
	}
}

func (p *phone) watch(t *testing.T, presentity string) {
	t.Helper()
	user, _, _ := strings.Cut(p.name, "@")
	res, err := p.do(p.request(sip.SUBSCRIBE, presentity, sip.NewHeader("Contact", "<sip:"+user+"@127.0.0.1;transport=tls>"),
		sip.NewHeader("Event", "presence"), sip.NewHeader("Expires", "600")))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%s SUBSCRIBE %s: %v %v", p.name, presentity, res, err)
	}
}

// await waits for an item of ch containing text.
func await(t *testing.T, ch chan string, what, text string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-ch:
			if strings.Contains(got, text) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s with %q within 10 s", what, text)
		}
	}
}

// TestTwoFrontEnds: two front ends share one Redis and the data
// directory. alice signs in on A, bob on B; each sees the other's
// presence and their messages reach each other. A is killed (SIGKILL):
// bob sees alice offline within the pool's bound; alice signs in on B,
// and her contacts, privacy setting and meetings are all there, and
// messages and presence flow again.
func TestTwoFrontEnds(t *testing.T) {
	rds := testredis.Run(t)
	data := t.TempDir()
	pool := []string{"-store", "redis", "-redis", rds.URL}
	a, killA := startServerProcess(t, data, append(pool, "-pool", "127.0.0.1:0")...)
	b := startServer(t, data, append(pool, "-pool", "127.0.0.2:0", "-sip-tls", "127.0.0.2:0")...)
	b.passwords = a.passwords // printed once, by the first front end
	alicePW, bobPW := a.passwords["sip:alice@example.test"], a.passwords["sip:bob@example.test"]

	// alice, on A, keeps bob as a workgroup contact, turns privacy mode
	// on and schedules a meeting.
	api := func(s *server, method, path, body string) (int, string) {
		t.Helper()
		return apiCall(t, s, "alice", alicePW, method, path, body)
	}
	if code, body := api(a, "PUT", "/api/me/contacts/sip:bob@example.test", `{"level":"workgroup"}`); code != http.StatusOK {
		t.Fatalf("alice adds bob: %d %s", code, body)
	}
	if code, body := api(a, "PUT", "/api/me/privacy", `{"privacy_mode":true}`); code != http.StatusOK {
		t.Fatalf("alice's privacy mode: %d %s", code, body)
	}
	code, body := api(a, "POST", "/api/meetings", `{"subject":"Pool planning","access":"company"}`)
	var m struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &m) != nil {
		t.Fatalf("alice schedules: %d %s", code, body)
	}

	alice := signIn(t, a, "alice", alicePW)
	bob := signIn(t, b, "bob", bobPW)

	// Presence both ways: bob (on B) watches alice (on A) and she him.
	bob.watch(t, "sip:alice@example.test")
	alice.watch(t, "sip:bob@example.test")
	alice.publish(t, "Writing the pool design")
	await(t, bob.notifies, "NOTIFY to bob on B", "Writing the pool design")
	bob.publish(t, "Reviewing")
	await(t, alice.notifies, "NOTIFY to alice on A", "Reviewing")

	// Messages both ways, across the front ends.
	if code := alice.send(t, sip.MESSAGE, "sip:bob@example.test", "text/plain", "hello from A"); code != 200 {
		t.Fatalf("alice (A) to bob (B): %d\nA:\n%s\nB:\n%s", code, a.logs.String(), b.logs.String())
	}
	await(t, bob.messages, "MESSAGE to bob", "hello from A")
	if code := bob.send(t, sip.MESSAGE, "sip:alice@example.test", "text/plain", "hello from B"); code != 200 {
		t.Fatalf("bob (B) to alice (A): %d", code)
	}
	await(t, alice.messages, "MESSAGE to alice", "hello from B")

	// A dies. Its heartbeat lapses, B removes what A held, and bob (on
	// B) sees alice offline within the bound (nodeTimeout + nodeBeat).
	killA()
	killed := time.Now()
	await(t, bob.notifies, "NOTIFY to bob that alice, whose front end died, is offline", "<basic>closed</basic>")
	if d := time.Since(killed); d > nodeTimeout+nodeBeat+time.Second {
		t.Fatalf("alice seen offline %v after her front end died, over the bound", d)
	} else {
		t.Logf("alice seen offline %v after her front end died", d.Round(10*time.Millisecond))
	}
	// alice signs in again, on B.
	alice = signIn(t, b, "alice", alicePW)
	if code, body := api(b, "GET", "/api/me/contacts", ""); code != http.StatusOK ||
		!strings.Contains(body, `{"uri":"sip:bob@example.test","level":"workgroup"}`) || !strings.Contains(body, `"privacy_mode":true`) {
		t.Fatalf("alice's contacts on B after A died: %d %s", code, body)
	}
	if code, body := api(b, "GET", "/api/meetings", ""); code != http.StatusOK || !strings.Contains(body, m.ID) || !strings.Contains(body, "Pool planning") {
		t.Fatalf("alice's meetings on B after A died: %d %s", code, body)
	}
	if code := bob.send(t, sip.MESSAGE, "sip:alice@example.test", "text/plain", "welcome to B"); code != 200 {
		t.Fatalf("bob to alice, both on B: %d", code)
	}
	await(t, alice.messages, "MESSAGE to alice on B", "welcome to B")
	alice.publish(t, "Back, on B")
	await(t, bob.notifies, "NOTIFY to bob", "Back, on B")
}

// TestRedisStopsAndReturns: with its Redis gone, a front end answers its
// clients 503 with Retry-After (SIP and HTTPS) and logs why, without
// panicking or signing anyone out; when Redis is back (killed, and
// started again on its append-only file, as a pool's Redis runs: the
// directory is there), clients go on and messages and presence flow.
func TestRedisStopsAndReturns(t *testing.T) {
	redisDir := t.TempDir()
	rds, err := testredis.StartPersistent(redisDir)
	if err != nil {
		testredis.Unavailable(t, err)
	}
	t.Cleanup(rds.Stop)
	s := startServer(t, t.TempDir(), "-store", "redis", "-redis", rds.URL, "-pool", "127.0.0.1:0")
	alicePW, bobPW := s.passwords["sip:alice@example.test"], s.passwords["sip:bob@example.test"]
	alice, bob := signIn(t, s, "alice", alicePW), signIn(t, s, "bob", bobPW)
	bob.watch(t, "sip:alice@example.test")

	rds.Stop()
	register := func(p *phone) *sip.Response {
		t.Helper()
		res, err := p.do(p.request(sip.REGISTER, "sip:"+p.name+"@example.test",
			sip.NewHeader("Contact", "<sip:"+p.name+"@127.0.0.1;transport=tls>"), sip.NewHeader("Expires", "600")))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := register(alice); res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("REGISTER without Redis: %d %v, want 503 with Retry-After", res.StatusCode, res.GetHeader("Retry-After"))
	}
	if code := bob.send(t, sip.MESSAGE, "sip:alice@example.test", "text/plain", "anyone there?"); code != 503 {
		t.Fatalf("MESSAGE without Redis: %d, want 503", code)
	}
	pidf := `<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.test"><tuple id="t"><status><basic>open</basic></status></tuple></presence>`
	if code := alice.send(t, sip.PUBLISH, "sip:alice@example.test", "application/pidf+xml", pidf,
		sip.NewHeader("Event", "presence"), sip.NewHeader("Expires", "600")); code != 503 {
		t.Fatalf("PUBLISH without Redis: %d, want 503", code)
	}
	res := digestDo(t, s.httpsClient(t), "GET", "https://"+s.listeners["https"]+"/api/meetings", "alice", alicePW, nil)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("listing meetings without Redis: %d", res.StatusCode)
	}
	if code, body := healthCheck(t, s); code != http.StatusServiceUnavailable || !strings.Contains(body, `"store":`) || strings.Contains(body, `"store":"ok"`) {
		t.Fatalf("healthz without Redis: %d %s", code, body)
	}
	for _, logged := range []string{"directory unavailable", "store: Redis failed"} {
		if !strings.Contains(s.logs.String(), logged) {
			t.Fatalf("the log does not say %q:\n%s", logged, s.logs.String())
		}
	}

	back, err := testredis.StartPersistent(redisDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(back.Stop)
	// The front end's Redis client finds the server again within a
	// second or two; meanwhile it answers 503 with Retry-After, as a
	// client honouring it sees.
	for _, p := range []*phone{alice, bob} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			res := register(p)
			if res.StatusCode == 200 {
				break
			}
			if res.StatusCode != 503 || time.Now().After(deadline) {
				t.Fatalf("%s REGISTER with Redis back: %d %s", p.name, res.StatusCode, res.Reason)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if code := bob.send(t, sip.MESSAGE, "sip:alice@example.test", "text/plain", "there you are"); code != 200 {
		t.Fatalf("MESSAGE with Redis back: %d", code)
	}
	await(t, alice.messages, "MESSAGE to alice", "there you are")
	if code, body := healthCheck(t, s); code != http.StatusOK {
		t.Fatalf("healthz with Redis back: %d %s", code, body)
	}
	alice.publish(t, "Back online")
	await(t, bob.notifies, "NOTIFY to bob", "Back online")
}
