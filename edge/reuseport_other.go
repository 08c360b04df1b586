//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package edge

import "syscall"

// reusePort does nothing here: Connect's connections cannot share the
// relayed transport address, and fail (447).
func reusePort(_, _ string, _ syscall.RawConn) error { return nil }
