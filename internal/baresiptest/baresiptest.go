// Package baresiptest runs baresip (Debian's baresip-core), a real
// third-party SIP client, signed in to a server under test over TLS, for
// interop tests. Its output is kept for the test to wait on, and it reads
// commands (menu module) on its standard input.
package baresiptest

import (
	"context"
	"crypto/fips140"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Account is who baresip signs in as, and where.
type Account struct {
	User, Domain, Password string
	// Registrar is the server's SIP over TLS address.
	Registrar string
	// CAFile is the CA certificate baresip trusts for the server.
	CAFile string
	// Params are more account parameters (";mediaenc=srtp-mand", say).
	Params string
}

// Baresip is a running baresip.
type Baresip struct {
	Out   *Output // what it prints
	stdin io.WriteCloser
}

// Output collects a process's output while a test reads it.
type Output struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write implements io.Writer.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// WaitFor waits until the output contains text, failing the test after
// within.
func (o *Output) WaitFor(t testing.TB, text string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(o.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v; output:\n%s", text, within, o.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Command types a command on baresip's standard input.
func (b *Baresip) Command(t testing.TB, cmd string) {
	t.Helper()
	if _, err := io.WriteString(b.stdin, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
}

// Start runs baresip signed in as a, with extra config lines (a setting
// given replaces the default one; modules add), and waits for its
// registration. It is stopped when the test ends. Without baresip the
// test is skipped, or fails when CI is set; in FIPS mode it is skipped:
// baresip 1.0 (libre 1.x) knows only Digest MD5, which FIPS mode does not
// offer.
func Start(t testing.TB, a Account, extraConfig ...string) *Baresip {
	t.Helper()
	if fips140.Enabled() {
		t.Skip("baresip 1.0 (libre 1.x) knows only Digest MD5, which FIPS mode does not offer")
	}
	bin, err := exec.LookPath("baresip")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("baresip is not installed; .ci/run must install baresip-core")
		}
		t.Skip("baresip is not installed (Debian: apt-get install baresip-core)")
	}
	conf := t.TempDir()
	port := freePort(t)
	config := []string{
		"poll_method epoll",
		fmt.Sprintf("sip_listen 127.0.0.1:%d", port),
		"sip_cafile " + a.CAFile,
		"net_interface 127.0.0.1",
		"audio_player alsa,null", "audio_alert alsa,null", "audio_source ausine,440",
		"module_path /usr/lib/baresip/modules",
		// stdio prints received messages and reads commands; it needs
		// stdin to be a pipe.
		"module stdio.so", "module_tmp uuid.so", "module_tmp account.so", "module_app menu.so",
	}
	for _, extra := range extraConfig {
		key, _, _ := strings.Cut(extra, " ")
		config = slices.DeleteFunc(config, func(line string) bool { return strings.HasPrefix(line, key+" ") && !strings.HasPrefix(key, "module") })
	}
	write(t, filepath.Join(conf, "config"), strings.Join(append(config, extraConfig...), "\n")+"\n")
	write(t, filepath.Join(conf, "accounts"), fmt.Sprintf("<sip:%s@%s>;auth_pass=%s;regint=600;pubint=600;outbound=\"sip:%s;transport=tls\"%s\n",
		a.User, a.Domain, a.Password, a.Registrar, a.Params))
	write(t, filepath.Join(conf, "contacts"), "")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, bin, "-f", conf, "-t", "50")
	b := &Baresip{Out: &Output{}}
	cmd.Stdout, cmd.Stderr = b.Out, b.Out
	cmd.Dir = conf // a crash's core file stays out of the source tree
	cmd.WaitDelay = 5 * time.Second
	if b.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// baresip may need a second SIGTERM to stop (see shared/interop).
		_ = cmd.Process.Signal(syscall.SIGTERM)
		stop := time.AfterFunc(2*time.Second, func() { _ = cmd.Process.Signal(syscall.SIGTERM) })
		_ = cmd.Wait()
		stop.Stop()
		_ = b.stdin.Close()
		cancel()
	})
	b.Out.WaitFor(t, a.User+"@"+a.Domain+": {0/TLS/v4} 200 OK", 15*time.Second)
	return b
}

// freePort finds P such that UDP and TCP P and TCP P+1 (baresip's TLS
// listener) are free on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := 20000 + rand.IntN(20000)
		var closers []func() error
		ok := true
		for _, l := range []struct {
			network string
			port    int
		}{{"tcp", p}, {"udp", p}, {"tcp", p + 1}} {
			addr := fmt.Sprintf("127.0.0.1:%d", l.port)
			if l.network == "udp" {
				c, err := net.ListenPacket("udp", addr)
				if err != nil {
					ok = false
					break
				}
				closers = append(closers, c.Close)
				continue
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, ln.Close)
		}
		for _, c := range closers {
			_ = c()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free port for baresip")
	return 0
}

func write(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
