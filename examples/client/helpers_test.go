package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The subprocess helpers: TestMain builds examples/server, this client
// and examples/admin once; a test starts a server on a data directory
// (startServer) and runs clients against it as a script would
// (startClient, runClient).

// bin holds the binaries TestMain builds: set before any test runs, read
// only after.
var bin struct {
	server, client, admin string
}

// TestMain builds the binaries, runs the tests and checks that no
// goroutine outlives them.
func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

// testMain is TestMain returning the exit status, so that its deferred
// clean-up runs.
func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "parley-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin.server, bin.client, bin.admin = filepath.Join(dir, "parley-server"), filepath.Join(dir, "parley-client"), filepath.Join(dir, "parley-admin")
	for path, pkg := range map[string]string{bin.server: "github.com/parleyuc/parley/examples/server",
		bin.client: "github.com/parleyuc/parley/examples/client", bin.admin: "github.com/parleyuc/parley/examples/admin"} {
		// Plain binaries: the race detector watches this package's tests.
		if out, err := exec.Command("go", "build", "-o", path, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

// lineLog collects a process's output, line by line, while a test reads
// it. It is safe for concurrent use.
type lineLog struct {
	mu      sync.Mutex
	all     strings.Builder
	partial string
	lines   []string
}

// Write takes output, splitting it into lines.
func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.partial += string(p)
	for {
		line, rest, ok := strings.Cut(l.partial, "\n")
		if !ok {
			break
		}
		l.lines = append(l.lines, line)
		l.partial = rest
	}
	return len(p), nil
}

// Lines returns the complete lines written so far.
func (l *lineLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// String returns everything written so far.
func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// serverProcess is an examples/server binary running for a test.
type serverProcess struct {
	dataDir   string
	listeners map[string]string // name -> address, from its "listening <name> <addr>" lines
	passwords map[string]string // demo user URI -> password, from DIR/demo-passwords.txt
	stdout    *lineLog
	logs      *lineLog // its stderr
	cmd       *exec.Cmd
	done      chan struct{} // closed when it has exited
	exitErr   error         // how it exited, once done is closed
	stopOnce  sync.Once
	stopErr   error
}

// serverListeners are the listeners the server names on start-up.
var serverListeners = []string{"http", "sip-tls", "sip-wss", "https", "edge", "edge-users", "turn", "turns", "media"}

// startServer runs examples/server on dataDir (created on first run, kept
// across runs), every listener on a loopback port the kernel picks, and
// waits until it has named its 9 listeners. extra flags come last and
// override those (-sip-tls 127.0.0.1:5061, say, to restart on the same
// ports). The server is stopped with SIGINT when the test ends, and must
// exit cleanly.
func startServer(t *testing.T, dataDir string, extra ...string) *serverProcess {
	t.Helper()
	args := []string{"-data", dataDir}
	for _, name := range serverListeners {
		args = append(args, "-"+name, "127.0.0.1:0")
	}
	s := &serverProcess{dataDir: dataDir, listeners: map[string]string{}, passwords: map[string]string{},
		stdout: &lineLog{}, logs: &lineLog{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin.server, append(args, extra...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("server: %v\nlogs:\n%s", err, s.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, line := range s.stdout.Lines() {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "listening" {
				s.listeners[f[1]] = f[2]
			}
		}
		if len(s.listeners) >= len(serverListeners) {
			break
		}
		select {
		case <-s.done:
			t.Fatalf("server exited on start-up: %v\nstdout:\n%s\nlogs:\n%s", s.exitErr, s.stdout.String(), s.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not name its listeners within 30 s\nstdout:\n%s\nlogs:\n%s", s.stdout.String(), s.logs.String())
		}
	}
	// Printed on the first run only, and kept in the data directory.
	data, err := os.ReadFile(filepath.Join(dataDir, "demo-passwords.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) == 5 && f[0] == "demo" && f[1] == "user" && f[3] == "password" {
			s.passwords[f[2]] = f[4]
		}
	}
	if len(s.passwords) == 0 {
		t.Fatalf("no passwords in %s", filepath.Join(dataDir, "demo-passwords.txt"))
	}
	return s
}

// stop sends the server SIGINT and waits for it to exit (at most 15 s,
// then it is killed). It returns an error if it did not exit cleanly;
// calling it again returns the same.
func (s *serverProcess) stop() error {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
			s.stopErr = s.exitErr
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			s.stopErr = errors.New("did not exit within 15 s of SIGINT")
		}
	})
	return s.stopErr
}

// kill ends the server with SIGKILL, a front end dying without a word,
// which the test's clean-up then takes for its stop.
func (s *serverProcess) kill() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
}

// caFile is the CA certificate the server wrote, which clients trust.
func (s *serverProcess) caFile() string { return filepath.Join(s.dataDir, "ca", "ca.crt") }

// password is a demo user's password: user is "alice" or a URI.
func (s *serverProcess) password(user string) string {
	if !strings.Contains(user, "@") {
		user = "sip:" + user + "@example.test"
	}
	return s.passwords[user]
}

// clientArgs are the global flags that point the client at s, signed in
// as user (none for a guest).
func (s *serverProcess) clientArgs(user string) []string {
	args := []string{"-sip", s.listeners["sip-tls"], "-https", s.listeners["https"], "-ca", s.caFile(), "-timeout", "10s"}
	if user != "" {
		args = append(args, "-user", user)
	}
	return args
}

// clientProcess is a parley-client running for a test: its stdin is a
// pipe the test writes commands to.
type clientProcess struct {
	name    string
	srv     *serverProcess
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdout  *lineLog
	stderr  *lineLog
	done    chan struct{} // closed when it has exited
	exitErr error         // how it exited, once done is closed
	next    int           // the first stdout line waitLine has not consumed
}

// clientCommand prepares parley-client with s's global flags for user
// (none: a guest), then args: more global flags (which override the
// defaults, "-sip", edge, say), the command and its arguments. The user's
// password is in PARLEY_PASSWORD.
func clientCommand(ctx context.Context, s *serverProcess, user string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin.client, append(s.clientArgs(user), args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, passwordEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if user != "" {
		cmd.Env = append(cmd.Env, passwordEnv+"="+s.password(user))
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// startClient starts parley-client as clientCommand makes it, its stdin
// a pipe. It is stopped when the test ends (stdin closed, then SIGTERM,
// then killed), if it has not exited.
func startClient(t *testing.T, s *serverProcess, user string, args ...string) *clientProcess {
	t.Helper()
	c := &clientProcess{name: user, srv: s, stdout: &lineLog{}, stderr: &lineLog{}, done: make(chan struct{})}
	if c.name == "" {
		c.name = "guest"
	}
	c.cmd = clientCommand(context.Background(), s, user, args...)
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.exitErr = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.stdin.Close()
		select {
		case <-c.done:
			return
		case <-time.After(2 * time.Second):
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// send writes a command line to the client's stdin.
func (c *clientProcess) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		t.Fatalf("%s: write %q: %v", c.name, line, err)
	}
}

// closeStdin ends the client's stdin.
func (c *clientProcess) closeStdin(t *testing.T) {
	t.Helper()
	if err := c.stdin.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitLine waits up to timeout for a stdout line starting with prefix,
// after those an earlier waitLine returned, and returns it; the lines
// before it are consumed too. It fails the test, showing everything the
// client printed, if none comes.
func (c *clientProcess) waitLine(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines := c.stdout.Lines()
		for i := c.next; i < len(lines); i++ {
			if strings.HasPrefix(lines[i], prefix) {
				c.next = i + 1
				return lines[i]
			}
		}
		exited := false
		select {
		case <-c.done:
			exited = len(c.stdout.Lines()) == len(lines) // nothing more will come
		default:
		}
		if exited || time.Now().After(deadline) {
			why := fmt.Sprintf("within %v", timeout)
			if exited {
				why = fmt.Sprintf("before it exited (%v)", c.exitErr)
			}
			t.Fatalf("%s printed no line %q %s\nstdout:\n%s\nstderr:\n%s", c.name, prefix, why, c.stdout.String(), c.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLines waits up to timeout for stdout lines starting with each of
// prefixes, in any order, after those an earlier wait returned, and
// consumes the lines up to the last of them. Events that race each other
// (an INFO's answer and the NOTIFY it causes) are waited for this way.
func (c *clientProcess) waitLines(t *testing.T, timeout time.Duration, prefixes ...string) {
	t.Helper()
	start, last := c.next, c.next
	for _, p := range prefixes {
		c.next = start
		c.waitLine(t, p, timeout)
		last = max(last, c.next)
	}
	c.next = last
}

// wait waits up to timeout for the client to exit and returns its exit
// status.
func (c *clientProcess) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v\nstdout:\n%s\nstderr:\n%s", c.name, timeout, c.stdout.String(), c.stderr.String())
	}
	return exitCode(t, c.exitErr)
}

// clientResult is what a client run to completion printed, and its exit
// status.
type clientResult struct {
	stdout, stderr string
	code           int
}

// runClient runs parley-client as clientCommand makes it, stdin empty, to
// completion (at most 30 s).
func runClient(t *testing.T, s *serverProcess, user string, args ...string) clientResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := clientCommand(ctx, s, user, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("parley-client %s: still running after 30 s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout.String(), stderr.String())
	}
	return clientResult{stdout: stdout.String(), stderr: stderr.String(), code: exitCode(t, err)}
}

// exitCode is the exit status an exec error reports (0 for none).
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.Exited():
		return exit.ExitCode()
	}
	t.Fatalf("client did not exit by itself: %v", err)
	return -1
}
