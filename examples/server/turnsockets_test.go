package main

import (
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// udpSocketsOn counts the UDP sockets bound to port, from
// /proc/net/udp (local addresses are hex "ADDR:PORT").
func udpSocketsOn(t *testing.T, port int) int {
	t.Helper()
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		t.Skipf("no /proc/net/udp: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		_, hexPort, _ := strings.Cut(f[1], ":")
		if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port {
			n++
		}
	}
	return n
}

// TestTURNListensOnEveryCore: on Linux the reference server's TURN
// listener is one UDP socket per core sharing the port (SO_REUSEPORT,
// edge.ListenUDPShared), as coturn runs a relay thread per core, and
// clients that the kernel spreads over them all allocate and relay.
func TestTURNListensOnEveryCore(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_REUSEPORT spreads datagrams over sockets on Linux only")
	}
	s := startServer(t, t.TempDir())
	_, portStr, _ := net.SplitHostPort(s.listeners["turn"])
	port, _ := strconv.Atoi(portStr)
	if n := udpSocketsOn(t, port); n != runtime.NumCPU() {
		t.Fatalf("%d UDP sockets on the TURN port %d; want one per core, %d", n, port, runtime.NumCPU())
	}
	cred := relayCredentials(t, s, "alice", s.passwords["sip:alice@example.test"])
	for i := range 8 { // from 8 source ports: the kernel's hash spreads them
		if _, relayed, err := turnAllocate(t, s, cred); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		} else if relayed.LocalAddr() == nil {
			t.Fatalf("allocation %d has no relayed address", i)
		}
	}
}
