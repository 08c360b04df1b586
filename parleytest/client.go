package parleytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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
	From string // the sender's address of record
	Text string
}

// Client is one SIP device of a user (or of a meeting guest) with its own
// TLS connection to the stack, which it verifies against the stack's CA.
// It answers every NOTIFY, MESSAGE and BYE it receives; what they carry is
// read with WaitPresence, Messages and Membership.Ended. Its methods are
// safe for concurrent use; it closes when the test ends.
type Client struct {
	s                  *Stack
	user, password     string // Digest credentials
	aor                string // From
	contact            string
	ua                 *sipgo.UserAgent
	client             *sipgo.Client
	once               sync.Once
	messages           chan Message
	presenceMu         sync.Mutex
	presence           map[string]presence.Availability // last seen, by presentity
	presenceChanged    chan struct{}                    // closed and replaced on each change
	membershipsMu      sync.Mutex
	memberships        map[string]*Membership // by Call-ID
	subscriptionStates chan string
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
	return s.newClient(name, s.Password(name), s.AOR(name))
}

// NewGuest is Guest for code without a testing.TB; HangUp closes it.
func (s *Stack) NewGuest(m *conference.Meeting, name string) (*Client, error) {
	return s.newClient(auth.AnonymousPrefix+string(m.ID), m.Key, "sip:"+strings.ToLower(name)+"@anonymous.invalid")
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

func (s *Stack) newClient(user, password, aor string) (*Client, error) {
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("parleytest-client"),
		sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(nil, s.Verifier, ServerName)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(s.log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(s.log)))
	if err != nil {
		return nil, fmt.Errorf("parleytest: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(s.log))
	if err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("parleytest: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(s.log))
	if err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("parleytest: %w", err)
	}
	c := &Client{s: s, user: user, password: password, aor: aor, ua: ua, client: client,
		contact:  "<sip:" + sip.GenerateTagN(10) + "@127.0.0.1;transport=tls>",
		messages: make(chan Message, 64), presence: map[string]presence.Availability{},
		presenceChanged: make(chan struct{}), memberships: map[string]*Membership{},
		subscriptionStates: make(chan string, 64)}
	srv.OnNotify(c.onNotify)
	srv.OnMessage(c.onMessage)
	srv.OnBye(c.onBye)
	return c, nil
}

// AOR is the client's address of record.
func (c *Client) AOR() string { return c.aor }

// HangUp drops the client's connection at once, as a crashed device or a
// lost network does: no sign-out, no BYE.
func (c *Client) HangUp() {
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
	if err := sip.ParseUri(c.aor, &from); err != nil {
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
	req.SetDestination(c.s.SIPAddr)
	return req, nil
}

// do sends req, answers a Digest challenge, and returns the final
// response, or an error wrapping ErrStatus for a failure.
func (c *Client) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := c.client.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = c.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: c.user, Password: c.password})
	}
	if err != nil {
		return nil, fmt.Errorf("parleytest: %s: %w", req.Method, err)
	}
	if res.StatusCode >= 300 {
		return res, &StatusError{Method: req.Method, Code: res.StatusCode, Reason: res.Reason}
	}
	return res, nil
}

// SignIn registers the device for an hour: the user is signed in.
func (c *Client) SignIn(ctx context.Context) error { return c.register(ctx, 3600) }

// SignOut removes the device's registration.
func (c *Client) SignOut(ctx context.Context) error { return c.register(ctx, 0) }

func (c *Client) register(ctx context.Context, expires int) error {
	req, err := c.request(sip.REGISTER, c.aor, sip.NewHeader("Expires", strconv.Itoa(expires)))
	if err != nil {
		return err
	}
	req.Recipient = sip.Uri{Scheme: "sip", Host: c.s.Domain}
	_, err = c.do(ctx, req)
	return err
}

// Publish publishes the device's availability and note (PUBLISH with a
// PIDF document) for an hour.
func (c *Client) Publish(ctx context.Context, a presence.Availability, note string) error {
	doc := (&presence.Presence{Entity: c.aor, Availability: a, Note: note}).MarshalPIDF()
	req, err := c.request(sip.PUBLISH, c.aor, sip.NewHeader("Event", "presence"), sip.NewHeader("Expires", "3600"),
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
	req, err := c.request(sip.SUBSCRIBE, c.s.aorOf(user), sip.NewHeader("Event", "presence"),
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
	aor := c.s.aorOf(user)
	for {
		c.presenceMu.Lock()
		got, changed := c.presence[aor], c.presenceChanged
		c.presenceMu.Unlock()
		if got == a {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("parleytest: %s waits for %s to be %s (last seen %q): %w", c.aor, aor, a, got, ctx.Err())
		}
	}
}

// SubscriptionStates delivers the Subscription-State of every NOTIFY the
// client receives (active;expires=..., terminated;reason=...).
func (c *Client) SubscriptionStates() <-chan string { return c.subscriptionStates }

func (c *Client) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	if h := req.GetHeader("Subscription-State"); h != nil {
		select {
		case c.subscriptionStates <- h.Value():
		default:
		}
	}
	if ct := req.ContentType(); ct == nil || !strings.HasPrefix(ct.Value(), "application/pidf+xml") {
		return
	}
	doc, err := presence.ParsePIDF(req.Body())
	if err != nil {
		return
	}
	c.presenceMu.Lock()
	c.presence[doc.Entity] = doc.Availability
	close(c.presenceChanged)
	c.presenceChanged = make(chan struct{})
	c.presenceMu.Unlock()
}

// Send sends an instant message (MESSAGE, text/plain) to user (a name of
// the tenant, or an address of record).
func (c *Client) Send(ctx context.Context, user, text string) error {
	req, err := c.request(sip.MESSAGE, c.s.aorOf(user), sip.NewHeader("Content-Type", "text/plain"))
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
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	from := ""
	if f := req.From(); f != nil {
		from = f.Address.Addr()
		if !strings.HasPrefix(from, "sip:") {
			from = "sip:" + from
		}
	}
	select {
	case c.messages <- Message{From: from, Text: string(req.Body())}:
	default: // a test that reads none does not block the stack
	}
}

// RelayCredentials asks the stack for relay credentials over the
// client's connection (SERVICE), as a signed-in client does before a
// call.
func (c *Client) RelayCredentials(ctx context.Context) (*edge.Credential, error) {
	req, err := c.request(edge.MethodService, "sip:"+c.s.Domain, sip.NewHeader("Content-Type", edge.RelayRequestType))
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

// aorOf turns a user name of the tenant into its address of record, and
// leaves an address as it is.
func (s *Stack) aorOf(user string) string {
	if strings.HasPrefix(user, "sip:") || strings.HasPrefix(user, "sips:") {
		return user
	}
	return s.AOR(user)
}
