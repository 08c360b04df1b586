//go:build !(linux && (amd64 || arm64))

package edge

import (
	"errors"
	"net"
	"net/netip"
)

// Batched datagram I/O (recvmmsg, sendmmsg) is only built for 64-bit
// Linux; elsewhere the relay reads and writes a datagram at a time.

type udpReader struct{}

func newUDPReader(*net.UDPConn, int, int, int, int) *udpReader { return nil }

func (*udpReader) read() (int, error) { return 0, errors.New("edge: no batched reads here") }

func (*udpReader) msg(int) ([]byte, int, netip.AddrPort) { return nil, 0, netip.AddrPort{} }

func (*udpReader) largest() int { return 0 }

type udpWriter struct{}

func newUDPWriter(*net.UDPConn, int) *udpWriter { return nil }

func (*udpWriter) add([]byte, netip.AddrPort) {}

func (*udpWriter) flush() {}

func (*udpWriter) queued() int { return 0 }
