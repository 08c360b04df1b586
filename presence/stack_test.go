package presence_test

// The stack an application builds from the public API: a CA, a directory,
// an Authenticator, a Registrar, a PresencePolicy (or the application's
// own VisibilityRule), a Router and a PresenceServer on a sipgo server
// over TLS on loopback; and SIP devices that sign in and watch. The
// examples and TestPresenceFollowsSignInSignOutAndDroppedConnections use
// it; nothing here reaches into the package.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
)

const domain = "example.test"

// stack is a registrar with presence and messaging, as an application
// assembles it.
type stack struct {
	addr      string
	verifier  *pki.Verifier
	directory *auth.MemoryDirectory
	authn     *auth.Authenticator
	registrar *presence.Registrar
	policy    *presence.PresencePolicy
	presence  *presence.PresenceServer
	router    *presence.Router

	closers []func()
}

// stackConfig adjusts the stack: rule, if set, makes the visibility rule
// from the default policy (to wrap or replace it).
type stackConfig struct {
	rule func(*presence.PresencePolicy) presence.VisibilityRule
	// unwrapped serves the TLS listener without Authenticator.Listener,
	// the mistake the Registrar warns of; logger receives the Registrar's
	// logs.
	unwrapped bool
	logger    *slog.Logger
}

// startStack builds the stack; users get the password "<name>-secret".
func startStack(cfg stackConfig, users ...string) (_ *stack, err error) {
	s := &stack{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// A CA, its CRL served over HTTP, and a verifier checking both.
	mux := http.NewServeMux()
	web := httptest.NewServer(mux)
	s.closers = append(s.closers, web.Close)
	ca, err := pki.NewCA(pki.CAConfig{CRLDistributionPoints: []string{web.URL + "/ca.crl"}})
	if err != nil {
		return nil, err
	}
	mux.Handle("/ca.crl", ca.CRLHandler())
	crls, err := pki.NewCRLCache(pki.CRLCacheConfig{})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = crls.Close() })
	if s.verifier, err = pki.NewVerifier(pki.VerifierConfig{Roots: ca.CertPool(), CRLs: crls}); err != nil {
		return nil, err
	}
	cert, err := ca.IssueServer(pki.ServerCertRequest{DNSNames: []string{"sip." + domain}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return nil, err
	}
	tc, err := cert.TLSCertificate()
	if err != nil {
		return nil, err
	}
	kp, err := pki.NewKeyPair(tc)
	if err != nil {
		return nil, err
	}

	// The directory and the Authenticator.
	s.directory = auth.NewMemoryDirectory()
	if err := s.directory.PutTenant(auth.Tenant{Domain: domain}); err != nil {
		return nil, err
	}
	for _, name := range users {
		u := auth.User{URI: "sip:" + name + "@" + domain, DisplayName: name, Enabled: true,
			Credentials: auth.Credentials{HA1SHA256: ha1(name, name+"-secret")}}
		if err := s.directory.PutUser(u); err != nil {
			return nil, err
		}
	}
	if s.authn, err = auth.New(auth.Config{Directory: s.directory, Realm: domain}); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.authn.Close() })

	// SIP: one user agent, its server and its client (NOTIFYs and
	// forwarded requests go out over the devices' own connections).
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("parley-stack"))
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = ua.Close() })
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		return nil, err
	}
	client, err := sipgo.NewClient(ua)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = client.Close() })

	// The Registrar follows the Authenticator's connections by itself;
	// the PresenceServer follows the Registrar and the policy.
	if s.registrar, err = presence.NewRegistrar(presence.RegistrarConfig{Auth: s.authn, Logger: cfg.logger}); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.registrar.Close() })
	if s.policy, err = presence.NewPresencePolicy(presence.PresencePolicyConfig{}); err != nil {
		return nil, err
	}
	var rule presence.VisibilityRule = s.policy
	if cfg.rule != nil {
		rule = cfg.rule(s.policy)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.addr = ln.Addr().String()
	if s.router, err = presence.NewRouter(presence.RouterConfig{Auth: s.authn, Directory: s.directory, Locator: s.registrar,
		Client: client, Policy: rule, Connections: ua.TransportLayer(), Listeners: map[string]string{"TLS": s.addr}}); err != nil {
		_ = ln.Close()
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.router.Close() })
	if s.presence, err = presence.NewPresenceServer(presence.PresenceServerConfig{Auth: s.authn, Directory: s.directory,
		Policy: rule, Registrar: s.registrar, Client: client, Connections: ua.TransportLayer()}); err != nil {
		_ = ln.Close()
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.presence.Close() })
	srv.OnRegister(s.registrar.HandleRegister)
	srv.OnMessage(s.router.HandleMessage)
	srv.OnPublish(s.presence.HandlePublish)
	srv.OnSubscribe(presence.SubscribeHandler(s.presence.HandleSubscribe, s.router.HandleSubscribe))

	done := make(chan struct{})
	tlsLn := tls.NewListener(ln, pki.ServerTLSConfig(kp, s.verifier))
	if !cfg.unwrapped {
		tlsLn = s.authn.Listener(tlsLn)
	}
	go func() {
		defer close(done)
		_ = srv.ServeTLS(tlsLn)
	}()
	s.closers = append(s.closers, func() { _ = ln.Close(); <-done })
	return s, nil
}

// Close stops everything the stack started, last started first.
func (s *stack) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

func ha1(user, password string) string {
	h := sha256.Sum256([]byte(user + ":" + domain + ":" + password))
	return hex.EncodeToString(h[:])
}

// device is a SIP client of one user with its own TLS connection to the
// stack: it registers, subscribes, and collects the NOTIFYs it receives.
type device struct {
	s      *stack
	user   string
	ua     *sipgo.UserAgent
	client *sipgo.Client
	once   sync.Once

	contact  string
	notifies chan *sip.Request
	messages chan *sip.Request
	// held makes the device wait with its answers to NOTIFY and MESSAGE
	// until release (or hangUp): a device that does not answer.
	held    atomic.Bool
	release chan struct{}
	relOnce sync.Once
}

// releaseAnswers lets the device answer what it holds, and all later.
func (d *device) releaseAnswers() { d.relOnce.Do(func() { close(d.release) }) }

func (s *stack) device(user string) (*device, error) {
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("device-"+user),
		sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(nil, s.verifier, "sip."+domain)))
	if err != nil {
		return nil, err
	}
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua)
	d := &device{s: s, user: user, ua: ua, client: client, notifies: make(chan *sip.Request, 32), messages: make(chan *sip.Request, 32),
		release: make(chan struct{}),
		contact: "<sip:" + user + "-" + sip.GenerateTagN(6) + "@127.0.0.1;transport=tls>"}
	answer := func(ch chan *sip.Request) func(*sip.Request, sip.ServerTransaction) {
		return func(req *sip.Request, tx sip.ServerTransaction) {
			ch <- req
			if d.held.Load() {
				<-d.release
			}
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		}
	}
	srv.OnNotify(answer(d.notifies))
	srv.OnMessage(answer(d.messages))
	return d, nil
}

func (d *device) aor() string { return "sip:" + d.user + "@" + domain }

// hangUp drops the device's connection, as a crashed device or a lost
// network does: no REGISTER, no unsubscribe.
func (d *device) hangUp() {
	d.releaseAnswers()
	d.once.Do(func() {
		_ = d.client.Close()
		_ = d.ua.Close()
	})
}

// do sends req over the device's connection and answers a Digest
// challenge with the user's password.
func (d *device) do(req *sip.Request) (*sip.Response, error) {
	req.SetTransport("TLS")
	req.SetDestination(d.s.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := d.client.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = d.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: d.user, Password: d.user + "-secret"})
	}
	if err == nil && res.StatusCode >= 300 {
		err = fmt.Errorf("%s: %d %s", req.Method, res.StatusCode, res.Reason)
	}
	return res, err
}

func (d *device) request(method sip.RequestMethod, target string, headers ...sip.Header) *sip.Request {
	var uri, from sip.Uri
	_ = sip.ParseUri(target, &uri)
	_ = sip.ParseUri(d.aor(), &from)
	req := sip.NewRequest(method, uri)
	params := sip.NewParams()
	params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(&sip.FromHeader{Address: from, Params: params})
	req.AppendHeader(&sip.ToHeader{Address: uri})
	for _, h := range headers {
		req.AppendHeader(h)
	}
	return req
}

// register signs the device in for expires seconds, or out with 0.
func (d *device) register(expires int) error {
	req := d.request(sip.REGISTER, d.aor(), sip.NewHeader("Contact", d.contact), sip.NewHeader("Expires", strconv.Itoa(expires)))
	req.Recipient = sip.Uri{Scheme: "sip", Host: domain}
	_, err := d.do(req)
	return err
}

// message sends text to a user.
func (d *device) message(to, text string) error {
	req := d.request(sip.MESSAGE, to, sip.NewHeader("Content-Type", "text/plain"))
	req.SetBody([]byte(text))
	_, err := d.do(req)
	return err
}

// watch subscribes to presentity's presence for ten minutes.
func (d *device) watch(presentity string) error {
	_, err := d.do(d.request(sip.SUBSCRIBE, presentity, sip.NewHeader("Contact", d.contact),
		sip.NewHeader("Event", "presence"), sip.NewHeader("Accept", "application/pidf+xml"), sip.NewHeader("Expires", "600")))
	return err
}

// next waits for the next NOTIFY and returns the availability it carries
// and its Subscription-State.
func (d *device) next() (presence.Availability, string, error) {
	doc, state, err := d.nextDoc()
	if doc == nil {
		return "", state, err
	}
	return doc.Availability, state, err
}

// nextDoc waits for the next NOTIFY and returns its document (nil if it
// has none) and its Subscription-State.
func (d *device) nextDoc() (*presence.Presence, string, error) {
	select {
	case n := <-d.notifies:
		state := ""
		if h := n.GetHeader("Subscription-State"); h != nil {
			state = h.Value()
		}
		if len(n.Body()) == 0 {
			return nil, state, nil
		}
		doc, err := presence.ParsePIDF(n.Body())
		return doc, state, err
	case <-time.After(5 * time.Second):
		return nil, "", errors.New(d.user + " got no NOTIFY")
	}
}

// publish publishes the device's state for ten minutes.
func (d *device) publish(a presence.Availability, note string) error {
	req := d.request(sip.PUBLISH, d.aor(), sip.NewHeader("Event", "presence"), sip.NewHeader("Expires", "600"),
		sip.NewHeader("Content-Type", "application/pidf+xml"))
	req.SetBody((&presence.Presence{Entity: d.aor(), Availability: a, Note: note}).MarshalPIDF())
	_, err := d.do(req)
	return err
}

// until waits for a NOTIFY showing availability a.
func (d *device) until(a presence.Availability) error {
	var seen []string
	for range 10 {
		got, _, err := d.next()
		if err != nil {
			return fmt.Errorf("waiting for %s after %s: %w", a, strings.Join(seen, ", "), err)
		}
		if got == a {
			return nil
		}
		seen = append(seen, string(got))
	}
	return fmt.Errorf("no NOTIFY showing %s; saw %s", a, strings.Join(seen, ", "))
}
