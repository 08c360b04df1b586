//go:build linux

package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parleyuc/parley/bench/mediasynth"
	"github.com/parleyuc/parley/internal/netnspeer/synth"
	"github.com/parleyuc/parley/internal/netnstest"
)

// weakPeerEnv, set in a peer process's environment, makes the test
// binary a weak-link peer (runWeakPeer on its standard input and
// output): the test starts itself in a namespace with ip netns exec.
const weakPeerEnv = "PARLEY_LKPEER"

func TestMain(m *testing.M) {
	if os.Getenv(weakPeerEnv) == "1" {
		quiet()
		if err := runWeakPeer(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// envDuration is the duration in the environment variable name, or def.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q is not a positive duration", name, v)
	}
	return d
}

// Issue 28's weak-link scenario against LiveKit: internal/netnspeer's
// TestWeakSubscriberInNetns with livekit-server (bench/livekit/build.sh)
// in its own process in place of Parley's bridge, and the same peers'
// media (internal/netnspeer/synth) sent and decoded by LiveKit's Go SDK:
// a publisher (alice: three-layer VP8 simulcast of about 150, 300 and
// 550 kbit/s, declared to LiveKit as its LOW, MEDIUM and HIGH layers,
// with camera-sized keyframes, and Opus) and three subscribers, each a
// process in a network namespace of its own joined to the server's by a
// veth pair; bob and carol unconstrained, dave behind 300 kbit/s each way
// losing 3 % of the UDP datagrams each way. It prints the same figures
// (bench/weaklink.sh), and the server process's CPU per packet the
// subscribers received and its memory per subscriber. It measures
// LiveKit rather than judging it: it fails only when the scenario did
// not run (a subscriber received no audio or no video).
//
// As root, with PARLEY_WEAK_LINK=1 only. PARLEY_LIVEKIT_LOG writes the
// server's log to that file, at PARLEY_LIVEKIT_LOG_LEVEL (warn).
func TestWeakSubscriberOnLiveKit(t *testing.T) {
	if os.Getenv("PARLEY_WEAK_LINK") == "" {
		t.Skip("measures frame rates: run it with PARLEY_WEAK_LINK=1 (as root, with iproute2 and nftables), as bench/weaklink.sh does")
	}
	bin := livekitServer(t)
	stalls := synth.NewStallMeter()
	defer stalls.Close()
	sw := netnstest.NewSwitch(t)
	wide := netnstest.Link{}
	weak := netnstest.Shape{Rate: "300kbit", Loss: 3}
	warmup := envDuration(t, "PARLEY_NETNS_WARMUP", 8*time.Second)
	window := envDuration(t, "PARLEY_NETNS_WINDOW", 10*time.Second)
	srv := startLiveKit(t, bin, sw)
	idle := rss(t, srv.pid)

	base := weakConfig{URL: srv.url, APIKey: srv.key, APISecret: srv.secret, Room: "weaklink"}
	pubCfg := base
	pubCfg.Role, pubCfg.Identity = rolePublisher, "alice"
	pubCfg.LayerBytes = [synth.Layers]int{270, 600, 1100}
	pubCfg.KeyframeBytes = [synth.Layers]int{20 * 2 * 270, 20 * 2 * 600, 20 * 2 * 1100}
	pubCfg.AudioBytes = 60
	alice := startWeakPeer(t, sw.Add(t, wide), pubCfg)
	time.Sleep(time.Second)
	withPublisher := rss(t, srv.pid)
	sub := func(name string) weakConfig { c := base; c.Role, c.Identity = roleSubscriber, name; return c }
	subs := []*weakPeer{
		startWeakPeer(t, sw.Add(t, wide), sub("bob")),
		startWeakPeer(t, sw.Add(t, wide), sub("carol")),
		startWeakPeer(t, sw.Add(t, netnstest.Link{Down: weak, Up: weak}), sub("dave")),
	}

	time.Sleep(warmup)
	proc := mediasynth.Proc(srv.pid)
	cpu0, err := proc.CPU()
	if err != nil {
		t.Fatal(err)
	}
	var peak int64
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		peak = max(peak, rss(t, srv.pid))
	}
	cpu1, err := proc.CPU()
	if err != nil {
		t.Fatal(err)
	}
	sent := alice.report(t, window)
	serverStall := stalls.Longest(time.Now().Add(-window))
	t.Logf("figures: alice sent %.1f frames/s of each layer, %d audio packets; stalls: alice %d ms, test process %v",
		sent.FPS, sent.AudioPackets, sent.LongestStallMS, serverStall.Round(time.Millisecond))
	forwarded := 0
	for _, p := range subs {
		r := p.report(t, window)
		forwarded += r.VideoPackets + r.AudioPackets
		t.Logf("figures: %-5s %s", p.name, &r)
		if len(r.FreezesAt) > 0 {
			t.Logf("figures: %-5s freezes (ms into the window, length): %v", p.name, r.FreezesAt)
		}
		if r.AudioPackets == 0 || r.VideoPackets == 0 {
			t.Errorf("%s received %d audio and %d video packets: the scenario did not run", p.name, r.AudioPackets, r.VideoPackets)
		}
	}
	t.Log("figures: " + synth.ServerFigures("livekit-server", cpu1-cpu0, window, forwarded, idle, withPublisher, peak, len(subs)))
}

// liveKit is a livekit-server process listening on a switch's address.
type liveKit struct {
	pid              int
	url, key, secret string
}

// startLiveKit starts livekit-server as bench/bridge.sh does (its own
// config: an API key, logging at warn, its media on one UDP port, no
// TURN; everything else its defaults, congestion control included), on
// the switch's address and interface, with its send-side downlink
// estimate unless PARLEY_LIVEKIT_BWE=remb; stopped when t ends.
func startLiveKit(t *testing.T, bin string, sw *netnstest.Switch) liveKit {
	t.Helper()
	free := func(network string) int {
		if network == "udp4" {
			c, err := net.ListenPacket(network, net.JoinHostPort(sw.IP, "0"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			return c.LocalAddr().(*net.UDPAddr).Port
		}
		l, err := net.Listen(network, net.JoinHostPort(sw.IP, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	port, tcp, udp := free("tcp4"), free("tcp4"), free("udp4")
	lk := liveKit{key: "weak", secret: "weak-secret-0123456789-0123456789-0123456789"}
	// LiveKit's default downlink estimate is the subscriber's own (REMB
	// on abs-send-time), which browsers send and pion does not: LiveKit
	// then has none for a pion subscriber and sends it the high layer
	// whatever its link. Its send-side estimate (TWCC feedback, which the
	// Go SDK's subscriber sends, as ours does) is what it is measured
	// with unless PARLEY_LIVEKIT_BWE=remb.
	var bwe string
	switch v := os.Getenv("PARLEY_LIVEKIT_BWE"); v {
	case "", "send-side":
		bwe = "  congestion_control:\n    enabled: true\n    use_send_side_bwe: true\n"
	case "remb":
	default:
		t.Fatalf("PARLEY_LIVEKIT_BWE=%q: want send-side or remb", v)
	}
	conf := filepath.Join(t.TempDir(), "livekit.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "port: %d\nbind_addresses: [%q]\nrtc:\n  tcp_port: %d\n  udp_port: %d\n  use_external_ip: false\n  node_ip: %s\n  interfaces:\n    includes: [%s]\n%skeys:\n  %s: %s\nlogging:\n  level: %s\n",
		port, sw.IP, tcp, udp, sw.IP, sw.Name, bwe, lk.key, lk.secret, cmp.Or(os.Getenv("PARLEY_LIVEKIT_LOG_LEVEL"), "warn")), 0o600); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, "--config", conf)
	cmd.Stdout, cmd.Stderr = &log, &log
	if path := os.Getenv("PARLEY_LIVEKIT_LOG"); path != "" { // its log, whole, for a diagnosis
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("livekit-server's log:\n%s", log.String())
		}
	})
	lk.pid, lk.url = cmd.Process.Pid, fmt.Sprintf("ws://%s:%d", sw.IP, port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if res, err := http.Get(fmt.Sprintf("http://%s:%d/", sw.IP, port)); err == nil {
			_ = res.Body.Close()
			return lk
		}
		if time.Now().After(deadline) {
			t.Fatal("livekit-server does not answer")
		}
	}
}

func rss(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := mediasynth.Proc(pid).RSS()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// weakPeer is a weak-link peer process in a namespace.
type weakPeer struct {
	name    string
	in      io.WriteCloser
	reports chan synth.Report
	exited  chan struct{} // closed once its output ends

	errMu sync.Mutex
	err   string
}

// startWeakPeer starts this test binary as a peer in ns, configured as
// cfg, and waits until it has joined; it ends when t does.
func startWeakPeer(t *testing.T, ns *netnstest.Netns, cfg weakConfig) *weakPeer {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &weakPeer{name: cfg.Identity, reports: make(chan synth.Report, 1), exited: make(chan struct{})}
	cmd := ns.Command(self)
	cmd.Env = append(os.Environ(), weakPeerEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if p.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	joined := make(chan struct{})
	go func() { // ends with the process's output
		defer close(p.exited)
		lines := bufio.NewScanner(out)
		lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for lines.Scan() {
			var m weakMessage
			if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
				p.setErr(fmt.Sprintf("bad output %q: %v", lines.Text(), err))
				continue
			}
			switch {
			case m.Joined:
				close(joined)
			case m.Report != nil:
				p.reports <- *m.Report
			case m.Error != "":
				p.setErr(m.Error)
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		_ = p.in.Close() // the peer ends
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		_ = cmd.Wait()
		if e := p.getErr(); e != "" {
			t.Errorf("%s: %s\n%s", p.name, e, stderr.String())
		}
	})
	if err := p.send(weakMessage{Config: &cfg}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-joined:
	case <-p.exited:
		t.Fatalf("%s ended before it joined: %s", p.name, p.getErr())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not join in 30 s", p.name)
	}
	return p
}

func (p *weakPeer) send(m weakMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = p.in.Write(append(b, '\n'))
	return err
}

func (p *weakPeer) setErr(e string) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err == "" {
		p.err = e
	}
}

func (p *weakPeer) getErr() string {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// report asks the peer what it sent or received over the last window.
func (p *weakPeer) report(t *testing.T, window time.Duration) synth.Report {
	t.Helper()
	if err := p.send(weakMessage{ReportWindow: int(window / time.Millisecond)}); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	select {
	case r := <-p.reports:
		return r
	case <-p.exited:
		t.Fatalf("%s ended: %s", p.name, p.getErr())
	case <-time.After(10 * time.Second):
		t.Fatalf("%s sent no report in 10 s", p.name)
	}
	return synth.Report{}
}
