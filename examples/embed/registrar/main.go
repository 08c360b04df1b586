// Command registrar is a SIP registrar with presence and instant messages
// over TLS, built from Parley's exported packages alone: a CA whose CRL it
// serves, a directory, the Authenticator, the Registrar, the default
// PresencePolicy, a Router and a PresenceServer on a sipgo server.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"log"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
)

func main() {
	sipAddr, crlAddr := flag.String("sip", "127.0.0.1:5061", "SIP over TLS"), flag.String("crl", "127.0.0.1:8081", "CRL over HTTP")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sipLn, err1 := net.Listen("tcp", *sipAddr)
	crlLn, err2 := net.Listen("tcp", *crlAddr)
	if err1 != nil || err2 != nil {
		log.Fatal(err1, err2)
	}
	log.Fatal(run(ctx, sipLn, crlLn, map[string]string{"alice": "alice-pw", "bob": "bob-pw"}, nil))
}

// run serves users of example.test until ctx ends, then drains; ready, if
// set, is given the CA once the server listens.
func run(ctx context.Context, sipLn, crlLn net.Listener, users map[string]string, ready func(*pki.CA)) error {
	ca, err := pki.NewCA(pki.CAConfig{CRLDistributionPoints: []string{"http://" + crlLn.Addr().String() + "/ca.crl"}})
	if err != nil {
		return err
	}
	go http.Serve(crlLn, ca.CRLHandler()) //nolint:errcheck // ends when crlLn closes
	defer crlLn.Close()
	crls, _ := pki.NewCRLCache(pki.CRLCacheConfig{})
	defer crls.Close()
	verifier, _ := pki.NewVerifier(pki.VerifierConfig{Roots: ca.CertPool(), CRLs: crls})
	cert, err := ca.IssueServer(pki.ServerCertRequest{DNSNames: []string{"sip.example.test"}})
	if err != nil {
		return err
	}
	kp, err := cert.KeyPair()
	if err != nil {
		return err
	}
	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test"})
	for name, pw := range users {
		u := auth.User{URI: "sip:" + name + "@example.test", Enabled: true}
		if err := u.SetPassword(pw); err != nil {
			return err
		}
		_ = dir.PutUser(u)
	}
	authn, _ := auth.New(auth.Config{Directory: dir, Realm: "example.test"})
	defer authn.Close()
	ua, _ := sipgo.NewUA()
	defer ua.Close()
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua)
	registrar, _ := presence.NewRegistrar(presence.RegistrarConfig{Auth: authn}) // follows closed connections itself
	defer registrar.Close()
	policy, _ := presence.NewPresencePolicy(presence.PresencePolicyConfig{})
	router, err := presence.NewRouter(presence.RouterConfig{Auth: authn, Directory: dir, Locator: registrar, Client: client,
		Policy: policy, Connections: ua.TransportLayer(), Listeners: map[string]string{"TLS": sipLn.Addr().String()}})
	if err != nil {
		return err
	}
	ps, err := presence.NewPresenceServer(presence.PresenceServerConfig{Auth: authn, Directory: dir, Policy: policy,
		Registrar: registrar, Client: client, Connections: ua.TransportLayer()})
	if err != nil {
		return err
	}
	srv.OnRegister(registrar.HandleRegister)
	srv.OnMessage(router.HandleMessage)
	srv.OnPublish(ps.HandlePublish)
	srv.OnSubscribe(presence.SubscribeHandler(ps.HandleSubscribe, router.HandleSubscribe))
	go srv.ServeTLS(authn.Listener(tls.NewListener(sipLn, pki.ServerTLSConfig(kp, verifier)))) //nolint:errcheck // ends when sipLn closes
	if ready != nil {
		ready(ca)
	}
	<-ctx.Done()
	drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = router.Shutdown(drain)
	err = ps.Shutdown(drain) // watchers get their final NOTIFY
	_ = sipLn.Close()
	return err
}
