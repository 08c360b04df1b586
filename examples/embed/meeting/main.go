// Command meeting is a meeting service whose admission rule is the
// application's own: users of partner domains on an allow-list skip the
// lobby, one domain is refused before it, and everyone else is decided by
// the meeting's access policy (conference.AccessRule). The Focus serves
// SIP over TLS; the Lobby keeps the invariants no rule lifts.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"log"
	"net"
	"net/http"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/pki"
)

// rule is the application's admission rule.
type rule struct{ partners, refused []string }

func (r rule) Admission(ctx context.Context, m *conference.Meeting, c conference.Candidate) (conference.Admission, error) {
	switch {
	case c.Type == conference.Federated && slices.Contains(r.partners, c.Domain()):
		return conference.Direct, nil
	case slices.Contains(r.refused, c.Domain()):
		return conference.Refused, nil
	}
	return conference.AccessRule{}.Admission(ctx, m, c)
}

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
	log.Fatal(run(ctx, sipLn, crlLn, rule{partners: []string{"partner.test"}, refused: []string{"rival.test"}}, nil))
}

// run serves meetings of example.test (alice may organize them) until ctx
// ends, then drains; ready, if set, is given the CA and the Focus.
func run(ctx context.Context, sipLn, crlLn net.Listener, r rule, ready func(*pki.CA, *conference.Focus)) error {
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
	kp, _ := cert.KeyPair()
	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test"})
	alice := auth.User{URI: "sip:alice@example.test", Enabled: true, MeetingLicense: true}
	_ = alice.SetPassword("alice-pw")
	_ = dir.PutUser(alice)

	meetings := conference.NewMemoryMeetings()
	authn, _ := auth.New(auth.Config{Directory: dir, Realm: "example.test", Conferences: conference.Keys(meetings, nil)})
	defer authn.Close()
	lobby, _ := conference.NewLobby(conference.LobbyConfig{Rule: r, Timeout: 10 * time.Minute})
	tokens, _ := conference.NewTokenIssuer(nil, nil)
	ua, _ := sipgo.NewUA()
	defer ua.Close()
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua)
	focus, err := conference.NewFocus(conference.FocusConfig{Meetings: meetings, Directory: dir, Tokens: tokens, Lobby: lobby,
		JoinURL: "https://meet.example.test", Auth: authn, Client: client, Connections: ua.TransportLayer(),
		Listeners: map[string]string{"TLS": sipLn.Addr().String()}})
	if err != nil {
		return err
	}
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.ACK, sip.BYE, sip.INFO, sip.SUBSCRIBE} {
		srv.OnRequest(m, focus.HandleRequest)
	}
	go srv.ServeTLS(authn.Listener(tls.NewListener(sipLn, pki.ServerTLSConfig(kp, verifier)))) //nolint:errcheck // ends when sipLn closes
	if ready != nil {
		ready(ca, focus)
	}
	<-ctx.Done()
	drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = focus.Shutdown(drain) // BYE to every participant
	_ = sipLn.Close()
	return err
}
