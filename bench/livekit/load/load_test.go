package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleyuc/parley/bench/mediasynth"
)

// livekitServer returns the path of the livekit-server bench/livekit/build.sh
// builds ($LIVEKIT_SERVER if set), or skips the test without it.
func livekitServer(t *testing.T) string {
	bin := os.Getenv("LIVEKIT_SERVER")
	if bin == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		bin = filepath.Join(cache, "parley-bench", "livekit-1.13.11", "livekit-server")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no LiveKit server (%v): bash bench/livekit/build.sh builds it", err)
	}
	return bin
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A short smoke run: livekit-server in its own process, the generator's
// publisher and 2 subscribers for 1 s. Every subscriber must connect and
// receive the packets sent in the window. The measurements themselves
// are bench/bridge.sh's.
func TestLoadThroughLiveKit(t *testing.T) {
	bin := livekitServer(t)
	quiet()
	port, tcp := freePort(t), freePort(t)
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpPort := udp.LocalAddr().(*net.UDPAddr).Port
	_ = udp.Close()
	const key, secret = "smoke", "smoke-secret-0123456789-0123456789-0123456789"
	conf := filepath.Join(t.TempDir(), "livekit.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "port: %d\nbind_addresses: [\"127.0.0.1\"]\nrtc:\n  tcp_port: %d\n  udp_port: %d\n  use_external_ip: false\n  node_ip: 127.0.0.1\n  enable_loopback_candidate: true\n  interfaces:\n    includes: [lo]\nkeys:\n  %s: %s\nlogging:\n  level: warn\n",
		port, tcp, udpPort, key, secret), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin, "--config", conf)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
	})
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if res, err := http.Get(url); err == nil {
			_ = res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("livekit-server does not answer")
		}
	}
	c := config{url: fmt.Sprintf("ws://127.0.0.1:%d", port), key: key, secret: secret, room: "smoke", subscribers: 2,
		duration: time.Second, ready: 8 * time.Second, drain: time.Second, parallel: 2, serverPID: srv.Process.Pid, load: mediasynth.DefaultLoad}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Second)
	defer cancel()
	r, err := run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	sent := int(r.Sent.Audio + r.Sent.Video)
	if r.Connected != 2 || sent < 100 {
		t.Fatalf("%d of 2 subscribers connected, %d packets sent: want both, about 145", r.Connected, sent)
	}
	if got := r.Audio + r.Video; got < r.Expected()*98/100 || r.Audio == 0 || r.Video == 0 {
		t.Fatalf("delivered %d audio and %d video packets of %d", r.Audio, r.Video, r.Expected())
	}
	if r.ServerCPUMs <= 0 || r.ServerRSS <= 0 {
		t.Fatalf("server CPU %v ms, RSS %d bytes: want both read from /proc", r.ServerCPUMs, r.ServerRSS)
	}
}
