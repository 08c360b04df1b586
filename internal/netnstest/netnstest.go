// Package netnstest makes network namespaces for tests: participants
// that reach this host over links of a given rate and loss, as they would
// over a real network. A Switch is a Linux bridge in the test's own
// namespace with an address of its own (where the servers under test
// listen); each namespace added to it is joined to it by a veth pair and
// has an address on the switch's /24. A link's rate is a token bucket
// (tc tbf) on the veth's sending side, its loss nftables dropping UDP
// datagrams at random (numgen): the kernels this runs on have tbf but no
// netem. Everything is made by the test and removed when it ends.
//
// It needs root, ip (iproute2), tc and nft (nftables). Where they are
// missing the test is skipped with a line saying what is needed, or fails
// when CI is set (CI installs them).
package netnstest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Link is what a namespace's link to the switch does to its traffic:
// Down is toward the namespace, Up from it.
type Link struct {
	Down, Up Shape
}

// Shape is one direction of a link.
type Shape struct {
	// Rate is the link's rate in tc's notation ("300kbit"); "" is the
	// veth's own (unlimited).
	Rate string
	// Queue is the longest a datagram waits in the link's queue before
	// it is dropped, in tc's notation ("150ms"; "" is 150 ms). Only with
	// Rate.
	Queue string
	// Loss is the percentage (0 to 99) of UDP datagrams lost at random.
	Loss int
}

// Switch is a Linux bridge in the test's namespace, with address IP, to
// which namespaces are added.
type Switch struct {
	// Name is the bridge device's name.
	Name string
	// IP is the switch's address: servers in the test's namespace listen
	// on it, and every namespace added reaches it.
	IP string

	key    int
	prefix string // the /24's first three bytes and a dot
	mu     sync.Mutex
	n      int // namespaces added
}

// Netns is a network namespace added to a switch.
type Netns struct {
	// Name is the namespace's name, as ip netns knows it.
	Name string
	// IP is the namespace's address on the switch's /24.
	IP string
}

var switches atomic.Int32

// Require skips t unless network namespaces can be made here (root, ip,
// tc and nft); when the CI environment variable is set, it fails t
// instead, since CI installs them.
func Require(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ip", "tc", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed (iproute2, nftables); .ci/run installs them", tool)
			}
			t.Skipf("%s missing: apt-get install iproute2 nftables, and run as root", tool)
		}
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("network namespaces need root")
		}
		t.Skip("network namespaces need root")
	}
}

// Run runs a command, failing t with its output if it fails.
func Run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// NewSwitch makes a switch, removed when t ends; it calls Require first.
// Its /24 is one of 10.128.0.0/10's, chosen by the process ID, so that
// test processes running at once do not share one.
func NewSwitch(t testing.TB) *Switch {
	t.Helper()
	Require(t)
	key := (os.Getpid()*4 + int(switches.Add(1))) % (64 * 256)
	s := &Switch{Name: fmt.Sprintf("pbr%d", key), key: key,
		prefix: fmt.Sprintf("10.%d.%d.", 128+key/256, key%256)}
	s.IP = s.prefix + "1"
	_ = exec.Command("ip", "link", "del", s.Name).Run() // left by a process that had this ID
	if out, err := exec.Command("ip", "link", "add", s.Name, "type", "bridge").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Linux bridge here (%v: %s)", err, bytes.TrimSpace(out))
		}
		t.Skipf("no Linux bridge here (%v: %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", s.Name).Run() })
	Run(t, "ip", "addr", "add", s.IP+"/24", "dev", s.Name)
	Run(t, "ip", "link", "set", s.Name, "up")
	return s
}

// Add makes a namespace joined to the switch by a link shaped as l,
// removed (with its veth pair and rules) when t ends.
func (s *Switch) Add(t testing.TB, l Link) *Netns {
	t.Helper()
	for _, sh := range []Shape{l.Down, l.Up} {
		if sh.Loss < 0 || sh.Loss > 99 {
			t.Fatalf("netnstest: Shape.Loss %d is not a percentage from 0 to 99", sh.Loss)
		}
	}
	s.mu.Lock()
	s.n++
	i := s.n
	s.mu.Unlock()
	if i > 250 {
		t.Fatal("netnstest: a switch has room for 250 namespaces")
	}
	n := &Netns{Name: fmt.Sprintf("parley-%d-%d", s.key, i), IP: fmt.Sprintf("%s%d", s.prefix, i+1)}
	hostIf, nsIf := fmt.Sprintf("pvh%dx%d", s.key, i), fmt.Sprintf("pvn%dx%d", s.key, i)
	table := fmt.Sprintf("parley_netns_%d_%d", s.key, i)
	_ = exec.Command("ip", "netns", "del", n.Name).Run()
	_ = exec.Command("nft", "delete", "table", "inet", table).Run()
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no network namespace here (%v: %s)", err, bytes.TrimSpace(out))
		}
		t.Skipf("no network namespace here (%v: %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		_ = exec.Command("nft", "delete", "table", "inet", table).Run()
		_ = exec.Command("ip", "netns", "del", n.Name).Run() // and the veth pair with it
	})
	Run(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", n.Name)
	Run(t, "ip", "link", "set", hostIf, "master", s.Name)
	Run(t, "ip", "link", "set", hostIf, "up")
	Run(t, "ip", "-n", n.Name, "addr", "add", n.IP+"/24", "dev", nsIf)
	Run(t, "ip", "-n", n.Name, "link", "set", nsIf, "up")
	Run(t, "ip", "-n", n.Name, "link", "set", "lo", "up")
	shape := func(netns, dev string, sh Shape) {
		if sh.Rate == "" {
			return
		}
		queue := sh.Queue
		if queue == "" {
			queue = "150ms"
		}
		// A burst of three full-sized datagrams: the link sends at its
		// rate, not in bursts of a faster one.
		args := []string{"qdisc", "add", "dev", dev, "root", "tbf", "rate", sh.Rate, "burst", "4500", "latency", queue}
		if netns != "" {
			args = append([]string{"-n", netns}, args...)
		}
		Run(t, "tc", args...)
	}
	shape("", hostIf, l.Down)
	shape(n.Name, nsIf, l.Up)
	if l.Down.Loss > 0 { // what this namespace sends n, lost on the way
		Run(t, "nft", "add", "table", "inet", table)
		Run(t, "nft", "add", "chain", "inet", table, "out", "{ type filter hook output priority 0 ; }")
		Run(t, "nft", "add", "rule", "inet", table, "out", "ip", "daddr", n.IP, "meta", "l4proto", "udp",
			"numgen", "random", "mod", "100", "<", fmt.Sprint(l.Down.Loss), "drop")
	}
	if l.Up.Loss > 0 { // in n's own namespace: its table goes with it
		Run(t, "ip", "netns", "exec", n.Name, "nft", "add", "table", "inet", "parley_up")
		Run(t, "ip", "netns", "exec", n.Name, "nft", "add", "chain", "inet", "parley_up", "out", "{ type filter hook output priority 0 ; }")
		Run(t, "ip", "netns", "exec", n.Name, "nft", "add", "rule", "inet", "parley_up", "out", "meta", "l4proto", "udp",
			"numgen", "random", "mod", "100", "<", fmt.Sprint(l.Up.Loss), "drop")
	}
	return n
}

// Command returns the command name with args to run in the namespace
// (ip netns exec).
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}
