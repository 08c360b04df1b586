package store

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The tests' redis-server (Debian redis-server, installed by .ci/run):
// one per test binary, on a free loopback port, without persistence.
var redisSrv struct {
	once sync.Once
	cmd  *exec.Cmd
	url  string
	err  error
}

// redisServer returns the URL of the tests' redis-server, starting it
// the first time. Without redis-server the test is skipped, except in CI.
func redisServer(t *testing.T) string {
	t.Helper()
	redisSrv.once.Do(func() {
		redisSrv.cmd, redisSrv.url, redisSrv.err = startRedisServer(0)
	})
	if redisSrv.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server: %v (.ci/run must install redis-server)", redisSrv.err)
		}
		t.Skipf("redis-server: %v", redisSrv.err)
	}
	return redisSrv.url
}

// startRedisServer starts a redis-server on port (0: a free one) and waits
// until it answers.
func startRedisServer(port int) (*exec.Cmd, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", err
	}
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	url := "redis://127.0.0.1:" + strconv.Itoa(port)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return cmd, url, nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, "", err
		}
	}
}

func stopRedisServer() {
	if redisSrv.cmd != nil {
		_ = redisSrv.cmd.Process.Kill()
		_ = redisSrv.cmd.Wait()
	}
}
