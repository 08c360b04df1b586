package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"

	"github.com/parleyuc/parley/internal/baresiptest"
	"github.com/parleyuc/parley/pki"
)

func TestMain(m *testing.M) {
	runServerProcess() // a child started by startServerProcess: does not return
	code := m.Run()
	if code == 0 {
		// go-redis's dial probe (pool.tryDial), started while a test's
		// Redis was down, sleeps a second between tries and ends at its
		// next wake after its client is closed: longer than goleak's own
		// retries wait. Every goroutine gets 3 s to end.
		err := goleak.Find()
		for deadline := time.Now().Add(3 * time.Second); err != nil && time.Now().Before(deadline); err = goleak.Find() {
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// server is an examples/server instance run in-process by a test.
type server struct {
	data      string
	listeners map[string]string // name -> address, from the "listening" lines
	passwords map[string]string // demo user URI -> password, printed on first run
	stop      context.CancelFunc
	done      chan error
	logs      lockedBuffer // what the server logs
	pid       int          // its process, if it runs in one (startServerProcess)
}

// startServer runs the server with extra flags on loopback ports chosen by
// the kernel and waits for its listening lines. It is stopped (and must
// stop cleanly) when the test ends.
func startServer(t testing.TB, data string, extra ...string) *server {
	t.Helper()
	return startServerArgs(t, data, append(allOnPortZero(data), extra...))
}

// startServerArgs is startServer with the whole command line: args name
// data as the data directory, in a flag or a config file.
func startServerArgs(t testing.TB, data string, args []string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &server{data: data, listeners: map[string]string{}, passwords: map[string]string{}, stop: cancel, done: make(chan error, 1)}
	go func() {
		err := run(ctx, args, pw, &s.logs)
		pw.CloseWithError(io.EOF)
		s.done <- err
	}()
	s.readBanner(pr, 9)
	if len(s.listeners) < 9 {
		cancel()
		t.Fatalf("server did not start: %v", <-s.done)
	}
	t.Cleanup(func() {
		if t.Failed() { // what the server said is often why
			logs := s.logs.String()
			t.Logf("the server's log, its last 16 KB:\n%s", logs[max(0, len(logs)-16<<10):])
		}
		if err := s.shutdown(); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
	})
	return s
}

// readBanner reads the server's start-up lines until n listeners are
// named (or out ends), then drops the rest of out.
func (s *server) readBanner(out io.Reader, n int) {
	sc := bufio.NewScanner(out)
	for len(s.listeners) < n && sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "listening":
			s.listeners[f[1]] = f[2]
		case len(f) == 5 && f[0] == "demo" && f[1] == "user" && f[3] == "password":
			s.passwords[f[2]] = f[4]
		case strings.HasPrefix(sc.Text(), "Parley is running"): // after every listener
			n = 0
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
}

func (s *server) shutdown() error {
	s.stop()
	select {
	case err, ok := <-s.done:
		if !ok {
			return nil
		}
		close(s.done)
		return err
	case <-time.After(10 * time.Second):
		return errors.New("server did not stop within 10 s")
	}
}

// verifier trusts the server's CA, with revocation checked against the
// server's own CRL distribution point, as a client of the server would.
func (s *server) verifier(t testing.TB) *pki.Verifier {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.data, "ca", pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCertsPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(certs[0])
	crls, err := pki.NewCRLCache(pki.CRLCacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = crls.Close() })
	v, err := pki.NewVerifier(pki.VerifierConfig{Roots: roots, CRLs: crls})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sipUser is a sipgo client of the server over TLS, verifying the server
// as serverName, signing in as name (none: no From, no credentials).
type sipUser struct {
	s        *server
	name     string
	password string
	client   *sipgo.Client
	srv      *sipgo.Server // handles requests the server sends to this client
}

func (s *server) sipUser(t testing.TB, name, password, serverName string) *sipUser {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(nil, s.verifier(t), serverName)))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	client, err := sipgo.NewClient(ua)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = ua.Close() })
	return &sipUser{s: s, name: name, password: password, client: client, srv: srv}
}

// request builds a request to target, sent to the server's SIP TLS port.
func (u *sipUser) request(method sip.RequestMethod, target string, headers ...sip.Header) *sip.Request {
	var uri sip.Uri
	_ = sip.ParseUri(target, &uri)
	req := sip.NewRequest(method, uri)
	if u.name != "" {
		var from sip.Uri
		aor := u.name // a name of the demo tenant, or user@domain
		if !strings.Contains(aor, "@") {
			aor += "@example.test"
		}
		_ = sip.ParseUri("sip:"+aor, &from)
		params := sip.NewParams()
		params.Add("tag", sip.GenerateTagN(8))
		req.AppendHeader(&sip.FromHeader{Address: from, Params: params})
		req.AppendHeader(&sip.ToHeader{Address: uri})
	}
	for _, h := range headers {
		req.AppendHeader(h)
	}
	req.SetTransport("TLS")
	req.SetDestination(u.s.listeners["sip-tls"])
	return req
}

// do sends req, answering a Digest challenge with sipgo's own Digest
// client when the user has a name.
func (u *sipUser) do(req *sip.Request) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := u.client.Do(ctx, req)
	if err != nil || u.name == "" || res.StatusCode != sip.StatusUnauthorized {
		return res, err
	}
	user, _, _ := strings.Cut(u.name, "@")
	return u.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: u.password})
}

// options sends OPTIONS as user (or anonymously, if user is empty).
func options(t *testing.T, s *server, serverName, user, password string) (*sip.Response, error) {
	t.Helper()
	u := s.sipUser(t, user, password, serverName)
	return u.do(u.request(sip.OPTIONS, "sip:"+s.listeners["sip-tls"]+";transport=tls"))
}

func TestOptionsOverTLS(t *testing.T) {
	s := startServer(t, t.TempDir())
	res, err := options(t, s, "localhost", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != sip.StatusUnauthorized || res.GetHeader("WWW-Authenticate") == nil {
		t.Fatalf("unauthenticated OPTIONS answered %d %s, want a 401 challenge", res.StatusCode, res.Reason)
	}
	password := s.passwords["sip:alice@example.test"]
	if len(s.passwords) != 2 || password == "" {
		t.Fatalf("first run printed passwords %v, want alice's and bob's", s.passwords)
	}
	res, err = options(t, s, "localhost", "alice", password)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != sip.StatusOK {
		t.Fatalf("OPTIONS with alice's Digest credentials answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	if h := res.GetHeader("Allow"); h == nil || !strings.Contains(h.Value(), "OPTIONS") {
		t.Fatalf("200 OK without an Allow header listing OPTIONS: %v", res)
	}
	if res, _ := options(t, s, "localhost", "alice", "not-her-password"); res == nil || res.StatusCode == sip.StatusOK {
		t.Fatal("OPTIONS with a wrong password was served")
	}
	// A client that expects another name refuses the server.
	if _, err := options(t, s, "sip.other.test", "", ""); err == nil {
		t.Fatal("client accepted the server's certificate for a name it does not carry")
	}
}

func TestDemoTenantCreatedOnce(t *testing.T) {
	data := t.TempDir()
	first := startServer(t, data)
	if err := first.shutdown(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"parley.db", "demo-passwords.txt"} { // the directory is in the store
		fi, err := os.Stat(filepath.Join(data, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", f, err, fi.Mode().Perm())
		}
	}
	kept, _ := os.ReadFile(filepath.Join(data, "demo-passwords.txt"))
	if !strings.Contains(string(kept), first.passwords["sip:bob@example.test"]) {
		t.Fatal("demo-passwords.txt does not hold the printed passwords")
	}
	second := startServer(t, data)
	if len(second.passwords) != 0 {
		t.Fatal("passwords printed again on the second run")
	}
	res, err := options(t, second, "localhost", "bob", first.passwords["sip:bob@example.test"])
	if err != nil || res.StatusCode != sip.StatusOK {
		t.Fatalf("bob with the first run's password after a restart: %v %v", res, err)
	}
}

func TestCRLAndCAServedOverPlainHTTP(t *testing.T) {
	s := startServer(t, t.TempDir())
	for path, ctype := range map[string]string{"/pki/ca.crl": "application/pkix-crl", "/pki/ca.crt": "application/x-pem-file"} {
		resp, err := http.Get("http://" + s.listeners["http"] + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctype || len(body) == 0 {
			t.Fatalf("GET %s: %s %q, %d bytes", path, resp.Status, resp.Header.Get("Content-Type"), len(body))
		}
		if path == "/pki/ca.crl" {
			if _, err := pki.ParseCRL(body); err != nil {
				t.Fatalf("served CRL: %v", err)
			}
		}
	}
	// The server certificate names exactly that distribution point.
	kp, err := pki.LoadKeyPair(filepath.Join(s.data, "server.crt"), filepath.Join(s.data, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	want := "http://" + s.listeners["http"] + "/pki/ca.crl"
	if dps := kp.Certificate().Leaf.CRLDistributionPoints; len(dps) != 1 || dps[0] != want {
		t.Fatalf("server certificate distribution points %v, want [%s]", dps, want)
	}
}

// TestOpenSSLClientHandshake: an independent TLS client, checking the
// chain, the name and the CRL, completes a handshake with the SIP TLS port
// and gets an answer to OPTIONS.
func TestOpenSSLClientHandshake(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is not installed; .ci/run must install it")
		}
		t.Skip("openssl is not installed (Debian: apt-get install openssl)")
	}
	s := startServer(t, t.TempDir())
	resp, err := http.Get("http://" + s.listeners["http"] + "/pki/ca.crl")
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	crlFile := filepath.Join(t.TempDir(), "ca.crl")
	if err := os.WriteFile(crlFile, der, 0o600); err != nil {
		t.Fatal(err)
	}
	req := "OPTIONS sip:" + s.listeners["sip-tls"] + " SIP/2.0\r\n" +
		"Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-openssl-1\r\n" +
		"Max-Forwards: 70\r\nTo: <sip:" + s.listeners["sip-tls"] + ">\r\n" +
		"From: <sip:probe@example.test>;tag=49583\r\nCall-ID: openssl-probe-1\r\n" +
		"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", s.listeners["sip-tls"],
		"-CAfile", filepath.Join(s.data, "ca", pki.CACertFile), "-servername", "localhost",
		"-verify_hostname", "localhost", "-verify_return_error", "-crl_check", "-CRL", crlFile, "-CRLform", "DER")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(stdin, req)
	// openssl quits when its stdin closes: wait for the answer first.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "SIP/2.0 ") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stdin.Close()
	_ = cmd.Wait()
	got := out.String()
	if !strings.Contains(got, "Verify return code: 0 (ok)") {
		t.Fatalf("openssl did not verify the server:\n%s", got)
	}
	if !strings.Contains(got, "SIP/2.0 401 Unauthorized") || !strings.Contains(got, "WWW-Authenticate: Digest") {
		t.Fatalf("no Digest challenge to OPTIONS over openssl's TLS connection:\n%s", got)
	}
}

func TestRestartKeepsCAAndCertificate(t *testing.T) {
	data := t.TempDir()
	httpAddr := freeAddr(t)
	s := startServer(t, data, "-http", httpAddr)
	caBefore, _ := os.ReadFile(filepath.Join(data, "ca", pki.CACertFile))
	certBefore, _ := os.ReadFile(filepath.Join(data, "server.crt"))
	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}
	startServer(t, data, "-http", httpAddr)
	caAfter, _ := os.ReadFile(filepath.Join(data, "ca", pki.CACertFile))
	certAfter, _ := os.ReadFile(filepath.Join(data, "server.crt"))
	if string(caBefore) != string(caAfter) || len(caAfter) == 0 {
		t.Fatal("the CA changed across a restart")
	}
	if string(certBefore) != string(certAfter) {
		t.Fatal("a current server certificate was replaced across a restart")
	}
}

func TestStartupErrorsNameTheProblem(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	looseKeyDir := t.TempDir()
	if s := startServer(t, looseKeyDir); s.shutdown() != nil {
		t.Fatal("first run failed")
	}
	if err := os.Chmod(filepath.Join(looseKeyDir, "ca", pki.CAKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	looseDBDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(looseDBDir, "parley.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	unreadable := t.TempDir()
	if err := os.Chmod(unreadable, 0o000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(unreadable, 0o700) })
	sharedDir := t.TempDir()
	if err := os.Chmod(sharedDir, 0o777); err != nil {
		t.Fatal(err)
	}
	looseTokenDir := t.TempDir()
	if s := startServer(t, looseTokenDir); s.shutdown() != nil {
		t.Fatal("first run failed")
	}
	if err := os.Chmod(filepath.Join(looseTokenDir, adminTokenFile), 0o644); err != nil {
		t.Fatal(err)
	}
	looseDirectoryDir := t.TempDir()
	if s := startServer(t, looseDirectoryDir, "-store", "memory"); s.shutdown() != nil { // the directory in directory.json
		t.Fatal("first run failed")
	}
	if err := os.Chmod(filepath.Join(looseDirectoryDir, directoryFile), 0o640); err != nil {
		t.Fatal(err)
	}
	config := func(body string) string {
		path := filepath.Join(t.TempDir(), "parley.json")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	tests := []struct {
		name string
		args []string
		says []string
	}{
		{"data directory unreadable", allOnPortZero(unreadable), []string{"-data " + unreadable, "mode 0000", "chmod 700"}},
		{"data directory writable by others", allOnPortZero(sharedDir), []string{"-data " + sharedDir, "mode 0777", "others may write"}},
		{"admin token readable by others", allOnPortZero(looseTokenDir), []string{adminTokenFile, "chmod 600"}},
		{"directory readable by others", append(allOnPortZero(looseDirectoryDir), "-store", "memory"), []string{directoryFile, "mode 0640", "chmod 600"}},
		{"config: unknown field", []string{"-config", config(`{"listen":"127.0.0.1","sip_tsl":":5061"}`)}, []string{"parley.json", `unknown field "sip_tsl"`}},
		{"config: wrong type", []string{"-config", config(`{"log":{"level":3}}`)}, []string{"parley.json", `field "log.level"`, "want a string"}},
		{"config: syntax error", []string{"-config", config("{\n  \"store\": \"bolt\",\n}")}, []string{"parley.json", "line 3"}},
		{"config: bad address", []string{"-config", config(`{"https":"127.0.0.1"}`)}, []string{"parley.json", `field "https" (-https) "127.0.0.1"`, "missing port"}},
		{"config: bad store", []string{"-config", config(`{"store":"floppy"}`)}, []string{"parley.json", `field "store"`, "bolt, memory or redis"}},
		{"config: missing file", []string{"-config", "/nonexistent/parley.json"}, []string{"-config", "no such file"}},
		{"bad -listen", []string{"-listen", "127.0.0.1:80"}, []string{`"listen" (-listen)`, "without a port"}},
		{"HTTP port in use", []string{"-data", t.TempDir(), "-http", busy.Addr().String()},
			[]string{"-http " + busy.Addr().String(), "address already in use"}},
		{"SIP TLS port in use", []string{"-data", t.TempDir(), "-http", "127.0.0.1:0", "-sip-tls", busy.Addr().String()},
			[]string{"-sip-tls " + busy.Addr().String(), "address already in use"}},
		{"SIP WSS port in use", []string{"-data", t.TempDir(), "-http", "127.0.0.1:0", "-sip-tls", "127.0.0.1:0", "-sip-wss", busy.Addr().String()},
			[]string{"-sip-wss " + busy.Addr().String(), "address already in use"}},
		{"data directory is a file", []string{"-data", notADir, "-http", "127.0.0.1:0", "-sip-tls", "127.0.0.1:0", "-sip-wss", "127.0.0.1:0", "-https", "127.0.0.1:0", "-edge", "127.0.0.1:0", "-edge-users", "127.0.0.1:0", "-turn", "127.0.0.1:0", "-turns", "127.0.0.1:0", "-media", "127.0.0.1:0"},
			[]string{"-data " + notADir, "not a directory"}},
		{"CA key readable by others", []string{"-data", looseKeyDir, "-http", "127.0.0.1:0", "-sip-tls", "127.0.0.1:0", "-sip-wss", "127.0.0.1:0", "-https", "127.0.0.1:0", "-edge", "127.0.0.1:0", "-edge-users", "127.0.0.1:0", "-turn", "127.0.0.1:0", "-turns", "127.0.0.1:0", "-media", "127.0.0.1:0"},
			[]string{pki.CAKeyFile, "chmod 600"}},
		{"unknown store", append(allOnPortZero(t.TempDir()), "-store", "floppy"), []string{"-store", "floppy", "bolt, memory or redis"}},
		{"database readable by others", append(allOnPortZero(looseDBDir), "-store", "bolt"), []string{"-store bolt", "parley.db", "chmod 600"}},
		{"unknown flag", []string{"-bogus"}, []string{"bogus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("server started")
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

// TestInterruptStopsCleanly builds the command and runs it as a user
// would, then sends Ctrl-C (SIGINT): it must exit 0, promptly.
func TestInterruptStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "parley-server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-data", t.TempDir(), "-http", "127.0.0.1:0", "-sip-tls", "127.0.0.1:0", "-sip-wss", "127.0.0.1:0", "-https", "127.0.0.1:0", "-edge", "127.0.0.1:0", "-edge-users", "127.0.0.1:0", "-turn", "127.0.0.1:0", "-turns", "127.0.0.1:0", "-media", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	want := []string{"http", "sip-tls", "sip-wss", "https", "edge", "edge-users", "turn", "turns", "media"}
	sc := bufio.NewScanner(stdout)
	var lines []string
	for len(lines) < len(want) && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "listening ") {
			lines = append(lines, sc.Text())
		}
	}
	ok := len(lines) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(lines[i], "listening "+want[i]+" 127.0.0.1:")
	}
	if !ok {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("listening lines %q\nstderr:\n%s", lines, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("exit after Ctrl-C: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-waited
		t.Fatal("server did not exit within 10 s of Ctrl-C")
	}
	if !strings.Contains(stderr.String(), "parley stopped") {
		t.Fatalf("no clean-stop log line:\n%s", stderr.String())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lockedBuffer collects a process's output (the server's logs) while a
// test reads it, and waits for text in it.
type lockedBuffer = baresiptest.Output

// allOnPortZero is the flags of a server on data with every listener on a
// port the kernel picks.
func allOnPortZero(data string) []string {
	return []string{"-data", data, "-http", "127.0.0.1:0", "-sip-tls", "127.0.0.1:0", "-sip-wss", "127.0.0.1:0", "-https", "127.0.0.1:0",
		"-edge", "127.0.0.1:0", "-edge-users", "127.0.0.1:0", "-turn", "127.0.0.1:0", "-turns", "127.0.0.1:0", "-media", "127.0.0.1:0"}
}
