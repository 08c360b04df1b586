package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parleyuc/parley/bench/mediasynth"
)

// A short smoke run: bench/bridgeserver in its own process, the
// generator's publisher and 2 subscribers for 1 s. Every subscriber must
// connect and receive the packets sent in the window, and the server's
// CPU and RSS must be read. The measurements themselves are
// bench/bridge.sh's.
func TestMediaLoadThroughBridgeServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs bench/bridgeserver")
	}
	bin := filepath.Join(t.TempDir(), "bridgeserver")
	if out, err := exec.Command("go", "build", "-o", bin, "../bridgeserver").CombinedOutput(); err != nil {
		t.Fatalf("go build bench/bridgeserver: %v\n%s", err, out)
	}
	srv := exec.Command(bin, "-http", "127.0.0.1:0", "-media", "127.0.0.1:0")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
	})
	lines := bufio.NewScanner(stdout)
	var addr string
	for lines.Scan() {
		if f := strings.Fields(lines.Text()); len(f) == 5 && f[0] == "listening" && f[1] == "http" {
			addr = f[2]
			break
		}
	}
	if addr == "" {
		t.Fatal("bridgeserver did not say where it listens")
	}
	go func() { // the rest of its output, so that it never blocks writing
		for lines.Scan() {
		}
	}()
	c := config{server: "http://" + addr, subscribers: 2, duration: time.Second, ready: 8 * time.Second,
		drain: time.Second, parallel: 2, serverPID: srv.Process.Pid, load: mediasynth.DefaultLoad}
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
	if r.Connected != 2 || sent < 100 || r.Expected() != 2*sent {
		t.Fatalf("%d of 2 subscribers connected, %d packets sent: want both, about 145", r.Connected, sent)
	}
	// On a shared machine a packet may be late past the drain: 2 % of
	// the window at most.
	if got := r.Audio + r.Video; got < r.Expected()*98/100 || r.LossPct() > 2 {
		t.Fatalf("delivered %d of %d packets", got, r.Expected())
	}
	if r.Audio == 0 || r.Video == 0 {
		t.Fatalf("delivered %d audio and %d video packets: want both tracks", r.Audio, r.Video)
	}
	if r.ServerCPUMs <= 0 || r.ServerRSS <= 0 {
		t.Fatalf("server CPU %v ms, RSS %d bytes: want both read from /proc", r.ServerCPUMs, r.ServerRSS)
	}
}

// Flags out of bounds are refused with the flag named.
func TestConfigValidate(t *testing.T) {
	good := config{server: "http://127.0.0.1:1", subscribers: 1, duration: time.Second, ready: time.Second, parallel: 1, load: mediasynth.DefaultLoad}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mod  func(*config)
		want string
	}{
		"subscribers": {func(c *config) { c.subscribers = 0 }, "-subscribers"},
		"duration":    {func(c *config) { c.duration = time.Hour }, "-duration"},
		"pid":         {func(c *config) { c.serverPID = -1 }, "-server-pid"},
		"parallel":    {func(c *config) { c.parallel = 0 }, "-parallel"},
		"fps":         {func(c *config) { c.load.FPS = 0 }, "fps"},
		"video bytes": {func(c *config) { c.load.VideoBytes = 10 }, "video bytes"},
	} {
		c := good
		tc.mod(&c)
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// pion/webrtc v3.3.6 starts this goroutine for each track it
		// receives, to read the track's first packet; when the peer
		// connection closes while that receiver is still starting, the
		// read it blocks in is never released (as in media's tests).
		goleak.IgnoreAnyFunction("github.com/pion/webrtc/v3.(*PeerConnection).startReceiver.func1"))
}
