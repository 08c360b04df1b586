// Package parleytest is Parley's test kit for applications, in the spirit
// of net/http/httptest: in a few lines a test gets a whole Parley stack
// on loopback, built from the public API the way an application builds
// it, and SIP clients that sign in over TLS, publish and watch presence,
// send instant messages, join meetings, wait in the lobby and admit from
// it, and fetch relay credentials.
//
//	func TestMyBot(t *testing.T) {
//		s := parleytest.Start(t, parleytest.Config{})
//		alice := s.Client(t, "alice")
//		if err := alice.SignIn(t.Context()); err != nil {
//			t.Fatal(err)
//		}
//		// ... your code against s.Focus, s.Presence, s.SIPAddr ...
//	}
//
// The stack is a CA (its CRL served over HTTP), a tenant with users whose
// passwords are Stack.Password's, an auth.Authenticator, a
// presence.Registrar, PresencePolicy, Router and PresenceServer, a
// conference.Focus (with its Lobby), an edge.EdgeRelay with
// RelayCredentials, all mounted on one sipgo server over TLS on
// 127.0.0.1. Everything stops when the test ends (t.Cleanup), and the test
// fails if a goroutine the stack started outlives it
// (go.uber.org/goleak), unless Config.SkipLeakCheck is set, as tests that
// run in parallel with others must.
package parleytest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
)

// ServerName is the name the stack's certificate carries; clients verify
// it.
const ServerName = "sip.parleytest.invalid"

// Config adjusts the stack. The zero Config is a tenant example.test with
// users alice, bob and carol and Parley's default policies.
type Config struct {
	// Domain is the tenant's domain. Default "example.test".
	Domain string
	// Users are the user names of the tenant's users (alice for
	// sip:alice@<Domain>), all enabled, licensed for meetings and of one
	// company. Default alice, bob and carol.
	Users []string
	// Lobby is the Focus's Lobby, to test an AdmissionRule of yours.
	// Default: conference.NewLobby's default.
	Lobby *conference.Lobby
	// Visibility, if set, makes the presence visibility rule from the
	// default PresencePolicy (to wrap or replace it).
	Visibility func(*presence.PresencePolicy) presence.VisibilityRule
	// Logger receives every component's logs. Default: discarded.
	Logger *slog.Logger
	// SkipLeakCheck turns off the goroutine-leak check at the end of the
	// test, for tests that run in parallel with others.
	SkipLeakCheck bool
	// OIDC are OpenID Connect providers whose tokens the stack accepts
	// (auth.Config.OIDC). A provider whose Domains name the tenant signs
	// its users in: Digest is then off for them, and clients sign in with
	// ClientConfig.Token (Stack.TokenClient).
	OIDC []auth.OIDCProvider
}

// Stack is a running Parley stack. Its fields are the components, for a
// test to use directly; they are ready when Start returns.
type Stack struct {
	// Domain is the tenant's domain.
	Domain string
	// SIPAddr is the SIP over TLS listener's address (127.0.0.1:port).
	SIPAddr string
	// CA issued the server's certificate; Verifier trusts it and checks
	// its CRL.
	CA       *pki.CA
	Verifier *pki.Verifier
	// Directory holds the tenant and its users: add users with AddUser.
	Directory *auth.MemoryDirectory
	Auth      *auth.Authenticator
	Registrar *presence.Registrar
	Policy    *presence.PresencePolicy
	Router    *presence.Router
	Presence  *presence.PresenceServer
	Focus     *conference.Focus
	// Relay is the TURN relay on 127.0.0.1 (UDP), for holders of the
	// credentials RelayCredentials issues; RelayAddr is its address.
	Relay            *edge.EdgeRelay
	RelayCredentials *edge.RelayCredentials
	RelayAddr        string

	log     *slog.Logger
	closers []func()
}

// Start builds and starts the stack, failing t if it cannot. It stops
// when t ends, and then checks that none of its goroutines outlive it
// (unless Config.SkipLeakCheck).
func Start(t testing.TB, cfg Config) *Stack {
	t.Helper()
	var leaks []goleak.Option
	if !cfg.SkipLeakCheck {
		leaks = append(leaks, goleak.IgnoreCurrent())
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		if !cfg.SkipLeakCheck {
			goleak.VerifyNone(t, leaks...)
		}
	})
	return s
}

// New builds and starts the stack, for code without a testing.TB (an
// Example, a TestMain); Close stops it. Start is New for a test.
func New(cfg Config) (*Stack, error) {
	if cfg.Domain == "" {
		cfg.Domain = "example.test"
	}
	if cfg.Users == nil {
		cfg.Users = []string{"alice", "bob", "carol"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Stack{Domain: cfg.Domain, log: cfg.Logger}
	if err := s.start(cfg); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("parleytest: %w", err)
	}
	for _, u := range cfg.Users {
		if err := s.AddUser(u); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Stack) start(cfg Config) error {
	log := cfg.Logger
	// A CA whose CRL is served over HTTP, and a verifier checking both on
	// every handshake.
	mux := http.NewServeMux()
	web := httptest.NewServer(mux)
	s.defer_(web.Close)
	ca, err := pki.NewCA(pki.CAConfig{CRLDistributionPoints: []string{web.URL + "/ca.crl"}})
	if err != nil {
		return err
	}
	mux.Handle("/ca.crl", ca.CRLHandler())
	s.CA = ca
	crls, err := pki.NewCRLCache(pki.CRLCacheConfig{Logger: log})
	if err != nil {
		return err
	}
	s.defer_(func() { _ = crls.Close() })
	if s.Verifier, err = pki.NewVerifier(pki.VerifierConfig{Roots: ca.CertPool(), CRLs: crls}); err != nil {
		return err
	}
	cert, err := ca.IssueServer(pki.ServerCertRequest{DNSNames: []string{ServerName}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return err
	}
	kp, err := cert.KeyPair()
	if err != nil {
		return err
	}

	// The directory, the Authenticator and the meetings' store.
	s.Directory = auth.NewMemoryDirectory()
	if err := s.Directory.PutTenant(auth.Tenant{Domain: s.Domain, Name: s.Domain}); err != nil {
		return err
	}
	meetings := conference.NewMemoryMeetings()
	if s.Auth, err = auth.New(auth.Config{Directory: s.Directory, Realm: s.Domain, Logger: log,
		Conferences: conference.Keys(meetings, nil), DisableMD5: true, OIDC: cfg.OIDC}); err != nil {
		return err
	}
	s.defer_(func() { _ = s.Auth.Close() })

	// SIP: the application's user agent, server and client.
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("parleytest"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)))
	if err != nil {
		return err
	}
	s.defer_(func() { _ = ua.Close() })
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		return err
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(log))
	if err != nil {
		return err
	}
	s.defer_(func() { _ = client.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.SIPAddr = ln.Addr().String()
	listeners := map[string]string{"TLS": s.SIPAddr}

	// Presence and messaging: the Registrar and the PresenceServer follow
	// the Authenticator's connections and each other by themselves.
	if s.Registrar, err = presence.NewRegistrar(presence.RegistrarConfig{Auth: s.Auth, Logger: log}); err != nil {
		return err
	}
	s.defer_(func() { _ = s.Registrar.Close() })
	if s.Policy, err = presence.NewPresencePolicy(presence.PresencePolicyConfig{}); err != nil {
		return err
	}
	var rule presence.VisibilityRule = s.Policy
	if cfg.Visibility != nil {
		rule = cfg.Visibility(s.Policy)
	}
	if s.Router, err = presence.NewRouter(presence.RouterConfig{Auth: s.Auth, Directory: s.Directory, Locator: s.Registrar,
		Client: client, Policy: rule, Connections: ua.TransportLayer(), Listeners: listeners, Logger: log}); err != nil {
		return err
	}
	s.defer_(func() { _ = s.Router.Close() })
	if s.Presence, err = presence.NewPresenceServer(presence.PresenceServerConfig{Auth: s.Auth, Directory: s.Directory,
		Policy: rule, Registrar: s.Registrar, Client: client, Connections: ua.TransportLayer(), Logger: log}); err != nil {
		return err
	}
	s.defer_(func() { _ = s.Presence.Close() })

	// Meetings: the Focus with its Lobby.
	tokens, err := conference.NewTokenIssuer(nil, nil)
	if err != nil {
		return err
	}
	if s.Focus, err = conference.NewFocus(conference.FocusConfig{Meetings: meetings, Directory: s.Directory, Tokens: tokens,
		JoinURL: "https://" + ServerName, Auth: s.Auth, Client: client, Connections: ua.TransportLayer(),
		Listeners: listeners, Lobby: cfg.Lobby, Logger: log}); err != nil {
		return err
	}
	s.defer_(func() { _ = s.Focus.Close() })

	// The A/V Edge's relay and the credentials for it.
	turn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.defer_(func() { _ = turn.Close() })
	s.RelayAddr = turn.LocalAddr().String()
	secrets := edge.NewSecrets(0, nil)
	if s.Relay, err = edge.NewEdgeRelay(edge.RelayConfig{Realm: s.Domain, Secrets: secrets, UDP: []net.PacketConn{turn},
		RelayAddress: net.IPv4(127, 0, 0, 1), Logger: log}); err != nil {
		return err
	}
	s.defer_(func() { _ = s.Relay.Close() })
	if s.RelayCredentials, err = edge.NewRelayCredentials(edge.RelayCredentialsConfig{Secrets: secrets, Auth: s.Auth,
		URIs: []string{"turn:" + s.RelayAddr + "?transport=udp"}}); err != nil {
		return err
	}

	// The handlers, as an application mounts them: requests for a
	// meeting's focus go to the Focus, the others to presence.
	srv.OnRegister(s.Registrar.HandleRegister)
	srv.OnMessage(s.Focus.Dispatch(s.Router.HandleMessage)) // the meeting's chat goes to the focus
	srv.OnPublish(s.Presence.HandlePublish)
	srv.OnSubscribe(s.Focus.Dispatch(presence.SubscribeHandler(s.Presence.HandleSubscribe, s.Router.HandleSubscribe)))
	srv.OnInvite(s.Focus.Dispatch(s.Router.HandleInvite))
	for _, m := range []sip.RequestMethod{sip.ACK, sip.BYE, sip.INFO, sip.UPDATE, sip.PRACK, sip.REFER, sip.NOTIFY} {
		srv.OnRequest(m, s.Focus.Dispatch(s.Router.HandleInDialog))
	}
	srv.OnRequest(edge.MethodService, s.RelayCredentials.HandleService)

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeTLS(s.Auth.Listener(tls.NewListener(ln, pki.ServerTLSConfig(kp, s.Verifier))))
	}()
	s.defer_(func() { _ = ln.Close(); <-done })
	return nil
}

// defer_ adds a step to Close: last added, first run.
func (s *Stack) defer_(f func()) { s.closers = append(s.closers, f) }

// Close stops everything the stack started, last started first. Clients
// should be closed first.
func (s *Stack) Close() error {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
	return nil
}

// AddUser adds sip:<name>@<Domain> to the tenant: enabled, licensed for
// meetings, of the company "Example Corp", with the password
// Password(name).
func (s *Stack) AddUser(name string) error {
	u := auth.User{URI: s.AOR(name), DisplayName: name, Tenant: s.Domain, Enabled: true, MeetingLicense: true,
		Company: "Example Corp", Credentials: auth.Credentials{HA1SHA256: s.ha1(name, s.Password(name))}}
	if err := s.Directory.PutUser(u); err != nil {
		return fmt.Errorf("parleytest: AddUser %s: %w", name, err)
	}
	return nil
}

// AOR is the address of record of user name: sip:<name>@<Domain>.
func (s *Stack) AOR(name string) string { return "sip:" + name + "@" + s.Domain }

// Password is user name's Digest password: "<name>-secret".
func (s *Stack) Password(name string) string { return name + "-secret" }

// Identity is user name as the Authenticator establishes a signed-in
// user: for the Go API (Focus.Schedule, Focus.Join) in tests.
func (s *Stack) Identity(name string) *auth.Identity {
	return &auth.Identity{URI: s.AOR(name), DisplayName: name, Tenant: s.Domain, Kind: auth.Internal, Method: auth.MethodDigest}
}

// Schedule has user organizer schedule a meeting through the Focus.
func (s *Stack) Schedule(ctx context.Context, organizer string, opts conference.MeetingOptions) (*conference.Meeting, error) {
	return s.Focus.Schedule(ctx, s.Identity(organizer), opts)
}

func (s *Stack) ha1(user, password string) string {
	h := sha256.Sum256([]byte(user + ":" + s.Domain + ":" + password))
	return hex.EncodeToString(h[:])
}
