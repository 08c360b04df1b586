package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/pki"
)

// userAgent names the client in its requests.
const userAgent = "parley-client"

// trust is the TLS client configuration for the server: its certificate
// must chain to the CA of -ca, carry the serverAuth EKU and the name of
// -server-name, and not be revoked (the CRL cache fetches the CRL its
// distribution point names, and fails closed).
type trust struct {
	tls  *tls.Config
	crls *pki.CRLCache
}

// newTrust reads -ca and builds the verification of the server. Close
// stops the CRL cache's refreshes.
func newTrust(e *env) (*trust, error) {
	data, err := os.ReadFile(e.opts.caFile)
	if err != nil {
		return nil, fmt.Errorf("-ca: %w (the server writes it on first run, and serves it at http://127.0.0.1:8080/pki/ca.crt)", err)
	}
	certs, err := pki.ParseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("-ca %s: %w", e.opts.caFile, err)
	}
	roots := x509.NewCertPool()
	for _, c := range certs {
		roots.AddCert(c)
	}
	crls, err := pki.NewCRLCache(pki.CRLCacheConfig{FetchTimeout: e.opts.timeout,
		Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return nil, err
	}
	v, err := pki.NewVerifier(pki.VerifierConfig{Roots: roots, CRLs: crls})
	if err != nil {
		_ = crls.Close()
		return nil, err
	}
	return &trust{tls: pki.ClientTLSConfig(nil, v, e.opts.serverName), crls: crls}, nil
}

// Close stops the CRL cache.
func (t *trust) Close() error { return t.crls.Close() }

// statusError is a final SIP or HTTP response other than success.
type statusError struct {
	code   int
	reason string
	detail string // what the server said, if anything
}

// Error names the status, what the server said, and for 401 and 407
// the likely cause.
func (s *statusError) Error() string {
	msg := strconv.Itoa(s.code) + " " + s.reason
	if s.detail != "" {
		msg += ": " + s.detail
	}
	if s.code == 401 || s.code == 407 {
		msg += " (wrong user name or password?)"
	}
	return msg
}

// sipStatus is the error of a final SIP response other than 2xx.
func sipStatus(res *sip.Response) error {
	return &statusError{code: res.StatusCode, reason: res.Reason}
}

// agent is the client's SIP user agent: one TLS connection to the server
// (-sip), over which it sends its requests, answering Digest challenges,
// and receives the server's (MESSAGE, NOTIFY, BYE) for the handlers a
// command sets with handle. It listens on no port. With several servers
// (the front ends of a pool, -sip a,b,c) it uses the first that can be
// reached, and moves to the next when the one it uses cannot be.
type agent struct {
	id      identity
	servers []string
	timeout time.Duration
	from    sip.Uri
	contact string // the Contact of every request that asks for one
	trust   *trust
	ua      *sipgo.UserAgent
	client  *sipgo.Client
	srv     *sipgo.Server

	mu   sync.Mutex
	cur  int    // the server in use, an index of servers
	flow string // the server's address on our connection, once one answered
}

// addr is the server in use.
func (a *agent) addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.servers[a.cur]
}

// failover moves to the next server (from the one that failed, if
// another request has not moved already) and returns it.
func (a *agent) failover(failed string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.servers[a.cur] == failed {
		a.cur = (a.cur + 1) % len(a.servers)
		a.flow = ""
	}
	return a.servers[a.cur]
}

// moveTo makes addr the server in use: the front end of a pool that
// hosts a meeting, as a 302 to its INVITE names it. The servers of -sip
// stay, for failover.
func (a *agent) moveTo(addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := slices.Index(a.servers, addr)
	if i < 0 {
		a.servers = append(slices.Clip(a.servers), addr)
		i = len(a.servers) - 1
	}
	if i != a.cur {
		a.cur, a.flow = i, ""
	}
}

// serverCount is how many servers the agent knows.
func (a *agent) serverCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.servers)
}

// newAgent makes the user agent of id. Close releases it.
func newAgent(e *env, id identity) (*agent, error) {
	a := &agent{id: id, servers: e.opts.sipServers(), timeout: e.opts.timeout}
	if err := sip.ParseUri(id.aor, &a.from); err != nil {
		return nil, err
	}
	// RFC 5626: this device's instance, reached over the connection it
	// registered from (";ob"); the host is never dialed.
	instance := newUUID()
	a.contact = fmt.Sprintf(`<sip:%s@%s.invalid;transport=tls;ob>;+sip.instance="<urn:uuid:%s>";reg-id=1`,
		a.from.User, instance[:8], instance)
	t, err := newTrust(e)
	if err != nil {
		return nil, err
	}
	// sipgo's own logs are not for a command line's user: the errors
	// that matter come back from the calls.
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(userAgent), sipgo.WithUserAgenTLSConfig(t.tls),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)))
	if err != nil {
		_ = t.Close()
		return nil, err
	}
	srv, errServer := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	client, errClient := sipgo.NewClient(ua, sipgo.WithClientLogger(quiet))
	if err := errors.Join(errServer, errClient); err != nil {
		_ = ua.Close()
		_ = t.Close()
		return nil, err
	}
	a.trust, a.ua, a.srv, a.client = t, ua, srv, client
	return a, nil
}

// Close closes the connection and everything the agent started.
func (a *agent) Close() {
	_ = a.client.Close()
	_ = a.ua.Close()
	_ = a.trust.Close()
}

// handle sets the handler of requests the server sends. Set every
// handler before the first request goes out.
func (a *agent) handle(method sip.RequestMethod, h sipgo.RequestHandler) {
	a.srv.OnRequest(method, h)
}

// newRequest starts a request outside any dialog, from the agent's user
// to target, over TLS to -sip.
func (a *agent) newRequest(method sip.RequestMethod, target sip.Uri) *sip.Request {
	req := sip.NewRequest(method, target)
	params := sip.NewParams()
	params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(&sip.FromHeader{DisplayName: a.id.displayName, Address: a.from, Params: params})
	req.AppendHeader(&sip.ToHeader{Address: target})
	callID := sip.CallIDHeader(newUUID())
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: method})
	a.route(req)
	return req
}

// route adds what every request needs: the User-Agent, and TLS to -sip.
func (a *agent) route(req *sip.Request) {
	req.AppendHeader(sip.NewHeader("User-Agent", userAgent))
	req.SetTransport("TLS")
	req.SetDestination(a.addr())
}

// do sends req and returns its final response, answering a Digest
// challenge (and a second one if the first answer's nonce was stale).
// Each answer takes the next CSeq, which req keeps.
func (a *agent) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if req.Body() == nil {
		req.SetBody(nil) // Content-Length: 0
	}
	if a.id.tokens != nil && req.GetHeader("Authorization") == nil && a.id.tokens.due() {
		// The token is about to expire: this request carries a fresh
		// one, which renews the connection's sign-in (RFC 8898).
		tok, err := a.id.tokens.token(ctx)
		if err != nil {
			return nil, err
		}
		req.AppendHeader(sip.NewHeader("Authorization", "Bearer "+tok))
	}
	res, err := a.client.Do(ctx, req)
	// A server that cannot be reached (the dial failed: nothing was
	// sent) is left for the next, as many times as there are others.
	for tries := 1; err != nil && unreachable(err) && tries < a.serverCount(); tries++ {
		next := a.failover(req.Destination())
		req.SetDestination(next)
		req.RemoveHeader("Via")
		res, err = a.client.Do(ctx, req)
	}
	for answers := 0; err == nil && isChallenge(res) && answers < 2; answers++ {
		if answers == 1 && !isStale(challenges(res)) {
			break // the credentials were refused
		}
		if err = a.authorize(ctx, req, res); err != nil {
			return nil, err
		}
		res, err = a.client.Do(ctx, req, sipgo.ClientRequestAddVia)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Method, connectionError(req.Destination(), err))
	}
	a.sawFlow(res)
	return res, nil
}

// connectionError words a failure to reach the server at addr: no
// answer in time, a certificate refused, a connection refused.
func connectionError(addr string, err error) error {
	var refused *pki.VerifyError
	var netErr *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer from %s in time", addr)
	case errors.As(err, &refused):
		return fmt.Errorf("TLS to %s: %w", addr, refused)
	case errors.As(err, &netErr):
		return fmt.Errorf("cannot reach %s: %w", addr, netErr.Err)
	}
	return err
}

// unreachable reports whether err is a failure to connect at all
// (refused, no route): the request never left, and another server may
// take it.
func unreachable(err error) bool {
	var netErr *net.OpError
	return errors.As(err, &netErr) && netErr.Op == "dial"
}

// isChallenge reports whether res asks for credentials (401 or 407).
func isChallenge(res *sip.Response) bool {
	return res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired
}

// challenges returns the challenges of a 401 or 407.
func challenges(res *sip.Response) []string {
	name := "WWW-Authenticate"
	if res.StatusCode == sip.StatusProxyAuthRequired {
		name = "Proxy-Authenticate"
	}
	var out []string
	for _, h := range res.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}

// authorize prepares req to be sent again with the answer to res's
// challenge: credentials, the next CSeq and a new Via (a new transaction).
// A user who has logged in answers with the access token (RFC 8898).
func (a *agent) authorize(ctx context.Context, req *sip.Request, res *sip.Response) error {
	v, err := a.id.credentials(ctx, challenges(res), string(req.Method), req.Recipient.String())
	if err != nil {
		return err
	}
	name := "Authorization"
	if res.StatusCode == sip.StatusProxyAuthRequired {
		name = "Proxy-Authorization"
	}
	req.RemoveHeader(name)
	req.AppendHeader(sip.NewHeader(name, v))
	req.CSeq().SeqNo++
	req.RemoveHeader("Via")
	return nil
}

// sawFlow notes the server's address on the connection a response came
// over.
func (a *agent) sawFlow(res *sip.Response) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.flow == "" {
		a.flow = res.Source()
	}
}

// connected reports whether the connection to the server is still open
// (true before the first answer).
func (a *agent) connected() bool {
	a.mu.Lock()
	flow := a.flow
	a.mu.Unlock()
	if flow == "" {
		return true
	}
	_, err := a.ua.TransportLayer().GetConnection("tls", flow)
	return err == nil
}

// reconnected forgets the connection that closed: the next request opens
// another.
func (a *agent) reconnected() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flow = ""
}

// register binds this device (REGISTER, RFC 3261 section 10) for expires,
// 0 to sign out, and returns the expiry the registrar granted.
func (a *agent) register(ctx context.Context, reg *registration, expires time.Duration) (time.Duration, error) {
	var domain sip.Uri
	if err := sip.ParseUri("sip:"+a.from.Host, &domain); err != nil {
		return 0, err
	}
	req := sip.NewRequest(sip.REGISTER, domain)
	params := sip.NewParams()
	params.Add("tag", reg.fromTag)
	req.AppendHeader(&sip.FromHeader{Address: a.from, Params: params})
	req.AppendHeader(&sip.ToHeader{Address: a.from})
	callID := sip.CallIDHeader(reg.callID)
	req.AppendHeader(&callID)
	reg.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: reg.cseq, MethodName: sip.REGISTER})
	req.AppendHeader(sip.NewHeader("Contact", a.contact))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	req.AppendHeader(sip.NewHeader("Supported", "path, outbound"))
	if a.id.tokens != nil && expires > 0 {
		// Each refreshing REGISTER carries the current token, so the
		// server extends the sign-in to its expiry (RFC 8898 section 2).
		tok, err := a.id.tokens.token(ctx)
		if err != nil {
			return 0, err
		}
		req.AppendHeader(sip.NewHeader("Authorization", "Bearer "+tok))
	}
	a.route(req)
	res, err := a.do(ctx, req)
	reg.cseq = req.CSeq().SeqNo
	if err != nil {
		return 0, err
	}
	if res.StatusCode != sip.StatusOK {
		return 0, sipStatus(res)
	}
	granted := expires
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || !strings.Contains(a.contact, "@"+c.Address.Host+";") {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				granted = time.Duration(n) * time.Second
			}
		}
	}
	return granted, nil
}

// registration is the state of the agent's REGISTERs: one Call-ID and
// rising CSeqs (RFC 3261 section 10.2).
type registration struct {
	callID, fromTag string
	cseq            uint32
}

// newRegistration starts the REGISTERs of a session.
func newRegistration() *registration {
	return &registration{callID: newUUID(), fromTag: sip.GenerateTagN(16)}
}

// message sends an instant message (RFC 3428) to to.
func (a *agent) message(ctx context.Context, to, text string) error {
	var target sip.Uri
	if err := sip.ParseUri(to, &target); err != nil {
		return err
	}
	req := a.newRequest(sip.MESSAGE, target)
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain;charset=UTF-8"))
	req.SetBody([]byte(text))
	res, err := a.do(ctx, req)
	if err != nil {
		return err
	}
	if !res.IsSuccess() {
		return sipStatus(res)
	}
	return nil
}

// dialog is a SIP dialog this client started (RFC 3261 section 12): an
// INVITE's or a SUBSCRIBE's, seen from the caller's side.
type dialog struct {
	a       *agent
	mu      sync.Mutex
	from    sip.FromHeader
	to      sip.ToHeader // with the server's tag once it answered
	callID  string
	cseq    uint32
	target  sip.Uri  // the server's Contact: the Request-URI of later requests
	routes  []string // the route set, from the answer's Record-Route
	confirm bool     // the server answered 2xx: target and routes are known
}

// newDialog starts the dialog of req, a request from newRequest.
func (a *agent) newDialog(req *sip.Request) *dialog {
	return &dialog{a: a, from: *req.From(), to: *req.To(), callID: req.CallID().Value(),
		cseq: req.CSeq().SeqNo, target: req.Recipient}
}

// established records the answer that made the dialog: the server's tag,
// its Contact and the route set (the Record-Route reversed, section
// 12.1.2). cseq is the CSeq the request that made it ended with.
func (d *dialog) established(res *sip.Response, cseq uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if to := res.To(); to != nil {
		d.to = *to
	}
	if c := res.Contact(); c != nil {
		d.target = *c.Address.Clone()
		d.target.Headers = nil
	}
	d.routes = nil
	rr := res.GetHeaders("Record-Route")
	for _, h := range slices.Backward(rr) {
		d.routes = append(d.routes, h.Value())
	}
	d.cseq = max(d.cseq, cseq)
	d.confirm = true
}

// request makes the next request in the dialog (section 12.2.1.1).
func (d *dialog) request(method sip.RequestMethod) *sip.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cseq++
	return d.requestLocked(method, d.cseq)
}

// requestLocked is request with the given CSeq (an ACK takes its
// INVITE's), under d.mu.
func (d *dialog) requestLocked(method sip.RequestMethod, cseq uint32) *sip.Request {
	req := sip.NewRequest(method, d.target)
	from, to := d.from, d.to
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	callID := sip.CallIDHeader(d.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	for _, r := range d.routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	req.AppendHeader(sip.NewHeader("Contact", d.a.contact))
	d.a.route(req)
	return req
}

// do sends req, made by request, in the dialog; a Digest answer moves
// the dialog's CSeq on with it.
func (d *dialog) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := d.a.do(ctx, req)
	d.mu.Lock()
	d.cseq = max(d.cseq, req.CSeq().SeqNo)
	d.mu.Unlock()
	return res, err
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
