//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package edge

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort lets a TCP allocation's listener and the connections Connect
// makes share the relayed transport address, as RFC 6062 requires of
// those connections' source address.
func reusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
