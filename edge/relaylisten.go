package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
)

// ListenUDPShared opens n UDP sockets on one address, sharing it with
// SO_REUSEPORT (Linux), for RelayConfig.UDP: the kernel
// spreads clients over them (each client's datagrams always reach the
// same socket, by a hash of its address), so that n goroutines read and
// relay at once, one per core (n = runtime.NumCPU(), as coturn runs one
// relay thread per core). network is "udp", "udp4" or "udp6"; address
// may leave the port 0 for one chosen by the system, which the other
// sockets then share. readBuffer and writeBuffer, if above 0, set the
// sockets' buffer sizes (capped by the system's maximum). Elsewhere than
// on Linux, n must be 1 (other systems' SO_REUSEPORT does not spread
// unicast datagrams).
func ListenUDPShared(network, address string, n, readBuffer, writeBuffer int) ([]net.PacketConn, error) {
	if n < 1 {
		return nil, fmt.Errorf("edge: ListenUDPShared: n %d: need at least 1 socket", n)
	}
	if n > 1 && runtime.GOOS != "linux" {
		return nil, errors.New("edge: ListenUDPShared: n > 1 needs Linux's SO_REUSEPORT, which spreads datagrams over the sockets")
	}
	lc := net.ListenConfig{Control: reusePort}
	var out []net.PacketConn
	fail := func(err error) ([]net.PacketConn, error) {
		for _, pc := range out {
			_ = pc.Close()
		}
		return nil, fmt.Errorf("edge: ListenUDPShared %s %s: %w", network, address, err)
	}
	for range n {
		pc, err := lc.ListenPacket(context.Background(), network, address)
		if err != nil {
			return fail(err)
		}
		out = append(out, pc)
		address = pc.LocalAddr().String() // the others share the port chosen
		u, ok := pc.(*net.UDPConn)
		if !ok {
			continue
		}
		if readBuffer > 0 {
			if err := u.SetReadBuffer(readBuffer); err != nil {
				return fail(err)
			}
		}
		if writeBuffer > 0 {
			if err := u.SetWriteBuffer(writeBuffer); err != nil {
				return fail(err)
			}
		}
	}
	return out, nil
}
