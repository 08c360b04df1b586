package edge_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v2"

	"github.com/parleyuc/parley/edge"
)

// The tenant admin's federation settings: open by default, a domain
// blocked, then federation closed to all but one partner.
func ExampleFederation() {
	f := edge.NewFederation()
	fmt.Println("partner.test:", f.Allowed("partner.test"))
	f.Block("spam.test")
	fmt.Println("spam.test:", f.Allowed("spam.test"))
	f.SetOpen(false)
	f.Allow("partner.test")
	fmt.Println("partner.test:", f.Allowed("partner.test"), "other.test:", f.Allowed("other.test"))
	fmt.Printf("%+v\n", f.Policy())
	// Output:
	// partner.test: true
	// spam.test: false
	// partner.test: true other.test: false
	// {Open:false Allowed:[partner.test] Blocked:[spam.test]}
}

// A relay that checks credentials against the application's own user
// list instead of TURN REST API secrets, and a client allocating a relayed
// address on it with pion/turn's client.
func ExampleEdgeRelay() {
	listener, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	passwords := map[string]string{"carol": "correct horse battery staple"}
	relay, err := edge.NewEdgeRelay(edge.RelayConfig{
		Realm:        "example.test",
		UDP:          []net.PacketConn{listener},
		RelayAddress: net.IPv4(127, 0, 0, 1), // the address clients reach relayed addresses at
		AuthHandler: func(username, realm string, _ net.Addr) ([]byte, bool) {
			pass, ok := passwords[username]
			if !ok {
				return nil, false // the client gets 401
			}
			return edge.LongTermKey(username, realm, pass), true
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	conn, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	client, _ := turn.NewClient(&turn.ClientConfig{TURNServerAddr: listener.LocalAddr().String(), Conn: conn,
		Username: "carol", Password: "correct horse battery staple", Realm: "example.test", LoggerFactory: quiet})
	_ = client.Listen()
	relayed, err := client.Allocate()
	fmt.Println("carol's allocation:", err)
	fmt.Println("active allocations:", relay.Metrics().Allocations)
	_ = relayed.Close() // deletes the allocation
	client.Close()
	_ = conn.Close()

	// Shutdown waits for the allocations to end, up to the context's end.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("shutdown:", relay.Shutdown(ctx))
	// Output:
	// carol's allocation: <nil>
	// active allocations: 1
	// shutdown: <nil>
}
