// Package testredis starts real redis-server processes (Debian
// redis-server, installed by .ci/run) for tests: on a loopback port,
// without persistence, or with an append-only file synced on every write
// (StartPersistent) for tests that restart it and expect what it
// acknowledged.
package testredis

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server.
type Server struct {
	URL  string // redis://127.0.0.1:port
	Port int
	cmd  *exec.Cmd
}

// ErrMissing is returned by Start without a redis-server binary.
var ErrMissing = errors.New("testredis: redis-server is not installed (Debian: apt-get install redis-server)")

// Start starts a redis-server on port (0: a free one) and waits until it
// answers.
func Start(port int) (*Server, error) { return StartPersistent(port, "") }

// StartPersistent is Start with the data in dir, an append-only file
// fsynced on every write, as a pool's Redis is run: killed and started
// again on the same dir, it has every write it acknowledged. An empty dir
// keeps nothing.
func StartPersistent(port int, dir string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrMissing
	}
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
	}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--loglevel", "warning"}
	if dir != "" {
		args = append(args, "--dir", dir, "--appendonly", "yes", "--appendfsync", "always")
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{URL: "redis://127.0.0.1:" + strconv.Itoa(port), Port: port, cmd: cmd}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, err
		}
	}
}

// Stop kills the server.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// Run starts a server for the test and stops it when the test ends. A
// test is skipped without redis-server, or fails if CI is set.
func Run(tb testing.TB) *Server {
	tb.Helper()
	s, err := Start(0)
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
