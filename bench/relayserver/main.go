// Command relayserver runs Parley's TURN relay (edge.EdgeRelay) alone in
// its own process, for benchmarks beside other relays (bench/relay.sh):
// one UDP listener socket per core (SO_REUSEPORT, edge.ListenUDPShared),
// one fixed user with a long-term credential (as
// coturn's -u user:pass --lt-cred-mech), loopback peers allowed, the
// bandwidth limit raised out of the way and every other guard on (peer
// filter, allocation quota, Allocate replay check, 5-tuple binding,
// message integrity).
//
// The reference server (examples/server) would serve the same relay, but
// with its SIP, HTTP and media listeners, a data directory and credentials
// issued to signed-in users around it: this keeps the process to the
// relay, so that its CPU is the relay's.
//
//	relayserver -listen 127.0.0.1:3478 -realm bench -user load -password secret [-sockets N] [-cpuprofile FILE]
//
// It prints "listening udp ADDRESS" once it serves, and stops on SIGINT
// or SIGTERM (writing the CPU profile then).
package main

import (
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/parleyuc/parley/edge"
)

// Relay settings for a benchmark on one machine.
const (
	socketBuffer = 4 << 20       // the listener's buffers (capped by net.core.rmem_max)
	bandwidth    = 1 << 30       // bytes per second per allocation: out of the way
	portMin      = 49152         // relay ports
	portMax      = portMin + 999 //
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3478", "the UDP `address` to serve TURN on")
	realm := flag.String("realm", "bench", "the TURN `realm`")
	user := flag.String("user", "load", "the user `name` allowed")
	password := flag.String("password", "", "the user's `password` (required)")
	quota := flag.Int("quota", 64, "allocations per user")
	sockets := flag.Int("sockets", runtime.NumCPU(), "listener `sockets` sharing the address (SO_REUSEPORT)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to `file` from start to stop")
	flag.Parse()
	if err := run(*listen, *realm, *user, *password, *quota, *sockets, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, "relayserver:", err)
		os.Exit(1)
	}
}

func run(listen, realm, user, password string, quota, sockets int, cpuProfile string) error {
	if password == "" {
		return errors.New("-password is required")
	}
	if quota < 1 {
		return fmt.Errorf("-quota %d: must be at least 1", quota)
	}
	if sockets < 1 {
		return fmt.Errorf("-sockets %d: must be at least 1", sockets)
	}
	pcs, err := edge.ListenUDPShared("udp4", listen, sockets, socketBuffer, socketBuffer)
	if err != nil {
		return err
	}
	key := edge.LongTermKey(user, realm, password)
	r, err := edge.NewEdgeRelay(edge.RelayConfig{
		Realm: realm,
		AuthHandler: func(username, _ string, _ net.Addr) ([]byte, bool) {
			return key, subtle.ConstantTimeCompare([]byte(username), []byte(user)) == 1
		},
		UDP:                pcs,
		RelayAddress:       net.IPv4(127, 0, 0, 1),
		PortMin:            portMin,
		PortMax:            portMax,
		AllocationsPerUser: quota,
		Bandwidth:          bandwidth,
		AllowPeers:         []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Logger:             slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		for _, pc := range pcs {
			_ = pc.Close()
		}
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			_ = r.Close()
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = r.Close()
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Println("listening udp", pcs[0].LocalAddr(), "sockets", len(pcs))
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	m := r.Metrics()
	fmt.Printf("relayed %d bytes to peers, %d from peers; %d allocations in all, %d auth failures, %d peers refused, %d over limit\n",
		m.BytesToPeers, m.BytesFromPeers, m.AllocationsTotal, m.AuthFailures, m.PeersRefused, m.PacketsOverLimit)
	return r.Close()
}
