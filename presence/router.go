package presence

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/sipx"
)

// Locator finds a user's bindings. *Registrar implements it.
type Locator interface {
	Lookup(ctx context.Context, aor string) ([]Binding, error)
}

// DefaultForwardTimeout bounds how long a forwarded request waits for its
// final responses.
const DefaultForwardTimeout = 10 * time.Second

// RouterConfig configures a [Router].
type RouterConfig struct {
	Auth      Authenticator  // authenticates every request. Required.
	Directory auth.Directory // the users requests may be sent to. Required.
	Locator   Locator        // their bindings. Required.
	// Client sends the forwarded requests; it must share the user agent
	// of the server the clients are connected to, so that requests go out
	// over the clients' own connections. Required.
	Client *sipgo.Client
	// Policy, if set, refuses requests to users who have blocked the
	// sender (VisibilityRule.Blocks): they get 480, as if the user were
	// offline. Give it the PresenceServer's rule.
	Policy VisibilityRule
	// Spim limits messages to users who do not have the sender as a
	// contact, per sender and per federated domain (with Policy). Give the
	// Router and the PresenceServer the same Throttle, so a sender has one
	// budget for approaching strangers. Nil: a Throttle of its own with the
	// default PerSender and PerDomain limits.
	Spim *auth.Throttle
	// Connections, if set (the server's UserAgent.TransportLayer()), keeps
	// requests to the connections bindings came on: a binding whose
	// connection is gone fails at once instead of sipgo dialing its old
	// address (RFC 5626 section 5.3).
	Connections Connections
	// Listeners maps a transport ("TLS", "WSS") to the host:port of this
	// server's listener for it, as clients reach it. Calls (HandleInvite)
	// Record-Route with them, so that a dialog's later requests come back
	// through this server. Required for calls.
	Listeners map[string]string
	// Edge, if set, is the address of the Access Edge (edge.AccessEdge):
	// requests of the tenants' users to users of other domains go there,
	// to be sent on to the partner (federation). The server's client must
	// present a certificate the edge knows as an internal server's.
	Edge string
	// Node names this front end in a pool sharing the Locator's store
	// (RegistrarConfig.Node: the host:port of its pool listener). A
	// MESSAGE for a user with devices connected to other front ends goes
	// to each of those front ends once, over mutual TLS with the server's
	// certificate (which they trust as a peer, auth.Config.Peers), for it
	// to deliver to those devices; a request such a front end passed on
	// here goes only to the devices connected here. Calls and other
	// requests reach only the devices connected to this front end.
	Node string
	// Resolver resolves Edge's host name, as the server's user agent does
	// (sipgo.WithUserAgentDNSResolver). Default net.DefaultResolver.
	Resolver *net.Resolver
	// Timeout bounds a forwarded request. Default 10 s.
	Timeout time.Duration
	// RingTimeout bounds how long a call rings before the caller gets 408,
	// and a re-INVITE. Default 3 minutes.
	RingTimeout time.Duration
	Logger      *slog.Logger
}

// Connections finds a live connection; *sip.TransportLayer implements it.
type Connections interface {
	GetConnection(network, addr string) (sip.Connection, error)
}

// flowAlive reports whether a request may be sent over transport to addr:
// always when no Connections is configured, else only over a connection
// that still exists.
func flowAlive(c Connections, transport, addr string) bool {
	if c == nil {
		return true
	}
	_, err := c.GetConnection(transport, addr)
	return err == nil
}

// Router forwards requests for registered users to every device they have
// registered, over the flow each registered from: MESSAGEs (forked to all
// of them), calls (HandleInvite, staying in the dialog's path) and
// SUBSCRIBEs for event packages other than presence; with Edge set,
// requests to other domains go to the Access Edge.
//
// Composition: mount its handlers on a sipgo.Server (OnMessage,
// OnInvite, in-dialog methods with HandleInDialog, and SUBSCRIBE through
// SubscribeHandler beside the PresenceServer). Its Config
// ([RouterConfig]) takes the Authenticator, the Directory, the Registrar
// as Locator, the server's sipgo.Client, and optionally the
// VisibilityRule (blocked senders get 480) and a spim Throttle shared
// with the PresenceServer.
//
// Lifecycle: Shutdown(ctx) refuses new MESSAGEs, calls and subscriptions
// (503) while requests in flight and in-dialog requests (ACK, BYE) go on,
// and returns once none is in flight; Close stops at once. It is safe for
// concurrent use.
type Router struct {
	cfg  RouterConfig
	key  [32]byte // MACs the flow tokens in Record-Route
	edge string   // Edge with its host resolved, as sources show it

	ctx    context.Context // canceled by Close; parent of every request's
	cancel context.CancelFunc
	mu     sync.Mutex
	state  int // routerServing, routerDraining, routerClosed
	active int // requests in flight
	wg     sync.WaitGroup
}

const (
	routerServing = iota
	routerDraining
	routerClosed
)

// enter counts a request in flight, or answers it 503 once the Router is
// shutting down (in-dialog requests are still served while it drains)
// and reports false.
func (rt *Router) enter(req *sip.Request, tx sip.ServerTransaction, inDialog bool) bool {
	rt.mu.Lock()
	if rt.state == routerClosed || rt.state == routerDraining && !inDialog {
		rt.mu.Unlock()
		if !req.IsAck() {
			res := sip.NewResponseFromRequest(req, 503, "Shutting down", nil)
			res.AppendHeader(sip.NewHeader("Retry-After", storeRetryAfter))
			_ = tx.Respond(res)
		}
		return false
	}
	rt.active++
	rt.wg.Add(1) // under mu: Close sets routerClosed under mu before it waits
	rt.mu.Unlock()
	return true
}

func (rt *Router) leave() {
	rt.mu.Lock()
	rt.active--
	rt.mu.Unlock()
	rt.wg.Done()
}

// Shutdown drains the Router, as net/http's Server.Shutdown does: new
// MESSAGEs, calls and subscriptions are refused with 503 and Retry-After,
// while requests in flight (a ringing call included) and in-dialog
// requests go on. It returns nil once none is in flight, or ctx.Err() if
// ctx ends first (then call Close to cut the rest).
func (rt *Router) Shutdown(ctx context.Context) error {
	rt.mu.Lock()
	if rt.state == routerServing {
		rt.state = routerDraining
	}
	rt.mu.Unlock()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		rt.mu.Lock()
		idle := rt.active == 0
		rt.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close stops the Router at once: requests in flight are abandoned (a
// ringing call's branches are given up) and later ones refused; it
// returns when their handlers have returned, with nil.
func (rt *Router) Close() error {
	rt.mu.Lock()
	rt.state = routerClosed
	rt.mu.Unlock()
	rt.cancel()
	rt.wg.Wait()
	return nil
}

// NewRouter returns a Router, or an error naming the missing field.
func NewRouter(cfg RouterConfig) (*Router, error) {
	switch {
	case cfg.Auth == nil:
		return nil, errors.New("presence: RouterConfig.Auth is required")
	case cfg.Directory == nil:
		return nil, errors.New("presence: RouterConfig.Directory is required")
	case cfg.Locator == nil:
		return nil, errors.New("presence: RouterConfig.Locator is required")
	case cfg.Client == nil:
		return nil, errors.New("presence: RouterConfig.Client is required")
	case cfg.Policy != nil && nilRule(cfg.Policy):
		return nil, errors.New("presence: RouterConfig.Policy is a nil *PresencePolicy (leave it nil for no policy)")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultForwardTimeout
	}
	if cfg.RingTimeout == 0 {
		cfg.RingTimeout = DefaultRingTimeout
	}
	switch {
	case cfg.Timeout < 0:
		return nil, errors.New("presence: RouterConfig.Timeout must be positive")
	case cfg.RingTimeout < 0:
		return nil, errors.New("presence: RouterConfig.RingTimeout must be positive")
	}
	if cfg.Spim == nil {
		spim, err := auth.NewThrottle(auth.ThrottleConfig{})
		if err != nil {
			return nil, err
		}
		cfg.Spim = spim
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rt := &Router{cfg: cfg}
	rt.ctx, rt.cancel = context.WithCancel(context.Background())
	if cfg.Edge != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rt.edge = sipx.Resolve(ctx, cfg.Resolver, cfg.Edge)
		cancel()
	}
	_, _ = rand.Read(rt.key[:])
	return rt, nil
}

// HandleMessage is the sipgo handler for MESSAGE (RFC 3428): the message
// goes to all of the recipient's registered devices; the sender gets the
// first 2xx, or the best failure.
func (rt *Router) HandleMessage(req *sip.Request, tx sip.ServerTransaction) {
	if !rt.enter(req, tx, false) {
		return
	}
	defer rt.leave()
	id := rt.cfg.Auth.Authenticate(req, tx)
	if id == nil {
		return
	}
	_ = tx.Respond(rt.fork(req, id))
}

// targets returns the bindings a request from id to its Request-URI's user
// goes to, or the response that refuses it.
func (rt *Router) targets(ctx context.Context, req *sip.Request, id *auth.Identity) ([]Binding, *sip.Response) {
	reply := func(code int, reason string) *sip.Response { return sip.NewResponseFromRequest(req, code, reason, nil) }
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		return nil, reply(483, "Too Many Hops")
	}
	aor := addressOfRecord(req.Recipient)
	if b, res := rt.outbound(ctx, req, id, aor); b != nil || res != nil {
		return b, res
	}
	// Spim limits come first, so that neither the directory (404) nor a
	// block (480) can be probed at will by strangers. A request another
	// front end passed on was counted there.
	if id.Method != auth.MethodPool {
		if res := spimCheck(ctx, req, rt.cfg.Policy, rt.cfg.Spim, aor, id); res != nil {
			return nil, res
		}
	}
	if _, err := rt.cfg.Directory.User(ctx, aor); err != nil {
		if errors.Is(err, auth.ErrUnknownUser) {
			return nil, reply(404, "Not Found")
		}
		rt.cfg.Logger.Error("directory unavailable", "user", aor, "err", err)
		return nil, reply(500, "Directory unavailable")
	}
	if rt.cfg.Policy != nil {
		blocked, err := rt.cfg.Policy.Blocks(ctx, aor, id.URI)
		if err != nil {
			rt.cfg.Logger.Error("presence policy unavailable", "user", aor, "err", err)
			return nil, unavailable(reply, "Policy unavailable")
		}
		if blocked {
			return nil, reply(480, "Temporarily Unavailable") // the sender is not told it is blocked
		}
	}
	bindings, err := rt.cfg.Locator.Lookup(ctx, aor)
	if err != nil {
		rt.cfg.Logger.Error("location lookup failed", "user", aor, "err", err)
		return nil, unavailable(reply, "Location service unavailable")
	}
	bindings = rt.reachable(req, id, aor, bindings)
	if len(bindings) == 0 {
		return nil, reply(480, "Temporarily Unavailable")
	}
	return bindings, nil
}

// reachable returns the bindings a request can go to from this front end:
// those of devices connected here, and for a MESSAGE one binding per
// other front end holding the user's devices, addressed to the user on
// that front end's pool listener (see RouterConfig.Node).
func (rt *Router) reachable(req *sip.Request, id *auth.Identity, aor string, bindings []Binding) []Binding {
	var out []Binding
	for _, b := range bindings {
		switch {
		case !rt.onPeer(b):
			out = append(out, b)
		case id.Method == auth.MethodPool || req.Method != sip.MESSAGE:
			// Passed on by a front end already, or not a MESSAGE.
		case !slices.ContainsFunc(out, func(o Binding) bool { return o.Node == b.Node }):
			out = append(out, Binding{AOR: aor, Contact: aor, Transport: "TLS", Source: b.Node, Node: b.Node})
		}
	}
	return out
}

// onPeer reports whether b's device is connected to another front end of
// the pool.
func (rt *Router) onPeer(b Binding) bool { return b.Node != "" && b.Node != rt.cfg.Node }

// outbound returns the edge as the one binding of a request to a user of
// a domain that is not one of the tenants, when an Edge is configured.
// Only the tenants' own users federate: a federated user's request is not
// relayed to another partner.
func (rt *Router) outbound(ctx context.Context, req *sip.Request, id *auth.Identity, aor string) ([]Binding, *sip.Response) {
	if rt.cfg.Edge == "" || rt.isTenant(ctx, req.Recipient.Host) {
		return nil, nil
	}
	if id.Kind != auth.Internal && id.Kind != auth.Remote {
		return nil, sip.NewResponseFromRequest(req, 403, "Only the tenants' users reach other domains", nil)
	}
	return []Binding{{AOR: aor, Contact: aor, Transport: "TLS", Source: rt.edge}}, nil
}

// isTenant reports whether domain is one of the directory's tenants.
func (rt *Router) isTenant(ctx context.Context, domain string) bool {
	_, err := rt.cfg.Directory.Tenant(ctx, domain)
	return err == nil
}

// OutboundSubscribe returns a handler that gives SUBSCRIBEs addressed to users of
// other domains to the Router (and so to the Access Edge, with Edge set),
// and all others to h: a presence SUBSCRIBE for a federated user is the
// partner's to serve, not this server's PresenceServer.
func (rt *Router) OutboundSubscribe(h func(*sip.Request, sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if to := req.To(); rt.cfg.Edge != "" && (to == nil || !to.Params.Has("tag")) {
			ctx, cancel := context.WithTimeout(rt.ctx, rt.cfg.Timeout)
			tenant := rt.isTenant(ctx, req.Recipient.Host)
			cancel()
			if !tenant {
				rt.HandleSubscribe(req, tx)
				return
			}
		}
		h(req, tx)
	}
}

// fork sends req to every binding of its Request-URI's user and returns
// the response for the sender.
func (rt *Router) fork(req *sip.Request, id *auth.Identity) *sip.Response {
	reply := func(code int, reason string) *sip.Response { return sip.NewResponseFromRequest(req, code, reason, nil) }
	ctx, cancel := context.WithTimeout(rt.ctx, rt.cfg.Timeout)
	defer cancel()
	bindings, res := rt.targets(ctx, req, id)
	if res != nil {
		return res
	}

	results := make(chan *sip.Response, len(bindings))
	var wg sync.WaitGroup
	for _, b := range bindings {
		wg.Go(func() { results <- rt.forward(ctx, req, id, b) })
	}
	go func() { wg.Wait(); close(results) }()

	var best *sip.Response
	for res := range results {
		if res == nil {
			continue
		}
		if res.IsSuccess() {
			best = res
			break
		}
		if best == nil || betterFailure(res.StatusCode, best.StatusCode) {
			best = res
		}
	}
	if best == nil {
		return reply(480, "Temporarily Unavailable")
	}
	out := sip.NewResponseFromRequest(req, best.StatusCode, best.Reason, best.Body())
	if ct := best.ContentType(); ct != nil {
		out.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
	}
	return out
}

// strippedHeaders are removed from every forwarded request, whatever
// their case and however many there are: identities only this server may
// assert, the sender's credentials, and the sender's route (this server is
// its destination; the binding's Path is the route from here).
var strippedHeaders = append(slices.Clone(identityHeaders), "Route")

// identityHeaders must not cross this server in any request or response:
// identities only this server may assert, and credentials.
var identityHeaders = []string{"P-Asserted-Identity", "P-Preferred-Identity", "Remote-Party-ID", auth.PoolGuestHeader, auth.PoolFederatedHeader,
	"Authorization", "Proxy-Authorization"}

// stripHeaders removes every header named in strippedHeaders from req.
func stripHeaders(req *sip.Request) { sipx.RemoveHeaders(req, strippedHeaders...) }

// stripIdentity removes identity and credential headers from a message.
func stripIdentity(m sipx.Message) { sipx.RemoveHeaders(m, identityHeaders...) }

// betterFailure orders final failures per RFC 3261 section 16.7: 6xx
// first, then the lowest class.
func betterFailure(a, b int) bool {
	if (a >= 600) != (b >= 600) {
		return a >= 600
	}
	return a/100 < b/100
}

// prepare makes the copy of req that goes to binding b: its contact as
// Request-URI, the verified identity asserted, the sender's identity,
// credential and route headers removed, the binding's Path as route, over
// its flow. It fails if the flow is gone.
func (rt *Router) prepare(req *sip.Request, id *auth.Identity, b Binding) (*sip.Request, bool) {
	out := req.Clone()
	var target sip.Uri
	if err := sip.ParseUri(b.Contact, &target); err != nil {
		rt.cfg.Logger.Warn("unusable contact", "user", b.AOR, "contact", b.Contact, "err", err)
		return nil, false
	}
	out.Recipient = target
	stripHeaders(out)
	// The identity asserted to the recipient is the one this server
	// verified, never what the sender wrote (RFC 3325).
	if rt.onPeer(b) {
		auth.AssertIdentity(out, id, false) // with what a pool front end needs to know of a guest
	} else {
		out.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<"+id.URI+">"))
	}
	if mf := req.MaxForwards(); mf != nil {
		// A fresh header: sipgo's Clone shares the Max-Forwards header
		// with the original, which every fork reads.
		dec := sip.MaxForwardsHeader(mf.Val() - 1)
		out.ReplaceHeader(&dec)
	}
	for i := len(b.Path) - 1; i >= 0; i-- {
		out.PrependHeader(sip.NewHeader("Route", b.Path[i]))
	}
	out.SetTransport(b.Transport)
	out.SetDestination(b.Source)
	if b.Source == rt.edge && rt.cfg.Edge != "" {
		out.SetDestination(rt.cfg.Edge) // dialed by name, for TLS to verify it
	}
	if b.Source != rt.edge && !rt.onPeer(b) && !flowAlive(rt.cfg.Connections, b.Transport, b.Source) { // edges and front ends are dialed as needed
		rt.cfg.Logger.Info("flow gone", "user", b.AOR, "flow", b.Source)
		return nil, false
	}
	return out, true
}

// forward sends a copy of req to one binding over its flow and returns its
// final response, or nil if none came.
func (rt *Router) forward(ctx context.Context, req *sip.Request, id *auth.Identity, b Binding) *sip.Response {
	out, ok := rt.prepare(req, id, b)
	if !ok {
		return nil
	}
	tx, err := rt.cfg.Client.TransactionRequest(ctx, out, sipgo.ClientRequestAddVia)
	if err != nil {
		rt.cfg.Logger.Info("forward failed", "user", b.AOR, "flow", b.Source, "err", err)
		return nil
	}
	defer tx.Terminate()
	for {
		select {
		case res, ok := <-tx.Responses():
			if !ok {
				return nil
			}
			if res.StatusCode >= 200 {
				return res
			}
		case <-tx.Done():
			rt.cfg.Logger.Info("forward: no final response", "user", b.AOR, "flow", b.Source, "err", tx.Err())
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}
