package netnstest

import (
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ListenUDP opens a UDP socket in the namespace, from this process: on
// an OS thread moved into the namespace for the time it takes (a
// socket stays in the namespace it was made in). addr is as for
// net.ListenPacket ("udp4").
func (n *Netns) ListenUDP(addr string) (net.PacketConn, error) {
	target, err := os.Open("/var/run/netns/" + n.Name)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	type result struct {
		c   net.PacketConn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, err}
			return
		}
		defer own.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, fmt.Errorf("netnstest: entering %s: %w", n.Name, err)}
			return
		}
		c, err := net.ListenPacket("udp4", addr)
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // back home: the thread may serve others
		} // else the thread stays locked, and ends with this goroutine
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}
