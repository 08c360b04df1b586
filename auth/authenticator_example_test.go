package auth_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

// An Authenticator in front of a SIP handler: a request without
// credentials is challenged (401, Digest); the client answers with the
// user's password and the handler sees who it is. Over TLS, wrap the
// listener with Listener so a connection that has authenticated keeps
// its identity (and OnConnectionClose hooks hear when it closes); this
// example uses plain UDP on loopback, where every request authenticates.
func ExampleAuthenticator() {
	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test"})
	alice := auth.User{URI: "sip:alice@example.test", DisplayName: "Alice", Enabled: true}
	_ = alice.SetPassword("correct horse battery staple")
	_ = dir.PutUser(alice)
	authn, err := auth.New(auth.Config{Directory: dir, Realm: "example.test"})
	if err != nil {
		panic(err)
	}
	defer authn.Close()

	// The application's SIP server: every OPTIONS is authenticated first.
	ua, _ := sipgo.NewUA()
	defer ua.Close()
	srv, _ := sipgo.NewServer(ua)
	srv.OnOptions(authn.Require(func(id *auth.Identity, req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("X-Signed-In-As", id.URI+" ("+string(id.Method)+", "+id.Kind.String()+")"))
		_ = tx.Respond(res)
	}))
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() { _ = srv.ServeUDP(conn) }()
	defer conn.Close()

	// Alice's client.
	cua, _ := sipgo.NewUA()
	defer cua.Close()
	client, _ := sipgo.NewClient(cua)
	defer client.Close()
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "example.test"})
	from := sip.NewParams()
	from.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(&sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "example.test"}, Params: from})
	req.SetDestination(conn.LocalAddr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := client.Do(ctx, req)
	if err != nil {
		panic(err)
	}
	fmt.Println("without credentials:", res.StatusCode, res.Reason)
	res, err = client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "alice", Password: "correct horse battery staple"})
	if err != nil {
		panic(err)
	}
	fmt.Println("with alice's password:", res.StatusCode, res.GetHeader("X-Signed-In-As").Value())
	// Output:
	// without credentials: 401 Unauthorized
	// with alice's password: 200 sip:alice@example.test (digest, internal)
}
