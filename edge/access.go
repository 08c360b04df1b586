package edge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/hmactoken"
	"github.com/parleyuc/parley/internal/sipx"
)

// Connections finds a live connection; *sip.TransportLayer implements it.
type Connections interface {
	GetConnection(network, addr string) (sip.Connection, error)
}

// AccessEdgeConfig configures an AccessEdge. Every field but Throttle,
// Connections, Timeout and Logger is required.
type AccessEdgeConfig struct {
	// Federation decides which partner domains may pass.
	Federation *Federation
	// TenantAllows, if set, is each tenant's own say besides Federation:
	// a new request between a user of tenant (one of Domains) and
	// partner passes only if it reports true too (a tenant admin's
	// policy for their tenant). Requests within a dialog already begun
	// are checked against Federation alone. Nil: Federation decides
	// alone.
	TenantAllows func(tenant, partner string) bool
	// Domains are the tenants' SIP domains: partners may address requests
	// to these and nothing else (the edge is no open relay). SetDomains
	// changes them while the edge runs, as tenants come and go.
	Domains []string
	// Internal is the address of the internal server's SIP TLS listener.
	// The edge reaches it over mutual TLS with its own certificate, which
	// the internal server trusts to assert federated users
	// (auth.Config.Edges).
	Internal string
	// Listener is the address partners reach this edge at, put in the
	// edge's Record-Route.
	Listener string
	// UserAddress is the address remote and anonymous users reach this
	// edge at, put in the Path and Record-Route they see. Default: the
	// UserListener's address.
	UserAddress string
	// InternalNames are the DNS names on the internal servers'
	// certificates, and InternalCA the CA that issued them: a connection
	// to the edge presenting such a certificate is an internal server
	// sending its users' requests out to partners. (The edge also trusts
	// partners' CAs, which could issue any name: only the tenant's own CA
	// vouches for an internal server.) Empty: no outbound federation.
	InternalNames []string
	InternalCA    *x509.Certificate
	// Partners maps a partner domain to its Access Edge's address, for
	// outbound federation (SetPartners replaces them while the edge runs). A partner edge's certificate must name its
	// domain; give its address by a name the certificate carries (TLS
	// carries no name for an IP address).
	Partners map[string]string
	// DiscoverPartners finds the Access Edge of a domain not in Partners
	// in DNS, through Resolver: its _sipfederationtls._tcp SRV records,
	// else the domain itself on port 5061. Whether the domain may
	// federate at all is still the Federation policy's.
	DiscoverPartners bool
	// PartnerCAs binds partner domains to their own CAs: a certificate
	// for a domain listed here must chain to one of its CAs, whatever
	// other roots the TLS configuration trusts (one partner's CA cannot
	// vouch for another partner's domain). Domains not listed are
	// checked against the TLS configuration's roots alone.
	PartnerCAs map[string]*x509.CertPool
	// Resolver resolves the host names of Internal and Partners, as the
	// edge's user agent does (sipgo.WithUserAgentDNSResolver). Default
	// net.DefaultResolver.
	Resolver *net.Resolver
	// Client sends the edge's requests; its user agent's TLS configuration
	// presents the edge's certificate (pki.ClientTLSConfig) and it must
	// share the user agent of the server partners connect to.
	Client *sipgo.Client
	// Meetings reports whether a Request-URI is a meeting's focus: the
	// only place anonymous users may go (conference.Focus.Meeting, in a
	// closure). Nil: anonymous users are refused at the edge.
	Meetings func(uri sip.Uri) bool
	// Throttle limits requests per federated sender and domain (the spim
	// safeguard of federation), and per remote user's address and subnet.
	// Nil: one with the default limits.
	Throttle *auth.Throttle
	// Connections, if set, keeps in-dialog requests on live connections
	// (ua.TransportLayer()).
	Connections Connections
	// Timeout bounds a non-INVITE transaction through the edge; an INVITE
	// may wait longer (a meeting's lobby). Defaults 32 s and 30 min.
	Timeout, InviteTimeout time.Duration
	// ConnLimits bounds the connections of Listener and UserListener
	// (timeouts, caps per address and in all, message size), as
	// auth.LimitListener does. Zero fields take auth's defaults.
	ConnLimits auth.ConnLimits
	Logger     *slog.Logger
}

// AccessEdge is the SIP proxy at the perimeter for federation: partner
// servers connect over mutual TLS with a certificate that must name the
// domain of every user they send for; the edge applies the Federation
// policy and the per-domain throttle, asserts the verified user to the
// internal server (P-Asserted-Identity, over its own mutual TLS
// connection), Record-Routes itself so the dialog's later requests pass
// through it both ways, and keeps internal addresses out of what partners
// see. It is safe for concurrent use.
type AccessEdge struct {
	cfg AccessEdgeConfig
	key [32]byte // MACs the flow tokens in Record-Route

	mu       sync.Mutex
	peers    map[string]*tls.Conn // partner connections by remote address
	users    map[string]*tls.Conn // remote and anonymous users' connections by remote address
	userIDs  map[string]string    // the same, to a random name of each (auth.EdgeFlowHeader)
	userAddr string               // where users reach the edge (UserListener)

	internalAddr string                        // Internal resolved, as requests from it show their source
	domains      atomic.Pointer[[]string]      // the tenants' domains, normalized (SetDomains)
	partners     atomic.Pointer[partnerRoutes] // Partners and PartnerCAs, normalized (SetPartners)

	draining atomic.Bool  // Shutdown has begun
	inFlight atomic.Int64 // requests being handled, for Shutdown
	// ctx ends with Close: every request the edge relays waits for its
	// answer under it.
	ctx  context.Context
	stop context.CancelFunc
}

// resolve returns addr with its host resolved as the edge's user agent
// dials it (sipx.Resolve).
func (e *AccessEdge) resolve(addr string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return sipx.Resolve(ctx, e.cfg.Resolver, addr)
}

// NewAccessEdge returns an AccessEdge, or an error naming the missing
// field.
func NewAccessEdge(cfg AccessEdgeConfig) (*AccessEdge, error) {
	switch {
	case cfg.Federation == nil:
		return nil, errors.New("edge: AccessEdgeConfig.Federation is required")
	case len(cfg.Domains) == 0:
		return nil, errors.New("edge: AccessEdgeConfig.Domains is required")
	case cfg.Internal == "":
		return nil, errors.New("edge: AccessEdgeConfig.Internal is required")
	case cfg.Listener == "":
		return nil, errors.New("edge: AccessEdgeConfig.Listener is required")
	case cfg.Client == nil:
		return nil, errors.New("edge: AccessEdgeConfig.Client is required")
	case len(cfg.InternalNames) > 0 && cfg.InternalCA == nil:
		return nil, errors.New("edge: AccessEdgeConfig.InternalCA is required with InternalNames")
	case cfg.Timeout < 0:
		return nil, errors.New("edge: AccessEdgeConfig.Timeout must not be negative")
	case cfg.InviteTimeout < 0:
		return nil, errors.New("edge: AccessEdgeConfig.InviteTimeout must not be negative")
	}
	domains, err := normalizeDomains("edge: AccessEdgeConfig.Domains", cfg.Domains)
	if err != nil {
		return nil, err
	}
	routes, err := configuredRoutes(cfg.Partners, cfg.PartnerCAs)
	if err != nil {
		return nil, err
	}
	if _, err := auth.LimitListener(nil, cfg.ConnLimits); err != nil {
		return nil, errors.New("edge: AccessEdgeConfig." + strings.TrimPrefix(err.Error(), "auth: "))
	}
	if cfg.Throttle == nil {
		th, err := auth.NewThrottle(auth.ThrottleConfig{})
		if err != nil {
			return nil, err
		}
		cfg.Throttle = th
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 64 * sip.T1
	}
	if cfg.InviteTimeout == 0 {
		cfg.InviteTimeout = 30 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	e := &AccessEdge{cfg: cfg, peers: map[string]*tls.Conn{}, users: map[string]*tls.Conn{}, userIDs: map[string]string{}}
	e.domains.Store(&domains)
	e.partners.Store(routes)
	e.cfg.Partners, e.cfg.PartnerCAs = nil, nil // SetPartners replaces them: e.partners holds them
	e.ctx, e.stop = context.WithCancel(context.Background())
	e.internalAddr = e.resolve(cfg.Internal)
	_, _ = rand.Read(e.key[:])
	return e, nil
}

// Listener wraps the TLS listener partners connect to (configured with
// pki.MutualTLSServerConfig), so the edge knows each connection's verified
// certificate.
func (e *AccessEdge) Listener(ln net.Listener) net.Listener {
	return e.limit(&peerListener{Listener: ln, e: e, conns: e.peers})
}

// limit applies the configured connection limits (checked by
// NewAccessEdge).
func (e *AccessEdge) limit(ln net.Listener) net.Listener {
	limited, _ := auth.LimitListener(ln, e.cfg.ConnLimits)
	return limited
}

// UserListener wraps the TLS listener remote users of the tenants and
// anonymous meeting guests connect to (pki.ServerTLSConfig: no client
// certificate needed). Their requests go inside with the users'
// credentials for the internal server to check, each request on its own
// (the edge's connection carries many users); a REGISTER gets a Path, a
// dialog a Record-Route, through this edge. Users reach the edge at
// ln.Addr(), or at AccessEdgeConfig.UserAddress if set.
func (e *AccessEdge) UserListener(ln net.Listener) net.Listener {
	e.mu.Lock()
	e.userAddr = e.cfg.UserAddress
	if e.userAddr == "" {
		e.userAddr = ln.Addr().String()
	}
	e.mu.Unlock()
	return e.limit(&peerListener{Listener: ln, e: e, conns: e.users, users: true})
}

type peerListener struct {
	net.Listener
	e     *AccessEdge
	conns map[string]*tls.Conn // e.peers or e.users, guarded by e.mu
	users bool                 // conns is e.users: each connection gets a random name in e.userIDs
}

func (l *peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		_ = c.Close()
		return nil, errors.New("edge: the Access Edge takes TLS connections only")
	}
	pc := &peerConn{Conn: tc, e: l.e, conns: l.conns, users: l.users, remote: c.RemoteAddr().String()}
	var id [12]byte
	_, _ = rand.Read(id[:])
	l.e.mu.Lock()
	l.conns[pc.remote] = tc
	if l.users {
		l.e.userIDs[pc.remote] = base64.RawURLEncoding.EncodeToString(id[:])
	}
	l.e.mu.Unlock()
	return pc, nil
}

// peerConn forgets itself when it closes or its peer hangs up (sipgo 1.7
// does not always close accepted connections).
type peerConn struct {
	net.Conn
	e      *AccessEdge
	conns  map[string]*tls.Conn
	users  bool
	remote string
	once   sync.Once
}

func (c *peerConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		_ = c.Close()
	}
	return n, err
}

func (c *peerConn) Close() error {
	var err error
	c.once.Do(func() {
		c.e.mu.Lock()
		delete(c.conns, c.remote)
		if c.users {
			delete(c.e.userIDs, c.remote)
		}
		c.e.mu.Unlock()
		err = c.Conn.Close()
	})
	return err
}

// partner returns the verified certificate of the partner connection a
// request came on, or nil.
func (e *AccessEdge) partner(req *sip.Request) *x509.Certificate {
	return leaf(e.partnerChain(req))
}

// partnerChain returns the verified certificate chain the partner
// presented on the connection a request came on, or nil.
func (e *AccessEdge) partnerChain(req *sip.Request) []*x509.Certificate {
	if !strings.EqualFold(req.Transport(), "TLS") {
		return nil
	}
	e.mu.Lock()
	c := e.peers[req.Source()]
	e.mu.Unlock()
	if c == nil {
		return e.dialedChain(req.Source())
	}
	return c.ConnectionState().PeerCertificates
}

// dialedChain returns the verified certificate chain of a connection the
// edge dialed, or nil.
func (e *AccessEdge) dialedChain(addr string) []*x509.Certificate {
	if e.cfg.Connections == nil {
		return nil
	}
	c, err := e.cfg.Connections.GetConnection("TLS", addr)
	if err != nil {
		return nil
	}
	tc, ok := c.(*sip.TCPConnection)
	if !ok {
		return nil
	}
	if t, ok := tc.Conn.(*tls.Conn); ok {
		return t.ConnectionState().PeerCertificates
	}
	return nil
}

func leaf(chain []*x509.Certificate) *x509.Certificate {
	if len(chain) == 0 {
		return nil
	}
	return chain[0]
}

// internal reports whether cert is an internal server's: one of
// InternalNames, issued by InternalCA.
func (e *AccessEdge) internal(cert *x509.Certificate) bool {
	return len(e.cfg.InternalNames) > 0 && names(cert, e.cfg.InternalNames...) && cert.CheckSignatureFrom(e.cfg.InternalCA) == nil
}

// names reports whether cert names one of names.
func names(cert *x509.Certificate, names ...string) bool {
	return cert != nil && slices.ContainsFunc(cert.DNSNames, func(n string) bool {
		return slices.ContainsFunc(names, func(m string) bool { return normalize(n) == normalize(m) })
	})
}

// flow is one dialog through the edge: the partner's connection, the
// certificate it presented (inbound dialogs), the partner user the dialog
// is for, the internal server's connection, the dialog's Call-ID and the
// caller's tag, whether the caller is inside (outbound), and until when
// the token is good.
//
// For user flows partnerCert holds the random name of the user's
// connection, and routes the inside's Record-Route entries the edge hid
// from the user, as Route values to put back on the user's requests.
type flow struct {
	kind                                                                       flowKind
	partnerSource, partnerCert, partnerUser, internalSource, callID, callerTag string
	outbound                                                                   bool
	expires                                                                    int64
	routes                                                                     []string
}

// flowKind says whose flow a token names.
type flowKind string

const (
	partnerFlow flowKind = ""     // a partner's dialog
	userFlow    flowKind = "user" // a remote or anonymous user's dialog ("partner" fields: the user's connection)
	pathFlow    flowKind = "path" // a remote user's registration: requests from inside to the user's device
)

// maxDialog bounds how long a flow token opens its dialog.
const maxDialog = 24 * time.Hour

func (e *AccessEdge) sign(f flow) string {
	// Sealed, not only signed: the token goes outside and holds addresses
	// of the inside.
	return hmactoken.Seal(e.key[:], string(f.kind), f.partnerSource, f.partnerCert, f.partnerUser, f.internalSource, f.callID,
		f.callerTag, strconv.FormatBool(f.outbound), strconv.FormatInt(f.expires, 10), strings.Join(f.routes, "\x01"))
}

func (e *AccessEdge) verify(tok string) (flow, bool) {
	p, ok := hmactoken.Unseal(e.key[:], tok, 10)
	if !ok {
		return flow{}, false
	}
	exp, err := strconv.ParseInt(p[8], 10, 64)
	if err != nil || time.Now().Unix() > exp {
		return flow{}, false
	}
	var routes []string
	if p[9] != "" {
		routes = strings.Split(p[9], "\x01")
	}
	return flow{flowKind(p[0]), p[1], p[2], p[3], p[4], p[5], p[6], p[7] == "true", exp, routes}, true
}

// cancelSignal returns a channel closed when req, an INVITE, is
// CANCELed (nil for other methods), or false if its transaction has
// already ended.
func cancelSignal(req *sip.Request, tx sip.ServerTransaction) (<-chan struct{}, bool) {
	if !req.IsInvite() {
		return nil, true
	}
	canceled := make(chan struct{})
	var once sync.Once
	return canceled, tx.OnCancel(func(*sip.Request) { once.Do(func() { close(canceled) }) })
}

// recordRoute is the edge's Record-Route (or Path) value for a flow at
// addr.
func (e *AccessEdge) recordRoute(addr string, f flow) string {
	return "<sip:" + addr + ";transport=tls;lr;ft=" + e.sign(f) + ">"
}

// fingerprint names a certificate in a flow token.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// ourFlow returns the flow token of req's top Route if it is this edge's.
func (e *AccessEdge) ourFlow(req *sip.Request) (flow, bool) {
	r := req.Route()
	if r == nil {
		return flow{}, false
	}
	return e.flowIn(r.Address)
}

// flowIn returns the flow whose token u carries, if it is this edge's.
func (e *AccessEdge) flowIn(u sip.Uri) (flow, bool) {
	tok, ok := u.UriParams.Get("ft")
	if !ok {
		return flow{}, false
	}
	return e.verify(tok)
}

// dropOwnRoutes removes the Route entries at the top of out that are this
// edge's: it is done with them.
func (e *AccessEdge) dropOwnRoutes(out *sip.Request) {
	for {
		if _, ours := e.ourFlow(out); !ours {
			return
		}
		out.RemoveHeader("Route")
	}
}

// identityHeaders are removed from everything that crosses the edge: a
// partner asserts nothing to the inside, and the inside's assertions and
// credentials are not for partners.
var (
	assertionHeaders  = []string{"P-Asserted-Identity", "P-Preferred-Identity", "Remote-Party-ID"}
	credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Proxy-Authenticate", "WWW-Authenticate"}
)

// strip removes assertions and credentials: what crosses the edge
// between partners and the inside.
func strip(m sipx.Message) {
	sipx.RemoveHeaders(m, assertionHeaders...)
	sipx.RemoveHeaders(m, credentialHeaders...)
}

func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	if !req.IsAck() {
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
	}
}

// HandleRequest is the sipgo handler for every method: requests within a
// dialog the edge Record-Routed go to the dialog's other side; new
// requests from partners go to the internal server.
func (e *AccessEdge) HandleRequest(req *sip.Request, tx sip.ServerTransaction) {
	e.inFlight.Add(1)
	defer e.inFlight.Add(-1)
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		respond(tx, req, 483, "Too Many Hops")
		return
	}
	if f, ok := e.ourFlow(req); ok {
		if f.kind == pathFlow {
			e.toUser(req, tx, f)
			return
		}
		e.inDialog(req, tx, f)
		return
	}
	if req.Method == sip.CANCEL || req.IsAck() {
		return // a CANCEL matches its INVITE's transaction; a stray ACK is dropped
	}
	if e.refuseWhileDraining(req, tx) {
		return
	}
	if e.fromUserConn(req) {
		e.fromUser(req, tx)
		return
	}
	if e.internal(e.partner(req)) {
		e.outbound(req, tx)
		return
	}
	e.fromPartner(req, tx)
}

// outbound sends a request of a tenant user, from an internal server, to
// the partner domain it is addressed to.
func (e *AccessEdge) outbound(req *sip.Request, tx sip.ServerTransaction) {
	canceled, ok := cancelSignal(req, tx)
	if !ok {
		return
	}
	// The internal server asserts the user it authenticated.
	pai := req.GetHeader("P-Asserted-Identity")
	from := req.From()
	var user sip.Uri
	if pai == nil || from == nil || func() error { _, err := sip.ParseAddressValue(pai.Value(), &user, nil); return err }() != nil {
		respond(tx, req, 403, "No asserted identity")
		return
	}
	sender := "sip:" + user.User + "@" + normalize(user.Host)
	if !e.ours(user.Host) || "sip:"+from.Address.User+"@"+normalize(from.Address.Host) != sender {
		respond(tx, req, 403, "Only the tenants' users federate out")
		return
	}
	domain := normalize(req.Recipient.Host)
	switch {
	case e.ours(domain):
		respond(tx, req, 482, "Loop Detected")
		return
	case !e.cfg.Federation.Allowed(domain):
		respond(tx, req, 403, "Federation with this domain is blocked")
		return
	case !e.tenantAllows(user.Host, domain):
		respond(tx, req, 403, "Federation with this domain is blocked for this tenant")
		return
	}
	addr, err := e.partnerEdge(domain)
	switch {
	case errors.Is(err, errNoPartnerEdge):
		respond(tx, req, 404, "No route to this domain")
		return
	case err != nil:
		e.cfg.Logger.Warn("partner edge not found in DNS", "domain", domain, "err", err)
		res := sip.NewResponseFromRequest(req, 503, "Partner Edge Not Found", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", "30"))
		_ = tx.Respond(res)
		return
	}
	partnerAddr := e.resolve(addr) // as the partner's requests show their source
	out := req.Clone()
	sipx.RemoveHeaders(out, "Route")
	strip(out)
	decrement(out, req)
	e.hideContact(out, e.cfg.Listener)
	if dialogCreating(req) {
		tag, _ := from.Params.Get("tag")
		f := flow{partnerSource: partnerAddr, partnerUser: "sip:" + req.Recipient.User + "@" + domain, internalSource: req.Source(),
			callID: req.CallID().Value(), callerTag: tag, outbound: true, expires: time.Now().Add(maxDialog).Unix()}
		out.PrependHeader(sip.NewHeader("Record-Route", e.recordRoute(e.cfg.Listener, f)))
	}
	out.SetTransport("TLS")
	out.SetDestination(addr)
	e.relayTo(req, tx, out, relayOptions{canceled: canceled, domain: domain, addr: partnerAddr})
}

// fromPartner checks a new request from a partner and forwards it inside.
func (e *AccessEdge) fromPartner(req *sip.Request, tx sip.ServerTransaction) {
	canceled, ok := cancelSignal(req, tx)
	if !ok {
		return
	}
	cert, sender, ok := e.admitPartner(req, tx)
	if !ok {
		return
	}
	from := req.From()
	if !e.ours(req.Recipient.Host) {
		respond(tx, req, 404, "Not a domain of this edge")
		return
	}
	if _, partner, _ := strings.Cut(sender, "@"); !e.tenantAllows(req.Recipient.Host, partner) {
		respond(tx, req, 403, "Federation with this domain is blocked for this tenant")
		return
	}
	out := req.Clone()
	sipx.RemoveHeaders(out, "Route") // routes to this edge; inside, the internal server is the last hop
	strip(out)
	out.AppendHeader(sip.NewHeader("P-Asserted-Identity", assertion(from.DisplayName, sender)))
	decrement(out, req)
	if dialogCreating(req) {
		tag, _ := from.Params.Get("tag")
		f := flow{partnerSource: req.Source(), partnerCert: fingerprint(cert), partnerUser: sender, internalSource: e.internalAddr,
			callID: req.CallID().Value(), callerTag: tag, expires: time.Now().Add(maxDialog).Unix()}
		out.PrependHeader(sip.NewHeader("Record-Route", e.recordRoute(e.cfg.Listener, f)))
	}
	out.SetTransport("TLS")
	out.SetDestination(e.cfg.Internal)
	e.relay(req, tx, out, canceled)
}

// tenantAllows reports whether tenant's own policy lets it federate with
// partner (AccessEdgeConfig.TenantAllows).
func (e *AccessEdge) tenantAllows(tenant, partner string) bool {
	return e.cfg.TenantAllows == nil || e.cfg.TenantAllows(normalize(tenant), normalize(partner))
}

// admitPartner applies the federation checks to a request from a partner
// connection, answering it if they fail: the connection's certificate
// must name the sender's domain, the federation policy allow it, and the
// throttle let it through. It returns the certificate and the sender's
// canonical address.
func (e *AccessEdge) admitPartner(req *sip.Request, tx sip.ServerTransaction) (*x509.Certificate, string, bool) {
	chain := e.partnerChain(req)
	cert := leaf(chain)
	if cert == nil {
		respond(tx, req, 403, "Partners connect over mutual TLS")
		return nil, "", false
	}
	from := req.From()
	if from == nil || from.Address.User == "" {
		respond(tx, req, 400, "Missing From")
		return nil, "", false
	}
	domain := normalize(from.Address.Host)
	if !slices.ContainsFunc(cert.DNSNames, func(n string) bool { return normalize(n) == domain }) {
		e.cfg.Logger.Warn("partner certificate does not name the sender's domain", "domain", domain, "certificate", cert.DNSNames)
		respond(tx, req, 403, "Certificate does not name the sender's domain")
		return nil, "", false
	}
	if !e.issuedFor(chain, domain) {
		e.cfg.Logger.Warn("partner certificate not issued by the partner's CA", "domain", domain, "issuer", cert.Issuer.String())
		respond(tx, req, 403, "Certificate not issued by this partner's CA")
		return nil, "", false
	}
	if !e.cfg.Federation.Allowed(domain) {
		respond(tx, req, 403, "Federation with this domain is blocked")
		return nil, "", false
	}
	sender := "sip:" + from.Address.User + "@" + domain
	if ok, wait := e.cfg.Throttle.AllowSender(sender, domain); !ok {
		res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", retryAfter(wait)))
		_ = tx.Respond(res)
		return nil, "", false
	}
	return cert, sender, true
}

// dialogCreating reports whether req starts a dialog the edge must stay
// in.
func dialogCreating(req *sip.Request) bool {
	switch req.Method {
	case sip.INVITE, sip.SUBSCRIBE, sip.REFER:
		to := req.To()
		return to == nil || !to.Params.Has("tag")
	}
	return false
}

func assertion(name, uri string) string {
	if name == "" {
		return "<" + uri + ">"
	}
	return `"` + strings.ReplaceAll(name, `"`, "") + `" <` + uri + ">"
}

func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

func decrement(out, req *sip.Request) {
	if mf := req.MaxForwards(); mf != nil {
		dec := sip.MaxForwardsHeader(mf.Val() - 1)
		out.ReplaceHeader(&dec)
	} else {
		mf := sip.MaxForwardsHeader(70)
		out.AppendHeader(&mf)
	}
}
