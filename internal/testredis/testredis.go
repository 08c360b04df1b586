// Package testredis starts real redis-server processes (Debian
// redis-server, installed by .ci/run) for tests: on a loopback port
// without persistence (Start), or on a Unix socket in a directory of the
// test's, with an append-only file synced on every write
// (StartPersistent), for tests that kill it, start it again on the same
// directory and expect what it acknowledged.
package testredis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server.
type Server struct {
	URL  string // redis://127.0.0.1:port, or unix://dir/redis.sock
	Port int    // 0 on a Unix socket
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// ErrMissing is returned by Start without a redis-server binary.
var ErrMissing = errors.New("testredis: redis-server is not installed (Debian: apt-get install redis-server)")

// Start starts a redis-server on a free loopback port, keeping nothing,
// and waits until it answers.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return start(&Server{URL: "redis://127.0.0.1:" + strconv.Itoa(port), Port: port},
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--appendonly", "no")
}

// StartPersistent starts a redis-server with its data in dir, an
// append-only file fsynced on every write, as a pool's Redis is run:
// killed (Stop) and started again on the same dir, it has every write it
// acknowledged, at the same URL. It listens on a Unix socket in dir, not
// on a port: a port freed by the kill could be taken by another test's
// server before this one is started again, and the clients would carry on
// with that one.
func StartPersistent(dir string) (*Server, error) {
	sock := filepath.Join(dir, "redis.sock")
	return start(&Server{URL: "unix://" + sock},
		"--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--dir", dir, "--appendonly", "yes", "--appendfsync", "always")
}

// start runs redis-server with args and waits until it answers, checking
// that the server answering is this process.
func start(s *Server, args ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrMissing
	}
	s.cmd = exec.Command(bin, append([]string{"--save", "", "--daemonize", "no", "--loglevel", "warning"}, args...)...)
	var out strings.Builder
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	opt, err := redis.ParseURL(s.URL)
	if err != nil {
		s.kill(exited)
		return nil, err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			return nil, fmt.Errorf("testredis: redis-server at %s exited: %s", s.URL, strings.TrimSpace(out.String()))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.Info(ctx, "server").Result()
		cancel()
		if err == nil {
			if pid := infoField(info, "process_id"); pid != strconv.Itoa(s.cmd.Process.Pid) {
				s.kill(exited)
				return nil, fmt.Errorf("testredis: another redis-server (pid %s) answers at %s", pid, s.URL)
			}
			s.done = exited
			return s, nil
		}
		if time.Now().After(deadline) {
			s.kill(exited)
			return nil, err
		}
	}
}

// infoField returns a field of INFO's answer.
func infoField(info, name string) string {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), name+":"); ok {
			return v
		}
	}
	return ""
}

func (s *Server) kill(exited chan struct{}) {
	_ = s.cmd.Process.Kill()
	<-exited
}

// Stop kills the server (SIGKILL) and waits until it has exited.
func (s *Server) Stop() { s.kill(s.done) }

// Run starts a server for the test and stops it when the test ends. A
// test is skipped without redis-server, or fails if CI is set.
func Run(tb testing.TB) *Server {
	tb.Helper()
	s, err := Start()
	if err != nil {
		Unavailable(tb, err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Unavailable skips the test for err, or fails it in CI (where .ci/run
// installs redis-server).
func Unavailable(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("redis-server: %v (.ci/run must install redis-server)", err)
	}
	tb.Skipf("redis-server: %v", err)
}
