package parleytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
)

// ErrStatus is wrapped by the errors of requests the stack answered with
// a failure: errors.As gives the *StatusError.
var ErrStatus = errors.New("parleytest: request failed")

// StatusError is a final SIP response other than success.
type StatusError struct {
	Method sip.RequestMethod
	Code   int
	Reason string
}

// Error says which request got which status.
func (e *StatusError) Error() string {
	return fmt.Sprintf("parleytest: %s: %d %s", e.Method, e.Code, e.Reason)
}

// Unwrap makes errors.Is(err, ErrStatus) hold.
func (e *StatusError) Unwrap() error { return ErrStatus }

// Message is an instant message a Client received.
type Message struct {
	From string // the sender's address of record, from the From header
	// Asserted is the P-Asserted-Identity the server added: the sender as
	// it authenticated it.
	Asserted string
	Text     string
}

// Client is one SIP device of a user (or of a meeting guest) with its own
// TLS connection to the stack, which it verifies against the stack's CA.
// It answers every NOTIFY, MESSAGE and BYE it receives; what they carry is
// read with WaitPresence, Messages and Membership.Ended. Its methods are
// safe for concurrent use; it closes when the test ends.
type Client struct {
	cfg                ClientConfig
	contact            string
	ua                 *sipgo.UserAgent
	client             *sipgo.Client
	once               sync.Once
	messages           chan Message
	presenceMu         sync.Mutex
	presence           map[string]*presence.Presence // last seen, by presentity
	presenceChanged    chan struct{}                 // closed and replaced on each change
	membershipsMu      sync.Mutex
	memberships        map[string]*Membership // by Call-ID
	subscriptionStates chan string
	held               atomic.Bool
	release            chan struct{}
	releaseOnce        sync.Once
	tokenMu            sync.Mutex
	token              string
}

// Client returns a device of user name, not yet signed in; it hangs up
// when t ends.
func (s *Stack) Client(t testing.TB, name string) *Client {
	t.Helper()
	return must(t)(s.NewClient(name))
}

// Guest returns an anonymous user's device for meeting m: it
// authenticates with m's conference key, and can join m only. It hangs up
// when t ends.
func (s *Stack) Guest(t testing.TB, m *conference.Meeting, name string) *Client {
	t.Helper()
	return must(t)(s.NewGuest(m, name))
}

// NewClient is Client for code without a testing.TB; HangUp closes it.
func (s *Stack) NewClient(name string) (*Client, error) {
	return Dial(s.clientConfig(name, s.Password(name), s.AOR(name)))
}

// TokenClient returns a device of user name that signs in with an OAuth
// 2.0 access token (RFC 8898) instead of a password; it hangs up when t
// ends.
func (s *Stack) TokenClient(t testing.TB, name, token string) *Client {
	t.Helper()
	cfg := s.clientConfig("", "", s.AOR(name))
	cfg.Token = token
	return must(t)(Dial(cfg))
}

// NewGuest is Guest for code without a testing.TB; HangUp closes it.
func (s *Stack) NewGuest(m *conference.Meeting, name string) (*Client, error) {
	return Dial(s.clientConfig(auth.AnonymousPrefix+string(m.ID), m.Key, "sip:"+strings.ToLower(name)+"@anonymous.invalid"))
}

func (s *Stack) clientConfig(user, password, aor string) ClientConfig {
	return ClientConfig{Addr: s.SIPAddr, ServerName: ServerName, Verifier: s.Verifier, Domain: s.Domain,
		User: user, Password: password, AOR: aor, Logger: s.log}
}

// ClientConfig says which SIP server a Client dials and as whom: any
// server built on Parley, a Stack's or an application's own.
type ClientConfig struct {
	// Addr is the server's SIP over TLS address. Required.
	Addr string
	// ServerName is the name the server's certificate must carry.
	// Required.
	ServerName string
	// Verifier checks the server's certificate (chain, EKU, revocation).
	// Required.
	Verifier *pki.Verifier
	// Domain is the SIP domain registered to. Required.
	Domain string
	// User and Password are the Digest credentials. Required unless
	// Token is set.
	User, Password string
	// Token is an OAuth 2.0 access token: the client answers a Bearer
	// challenge with it (RFC 8898). SetToken replaces it.
	Token string
	// AOR is the client's address of record. Default sip:<User>@<Domain>;
	// required with Token and no User.
	AOR string
	// Logger receives the SIP stack's logs. Default: discarded.
	Logger *slog.Logger
}

// Dial returns a Client of the server cfg names; it connects with its
// first request. HangUp closes it.
func Dial(cfg ClientConfig) (*Client, error) {
	switch {
	case cfg.Addr == "":
		return nil, errors.New("parleytest: ClientConfig.Addr is required")
	case cfg.ServerName == "":
		return nil, errors.New("parleytest: ClientConfig.ServerName is required")
	case cfg.Verifier == nil:
		return nil, errors.New("parleytest: ClientConfig.Verifier is required")
	case cfg.Domain == "":
		return nil, errors.New("parleytest: ClientConfig.Domain is required")
	case cfg.Token == "" && (cfg.User == "" || cfg.Password == ""):
		return nil, errors.New("parleytest: ClientConfig.User and Password are required")
	case cfg.Token != "" && cfg.User == "" && cfg.AOR == "":
		return nil, errors.New("parleytest: ClientConfig.AOR is required with Token")
	}
	if cfg.AOR == "" {
		cfg.AOR = "sip:" + cfg.User + "@" + cfg.Domain
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return newClient(cfg)
}

func must(t testing.TB) func(*Client, error) *Client {
	return func(c *Client, err error) *Client {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.HangUp)
		return c
	}
}

func newClient(cfg ClientConfig) (*Client, error) {
	log := cfg.Logger
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("parleytest-client"),
		sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(nil, cfg.Verifier, cfg.ServerName)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)))
	if err != nil {
		return nil, fmt.Errorf("parleytest: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("parleytest: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(log))
	if err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("parleytest: %w", err)
	}
	c := &Client{cfg: cfg, ua: ua, client: client, token: cfg.Token,
		contact:  "<sip:" + sip.GenerateTagN(10) + "@127.0.0.1;transport=tls>",
		messages: make(chan Message, 64), presence: map[string]*presence.Presence{}, release: make(chan struct{}),
		presenceChanged: make(chan struct{}), memberships: map[string]*Membership{},
		subscriptionStates: make(chan string, 64)}
	srv.OnNotify(c.onNotify)
	srv.OnMessage(c.onMessage)
	srv.OnBye(c.onBye)
	return c, nil
}

// AOR is the client's address of record.
func (c *Client) AOR() string { return c.cfg.AOR }

// HangUp drops the client's connection at once, as a crashed device or a
// lost network does: no sign-out, no BYE.
func (c *Client) HangUp() {
	c.ReleaseAnswers()
	c.once.Do(func() {
		_ = c.client.Close()
		_ = c.ua.Close()
	})
}

// request builds a request to target from the client.
func (c *Client) request(method sip.RequestMethod, target string, headers ...sip.Header) (*sip.Request, error) {
	var uri, from sip.Uri
	if err := sip.ParseUri(target, &uri); err != nil {
		return nil, fmt.Errorf("parleytest: %s %q: %w", method, target, err)
	}
	if err := sip.ParseUri(c.cfg.AOR, &from); err != nil {
		return nil, err
	}
	req := sip.NewRequest(method, uri)
	params := sip.NewParams()
	params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(&sip.FromHeader{Address: from, Params: params})
	req.AppendHeader(&sip.ToHeader{Address: uri})
	req.AppendHeader(sip.NewHeader("Contact", c.contact))
	for _, h := range headers {
		req.AppendHeader(h)
	}
	req.SetTransport("TLS")
	req.SetDestination(c.cfg.Addr)
	return req, nil
}

// do sends req, answers a Digest challenge, and returns the final
// response, or an error wrapping ErrStatus for a failure.
func (c *Client) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := c.client.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		if tok := c.Token(); tok != "" && offersBearer(res) {
			// The request again with the token, as sipgo retries with
			// Digest credentials: the next CSeq, a new Via branch.
			req.RemoveHeader("Authorization")
			req.AppendHeader(sip.NewHeader("Authorization", "Bearer "+tok))
			if cseq := req.CSeq(); cseq != nil {
				cseq.SeqNo++
			}
			req.RemoveHeader("Via")
			res, err = c.client.Do(ctx, req, sipgo.ClientRequestAddVia)
		} else if c.cfg.Password != "" {
			res, err = c.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: c.cfg.User, Password: c.cfg.Password})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("parleytest: %s: %w", req.Method, err)
	}
	if res.StatusCode >= 300 {
		return res, &StatusError{Method: req.Method, Code: res.StatusCode, Reason: res.Reason}
	}
	return res, nil
}

// offersBearer reports whether a 401 offers the Bearer scheme.
func offersBearer(res *sip.Response) bool {
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		if len(h.Value()) >= 7 && strings.EqualFold(h.Value()[:7], "Bearer ") {
			return true
		}
	}
	return false
}

// Token is the access token the client signs in with, "" for none.
func (c *Client) Token() string {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	return c.token
}

// SetToken replaces the client's access token, as a device does after
// refreshing it; Renew then presents it.
func (c *Client) SetToken(token string) {
	c.tokenMu.Lock()
	c.token = token
	c.tokenMu.Unlock()
}

// Renew re-registers with the current token in the request itself, as a
// device does with a refreshed token before the old one expires: the
// server extends the sign-in to the new token's expiry.
func (c *Client) Renew(ctx context.Context) error {
	req, err := c.request(sip.REGISTER, c.cfg.AOR, sip.NewHeader("Expires", "3600"),
		sip.NewHeader("Authorization", "Bearer "+c.Token()))
	if err != nil {
		return err
	}
	req.Recipient = sip.Uri{Scheme: "sip", Host: c.cfg.Domain}
	_, err = c.do(ctx, req)
	return err
}

// SignIn registers the device for an hour: the user is signed in.
func (c *Client) SignIn(ctx context.Context) error { return c.register(ctx, 3600) }

// SignOut removes the device's registration.
func (c *Client) SignOut(ctx context.Context) error { return c.register(ctx, 0) }

func (c *Client) register(ctx context.Context, expires int) error {
	req, err := c.request(sip.REGISTER, c.cfg.AOR, sip.NewHeader("Expires", strconv.Itoa(expires)))
	if err != nil {
		return err
	}
	req.Recipient = sip.Uri{Scheme: "sip", Host: c.cfg.Domain}
	_, err = c.do(ctx, req)
	return err
}

// Publish publishes the device's availability and note (PUBLISH with a
// PIDF document) for an hour.
func (c *Client) Publish(ctx context.Context, a presence.Availability, note string) error {
	doc := (&presence.Presence{Entity: c.cfg.AOR, Availability: a, Note: note}).MarshalPIDF()
	req, err := c.request(sip.PUBLISH, c.cfg.AOR, sip.NewHeader("Event", "presence"), sip.NewHeader("Expires", "3600"),
		sip.NewHeader("Content-Type", "application/pidf+xml"))
	if err != nil {
		return err
	}
	req.SetBody(doc)
	_, err = c.do(ctx, req)
	return err
}

// Watch subscribes to the presence of user (a name of the tenant, or an
// address of record) for an hour; WaitPresence reads what the NOTIFYs
// say.
func (c *Client) Watch(ctx context.Context, user string) error {
	req, err := c.request(sip.SUBSCRIBE, c.aorOf(user), sip.NewHeader("Event", "presence"),
		sip.NewHeader("Accept", "application/pidf+xml"), sip.NewHeader("Expires", "3600"))
	if err != nil {
		return err
	}
	_, err = c.do(ctx, req)
	return err
}

// WaitPresence waits until a NOTIFY has shown user with availability a,
// or ctx ends.
func (c *Client) WaitPresence(ctx context.Context, user string, a presence.Availability) error {
	aor := c.aorOf(user)
	for {
		c.presenceMu.Lock()
		var got presence.Availability
		if doc := c.presence[aor]; doc != nil {
			got = doc.Availability
		}
		changed := c.presenceChanged
		c.presenceMu.Unlock()
		if got == a {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("parleytest: %s waits for %s to be %s (last seen %q): %w", c.cfg.AOR, aor, a, got, ctx.Err())
		}
	}
}

// LastPresence is the last presence document a NOTIFY showed for user,
// nil if none did.
func (c *Client) LastPresence(user string) *presence.Presence {
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	return c.presence[c.aorOf(user)]
}

// HoldAnswers makes the client hold its answers to the server's NOTIFYs,
// MESSAGEs and BYEs that arrive from now on (it still reads them) until
// ReleaseAnswers or HangUp: a device that does not answer, to test the
// server's timeouts and drains. A request that arrived before the call is
// answered as usual, even if its answer has not gone out yet.
func (c *Client) HoldAnswers() { c.held.Store(true) }

// ReleaseAnswers sends what the client holds, and answers at once from
// then on.
func (c *Client) ReleaseAnswers() { c.releaseOnce.Do(func() { close(c.release) }) }

// answer returns what answers a request from the server, deciding on
// its arrival whether the answer is held: a handler defers
// c.answer(req, tx)(), so that a test which reads what the request
// carried and then calls HoldAnswers does not hold that request's answer.
func (c *Client) answer(req *sip.Request, tx sip.ServerTransaction) func() {
	held := c.held.Load()
	return func() {
		if held {
			<-c.release
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	}
}

// SubscriptionStates delivers the Subscription-State of every NOTIFY the
// client receives (active;expires=..., terminated;reason=...).
func (c *Client) SubscriptionStates() <-chan string { return c.subscriptionStates }

func (c *Client) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	defer c.answer(req, tx)()
	// The document is recorded before the state is delivered: a test that
	// reads a state then LastPresence sees what that NOTIFY carried.
	if ct := req.ContentType(); ct != nil && strings.HasPrefix(ct.Value(), "application/pidf+xml") {
		if doc, err := presence.ParsePIDF(req.Body()); err == nil {
			c.presenceMu.Lock()
			c.presence[doc.Entity] = doc
			close(c.presenceChanged)
			c.presenceChanged = make(chan struct{})
			c.presenceMu.Unlock()
		}
	}
	if h := req.GetHeader("Subscription-State"); h != nil {
		select {
		case c.subscriptionStates <- h.Value():
		default:
		}
	}
}

// Send sends an instant message (MESSAGE, text/plain) to user (a name of
// the tenant, or an address of record).
func (c *Client) Send(ctx context.Context, user, text string) error {
	req, err := c.request(sip.MESSAGE, c.aorOf(user), sip.NewHeader("Content-Type", "text/plain"))
	if err != nil {
		return err
	}
	req.SetBody([]byte(text))
	_, err = c.do(ctx, req)
	return err
}

// Messages delivers the instant messages the client receives.
func (c *Client) Messages() <-chan Message { return c.messages }

func (c *Client) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	defer c.answer(req, tx)()
	from, asserted := "", ""
	if h := req.GetHeader("P-Asserted-Identity"); h != nil {
		asserted = strings.Trim(h.Value(), "<>")
	}
	if f := req.From(); f != nil {
		from = f.Address.Addr()
		if !strings.HasPrefix(from, "sip:") {
			from = "sip:" + from
		}
	}
	select {
	case c.messages <- Message{From: from, Asserted: asserted, Text: string(req.Body())}:
	default: // a test that reads none does not block the stack
	}
}

// RelayCredentials asks the stack for relay credentials over the
// client's connection (SERVICE), as a signed-in client does before a
// call.
func (c *Client) RelayCredentials(ctx context.Context) (*edge.Credential, error) {
	req, err := c.request(edge.MethodService, "sip:"+c.cfg.Domain, sip.NewHeader("Content-Type", edge.RelayRequestType))
	if err != nil {
		return nil, err
	}
	res, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	var cred edge.Credential
	if err := json.Unmarshal(res.Body(), &cred); err != nil {
		return nil, fmt.Errorf("parleytest: relay credentials: %w", err)
	}
	return &cred, nil
}

// aorOf turns a user name of the client's domain into its address of
// record, and leaves an address as it is.
func (c *Client) aorOf(user string) string {
	if strings.HasPrefix(user, "sip:") || strings.HasPrefix(user, "sips:") {
		return user
	}
	return "sip:" + user + "@" + c.cfg.Domain
}
