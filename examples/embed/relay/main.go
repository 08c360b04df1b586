// Command relay is a TURN relay (the A/V Edge) that checks credentials
// against the application's own accounts instead of Parley's short-lived
// TURN REST credentials: RelayConfig.AuthHandler returns the long-term key
// of the users it knows. The relay's rules hold whatever the check
// accepts: no peer on the host or in internal ranges, a quota per user, an
// allocation bound to its user, a bandwidth limit.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os/signal"
	"syscall"
	"time"

	"github.com/parleyuc/parley/edge"
)

// accounts are the application's own: user name to password.
type accounts map[string]string

// key is the relay's credential check.
func (a accounts) key(username, realm string, src net.Addr) ([]byte, bool) {
	pw, ok := a[username]
	if !ok {
		log.Printf("relay: unknown user %q from %s", username, src)
		return nil, false
	}
	return edge.LongTermKey(username, realm, pw), true
}

func main() {
	addr := flag.String("listen", "127.0.0.1:3478", "TURN over UDP")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	conn, err := net.ListenPacket("udp4", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(run(ctx, conn, accounts{"kiosk-7": "correct horse"}))
}

// run relays for the accounts until ctx ends, then closes every
// allocation.
func run(ctx context.Context, conn net.PacketConn, users accounts) error {
	relay, err := edge.NewEdgeRelay(edge.RelayConfig{
		Realm:        "example.test",
		AuthHandler:  users.key,
		UDP:          []net.PacketConn{conn},
		RelayAddress: conn.LocalAddr().(*net.UDPAddr).IP,
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return relay.Shutdown(drain)
}
