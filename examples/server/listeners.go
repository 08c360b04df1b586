package main

// The server's listeners, opened before anything else: a port in use
// fails before anything is written, and what is advertised (the CRL
// distribution point, the certificates' addresses) names the addresses
// really bound.

import (
	"fmt"
	"io"
	"net"
	"runtime"

	"github.com/parleyuc/parley/edge"
)

// listeners are the server's sockets, one per flag.
type listeners struct {
	http, sip, wss, https, edge, edgeUsers, turns net.Listener
	turnUDP                                       []net.PacketConn // one per core, sharing the port (turnSockets)
	turnTCP                                       net.Listener     // on turnUDP's port
	media                                         net.PacketConn
	pool                                          net.Listener // nil: not in a pool
	opened                                        []io.Closer
}

// openListeners listens on every address of cfg, or closes what it
// opened and returns an error naming the flag.
func openListeners(cfg *config) (_ *listeners, err error) {
	l := &listeners{}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	for _, tcp := range []struct {
		flag, addr string
		ln         *net.Listener
	}{
		{"-http", cfg.HTTP, &l.http}, {"-sip-tls", cfg.SIPTLS, &l.sip}, {"-sip-wss", cfg.SIPWSS, &l.wss},
		{"-https", cfg.HTTPS, &l.https}, {"-edge", cfg.Edge, &l.edge}, {"-edge-users", cfg.EdgeUsers, &l.edgeUsers},
		{"-turns", cfg.TURNS, &l.turns},
	} {
		if *tcp.ln, err = net.Listen("tcp", tcp.addr); err != nil {
			return nil, fmt.Errorf("%s %s: %w", tcp.flag, tcp.addr, err)
		}
		l.opened = append(l.opened, *tcp.ln)
	}
	if l.turnUDP, l.turnTCP, err = listenUDPAndTCP(cfg.TURN, turnSockets()); err != nil {
		return nil, fmt.Errorf("-turn %s: %w", cfg.TURN, err)
	}
	for _, pc := range l.turnUDP {
		l.opened = append(l.opened, pc)
	}
	l.opened = append(l.opened, l.turnTCP)
	if l.media, err = net.ListenPacket("udp", cfg.Media); err != nil {
		return nil, fmt.Errorf("-media %s: %w", cfg.Media, err)
	}
	l.opened = append(l.opened, l.media)
	if cfg.Pool != "" {
		if l.pool, err = net.Listen("tcp", cfg.Pool); err != nil {
			return nil, fmt.Errorf("-pool %s: %w", cfg.Pool, err)
		}
		l.opened = append(l.opened, l.pool)
	}
	return l, nil
}

// close closes every listener opened.
func (l *listeners) close() {
	for _, c := range l.opened {
		_ = c.Close()
	}
}

// turnSockets is how many UDP sockets the TURN listener shares its port
// over: one per core on Linux, whose SO_REUSEPORT spreads the clients
// over them (edge.ListenUDPShared), so that as many goroutines relay at
// once; one elsewhere.
func turnSockets() int {
	if runtime.GOOS != "linux" {
		return 1
	}
	return runtime.NumCPU()
}

// listenUDPAndTCP listens on addr over UDP, with n sockets sharing the
// port, and over TCP, on the same port. With port 0 the kernel picks the
// UDP port, which TCP may have in use: then it tries another.
func listenUDPAndTCP(addr string, n int) ([]net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for try := 0; ; try++ {
		pcs, err := edge.ListenUDPShared("udp", addr, n, 0, 0)
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pcs[0].LocalAddr().String())
		if err == nil {
			return pcs, ln, nil
		}
		for _, pc := range pcs {
			_ = pc.Close()
		}
		if port != "0" || try == 10 {
			return nil, nil, fmt.Errorf("TCP: %w", err)
		}
	}
}
