package presence

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/hooks"
)

// Authenticator authenticates a SIP request, answering it (challenge or
// refusal) and returning nil when it may not be served.
// *auth.Authenticator implements it.
type Authenticator interface {
	Authenticate(req *sip.Request, tx sip.ServerTransaction) *auth.Identity
}

// ConnectionTracker is implemented by an Authenticator that keeps track of
// the connections requests arrive on, as *auth.Authenticator does (with
// its Listener). A Registrar whose Auth has it registers itself, so a
// device whose connection closes is signed out at once.
type ConnectionTracker interface {
	OnConnectionClose(f func(transport, remote string)) (remove func())
}

// RegistrationChange tells that a user signed a device in or out.
type RegistrationChange struct {
	// AOR is the user's address of record.
	AOR string
	// Closed is the connection whose closing signed the device out (what
	// the device published over it is to go too); nil for a REGISTER.
	Closed *Flow
	// SignedOut is the connection of a REGISTER that removed the last
	// binding made over it: the device signed out, and what it published
	// over that connection goes too. Nil otherwise.
	SignedOut *Flow
}

// Registrations is what the PresenceServer needs of the registrar: the
// user's bindings (a user with one but nothing published is Available),
// and word when they sign in or out. *Registrar implements it.
type Registrations interface {
	Locator
	// OnChange registers f, to be called after a device signs in or out,
	// and returns the function that removes it.
	OnChange(f func(RegistrationChange)) (remove func())
}

// Defaults applied to zero [RegistrarConfig] fields.
const (
	DefaultMinExpires  = 60 * time.Second
	DefaultMaxExpires  = time.Hour
	DefaultExpires     = time.Hour
	DefaultMaxBindings = 10
	storeDeadline      = 5 * time.Second // bounds one read or write of a store
)

// RegistrarConfig configures a [Registrar].
type RegistrarConfig struct {
	// Auth authenticates every REGISTER. Required.
	Auth Authenticator
	// Store keeps the bindings. Default: a MemoryLocation.
	Store LocationStore
	// MinExpires, MaxExpires and DefaultExpires bound registration
	// lifetimes: shorter than MinExpires gets 423 Interval Too Brief,
	// longer is cut to MaxExpires, none asked gets DefaultExpires.
	// Defaults 60 s, 1 h, 1 h.
	MinExpires, MaxExpires, DefaultExpires time.Duration
	// MaxBindings bounds the devices one AOR may register. Default 10.
	MaxBindings int
	// Node names this front end in a pool sharing Store: the host:port of
	// its pool listener, where the other front ends send requests for the
	// devices connected here (see RouterConfig.Node). Empty on a server of
	// its own.
	Node   string
	Logger *slog.Logger
	Now    func() time.Time
}

// Registrar is the SIP registrar and location service (RFC 3261 section
// 10): devices REGISTER their contacts over TLS, after the Authenticator
// has established who they are, and the Registrar keeps each binding with
// the connection (flow) it came on, so requests to the user go back over
// that connection.
//
// Composition: mount HandleRegister on a sipgo.Server (srv.OnRegister).
// Give the Registrar to RouterConfig.Locator, so MESSAGEs and calls reach
// the user's devices, and to PresenceServerConfig.Registrar, so watchers
// see the user sign in and out. Its Config ([RegistrarConfig]) takes the
// Authenticator (required), the LocationStore (memory by default;
// store.OpenBolt or Redis for persistence and pools) and the expiry
// bounds.
//
// Hooks: OnChange(fn) adds fn, called after a device signs in or out,
// and returns its remove function; the PresenceServer subscribes itself.
// When Auth is an *auth.Authenticator (a [ConnectionTracker]) the
// Registrar registers itself for its closed connections: a device whose
// connection closes, or whose user an admin signs out, is unregistered at
// once. An application tracking connections itself calls FlowClosed.
//
// It is safe for concurrent use: REGISTERs for one address of record are
// applied one at a time, so the device limit and the CSeq order hold
// however they race. (A store shared by several servers must enforce them
// itself.) Close removes its hook from the Authenticator.
type Registrar struct {
	cfg         RegistrarConfig
	locks       [64]sync.Mutex // by hash of the AOR
	onChange    hooks.List[func(RegistrationChange)]
	removeClose func()
	ctx         context.Context // canceled by Close; parent of every store call
	cancel      context.CancelFunc
	untracked   sync.Once // warns once of a listener the Authenticator does not track
}

var _ Registrations = (*Registrar)(nil)

// OnChange registers f to be called after a device signs in or out (a
// binding added or removed by a REGISTER, not a refresh; or bindings
// dropped because their connection closed), and returns the function that
// removes it. A PresenceServer given this Registrar subscribes itself. f
// runs on the goroutine of the REGISTER or of the closing connection.
func (r *Registrar) OnChange(f func(RegistrationChange)) (remove func()) {
	return r.onChange.Add(f)
}

func (r *Registrar) changed(c RegistrationChange) {
	for _, f := range r.onChange.All() {
		f(c)
	}
}

// Close removes the Registrar's hook from the Authenticator's connection
// tracking and cancels the store calls in flight (their REGISTERs get
// 503). Bindings already stored stay, for the next start or the pool's
// other front ends; a Registrar holds nothing else to drain, so it has
// no Shutdown. It returns nil.
func (r *Registrar) Close() error {
	r.removeClose()
	r.cancel()
	return nil
}

func (r *Registrar) lock(aor string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(aor))
	return &r.locks[h.Sum32()%uint32(len(r.locks))]
}

// NewRegistrar returns a Registrar, or an error naming the invalid field.
func NewRegistrar(cfg RegistrarConfig) (*Registrar, error) {
	if cfg.Auth == nil {
		return nil, errors.New("presence: RegistrarConfig.Auth is required")
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryLocation()
	}
	if cfg.MinExpires == 0 {
		cfg.MinExpires = DefaultMinExpires
	}
	if cfg.MaxExpires == 0 {
		cfg.MaxExpires = DefaultMaxExpires
	}
	if cfg.DefaultExpires == 0 {
		cfg.DefaultExpires = DefaultExpires
	}
	if cfg.MaxBindings == 0 {
		cfg.MaxBindings = DefaultMaxBindings
	}
	switch {
	case cfg.MinExpires < time.Second:
		return nil, errors.New("presence: RegistrarConfig.MinExpires must be at least 1 s")
	case cfg.MaxExpires < cfg.MinExpires:
		return nil, errors.New("presence: RegistrarConfig.MaxExpires must not be below MinExpires")
	case cfg.DefaultExpires < cfg.MinExpires || cfg.DefaultExpires > cfg.MaxExpires:
		return nil, errors.New("presence: RegistrarConfig.DefaultExpires must lie between MinExpires and MaxExpires")
	case cfg.MaxBindings < 1:
		return nil, errors.New("presence: RegistrarConfig.MaxBindings must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Registrar{cfg: cfg, removeClose: func() {}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if ct, ok := cfg.Auth.(ConnectionTracker); ok {
		r.removeClose = ct.OnConnectionClose(func(transport, remote string) {
			ctx, cancel := context.WithTimeout(r.ctx, storeDeadline)
			defer cancel()
			r.FlowClosed(ctx, transport, remote)
		})
	}
	return r, nil
}

// FlowClosed drops the bindings registered over a connection that has
// closed, tells the OnChange hooks, and returns the AORs that lost one.
// The Registrar calls it itself when its Auth is a [ConnectionTracker];
// an application that tracks connections its own way calls it.
func (r *Registrar) FlowClosed(ctx context.Context, transport, source string) []string {
	flow := Flow{Node: r.cfg.Node, Transport: strings.ToUpper(transport), Source: source}
	aors, err := r.cfg.Store.RemoveFlow(ctx, flow)
	if err != nil {
		r.cfg.Logger.Error("location store: removing a closed flow failed", "flow", source, "err", err)
		return nil
	}
	for _, aor := range aors {
		r.cfg.Logger.Info("unregistered: connection closed", "user", aor, "peer", source)
		r.changed(RegistrationChange{AOR: aor, Closed: &flow})
	}
	return aors
}

// ErrNotPooled is returned by RemoveNode when the Registrar's store is
// not a NodeStore.
var ErrNotPooled = errors.New("presence: the location store does not know the pool's front ends (not a NodeStore)")

// RemoveNode drops the bindings the front end node of the pool held,
// once it is known to be dead (its heartbeat lapsed), and tells the
// OnChange hooks as if each of its flows had closed: what the devices
// published goes, and their watchers on every front end see them
// offline. It returns the AORs that lost a binding.
func (r *Registrar) RemoveNode(ctx context.Context, node string) ([]string, error) {
	ns, ok := r.cfg.Store.(NodeStore)
	if !ok {
		return nil, ErrNotPooled
	}
	lost, err := ns.RemoveNode(ctx, node)
	var aors []string
	for flow, users := range lost {
		for _, aor := range users {
			r.cfg.Logger.Info("unregistered: its front end died", "user", aor, "node", node, "peer", flow.Source)
			r.changed(RegistrationChange{AOR: aor, Closed: &flow})
			aors = append(aors, aor)
		}
	}
	if err != nil {
		return aors, fmt.Errorf("%w: %w", ErrStore, err)
	}
	return aors, nil
}

// Lookup returns the live bindings of an address of record.
func (r *Registrar) Lookup(ctx context.Context, aor string) ([]Binding, error) {
	bs, err := r.cfg.Store.Bindings(ctx, aor, r.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	return bs, nil
}

// HandleRegister is the sipgo handler for REGISTER.
func (r *Registrar) HandleRegister(req *sip.Request, tx sip.ServerTransaction) {
	id := r.cfg.Auth.Authenticate(req, tx)
	if id == nil {
		return
	}
	res := r.register(req, id)
	_ = tx.Respond(res)
}

// register applies a REGISTER from an authenticated user (RFC 3261
// section 10.3) and returns the response.
func (r *Registrar) register(req *sip.Request, id *auth.Identity) *sip.Response {
	reply := func(code int, reason string) *sip.Response { return sip.NewResponseFromRequest(req, code, reason, nil) }
	to := req.To()
	if to == nil {
		return reply(400, "Missing To")
	}
	aor := addressOfRecord(to.Address)
	if aor != canonicalAOR(id.URI) {
		// A user registers their own address, nobody else's.
		return reply(403, "You may only register your own address")
	}
	if tp := strings.ToUpper(req.Transport()); tp != "TLS" && tp != "WSS" {
		// Requests to the user go back over the flow it registered from:
		// that must be a connection this server accepted and verified.
		return reply(403, "Registration needs TLS")
	}
	if t, ok := r.cfg.Auth.(interface {
		Tracks(transport, remote string) bool
	}); ok && !t.Tracks(req.Transport(), req.Source()) {
		r.untracked.Do(func() {
			r.cfg.Logger.Error("REGISTER over a connection the Authenticator does not track: wrap the SIP listener with "+
				"Authenticator.Listener (WSSListener), or a device whose connection drops stays signed in until it expires",
				"peer", req.Source(), "transport", req.Transport())
		})
	}
	callID := req.CallID()
	cseq := req.CSeq()
	if callID == nil || cseq == nil {
		return reply(400, "Missing Call-ID or CSeq")
	}
	headerExpires := -1
	if h := req.GetHeader("Expires"); h != nil {
		v, err := parseExpires(h.Value(), r.cfg.MaxExpires)
		if err != nil {
			return reply(400, "Bad Expires")
		}
		headerExpires = v
	}

	ctx, cancel := context.WithTimeout(r.ctx, storeDeadline)
	defer cancel()
	mu := r.lock(aor)
	mu.Lock()
	defer mu.Unlock()
	now := r.cfg.Now()
	current, err := r.cfg.Store.Bindings(ctx, aor, now)
	if err != nil {
		r.cfg.Logger.Error("location store read failed", "user", aor, "err", err)
		return unavailable(reply, "Location service unavailable")
	}

	contacts := contactHeaders(req)
	var put []Binding
	var remove []string
	removeAll := false
	for _, c := range contacts {
		if c.Address.Wildcard {
			// "Contact: *" removes every binding, and must come alone with
			// Expires: 0 (RFC 3261 section 10.2.2).
			if len(contacts) != 1 || headerExpires != 0 {
				return reply(400, "Contact: * needs Expires: 0 and no other contact")
			}
			removeAll = true
			break
		}
		b, expires, err := r.binding(req, c, aor, headerExpires, now)
		if err != nil {
			return reply(400, err.Error())
		}
		if expires > 0 && expires < r.cfg.MinExpires {
			res := reply(423, "Interval Too Brief")
			res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(int(r.cfg.MinExpires/time.Second))))
			return res
		}
		if old := findBinding(current, b.Key()); old != nil && old.CallID == b.CallID && b.CSeq <= old.CSeq {
			// RFC 3261 section 10.3 step 7: an out-of-order REGISTER.
			return reply(500, "Out of order REGISTER")
		}
		if expires == 0 {
			remove = append(remove, b.Key())
		} else {
			put = append(put, b)
		}
	}
	if len(put) > 0 && bindingsAfter(current, put, remove, removeAll) > r.cfg.MaxBindings {
		return reply(403, "Too many registered devices")
	}
	if len(put) > 0 || len(remove) > 0 || removeAll {
		if err := r.cfg.Store.Update(ctx, aor, put, remove, removeAll); err != nil {
			r.cfg.Logger.Error("location store write failed", "user", aor, "err", err)
			return unavailable(reply, "Location service unavailable")
		}
		before := len(current)
		current = ApplyUpdate(current, put, remove, removeAll) // the response needs no second read of the store
		level := slog.LevelDebug                               // a refresh
		if len(current) != before || len(remove) > 0 || removeAll {
			level = slog.LevelInfo
		}
		r.cfg.Logger.Log(ctx, level, "registered", "user", aor, "bindings", len(current), "peer", req.Source())
		if level == slog.LevelInfo {
			change := RegistrationChange{AOR: aor}
			if len(remove) > 0 || removeAll {
				flow := Flow{Transport: strings.ToUpper(req.Transport()), Source: req.Source()}
				if !slices.ContainsFunc(current, func(b Binding) bool {
					return strings.EqualFold(b.Transport, flow.Transport) && b.Source == flow.Source
				}) {
					change.SignedOut = &flow
				}
			}
			r.changed(change)
		}
	}
	return r.okResponse(req, current, now)
}

// binding builds the binding one Contact asks for, with its expiry.
func (r *Registrar) binding(req *sip.Request, c *sip.ContactHeader, aor string, headerExpires int, now time.Time) (Binding, time.Duration, error) {
	secs := headerExpires
	if v, ok := c.Params.Get("expires"); ok {
		n, err := parseExpires(v, r.cfg.MaxExpires)
		if err != nil {
			return Binding{}, 0, errors.New("bad expires parameter")
		}
		secs = n
	}
	expires := r.cfg.DefaultExpires
	if secs >= 0 {
		expires = time.Duration(secs) * time.Second
	}
	expires = min(expires, r.cfg.MaxExpires)
	b := Binding{
		AOR: aor, Contact: c.Address.String(), CallID: req.CallID().Value(), CSeq: req.CSeq().SeqNo,
		Expires: now.Add(expires), Transport: strings.ToUpper(req.Transport()), Source: req.Source(), Node: r.cfg.Node,
	}
	if inst, ok := c.Params.Get("+sip.instance"); ok {
		b.Instance = strings.Trim(inst, `"<>`)
		if v, ok := c.Params.Get("reg-id"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return Binding{}, 0, errors.New("bad reg-id")
			}
			b.RegID = n
		}
	}
	for _, h := range req.GetHeaders("Path") {
		for _, p := range strings.Split(h.Value(), ",") {
			if p = strings.TrimSpace(p); p != "" {
				b.Path = append(b.Path, p)
			}
		}
	}
	// A store keeps bindings as text: what is not UTF-8 would come back
	// changed, and the device's next refresh would be another binding.
	if !utf8.ValidString(b.Key()) || !utf8.ValidString(b.CallID) || slices.ContainsFunc(b.Path, func(p string) bool { return !utf8.ValidString(p) }) {
		return Binding{}, 0, errors.New("contact, instance, Call-ID or Path not UTF-8")
	}
	if h := req.GetHeader("User-Agent"); h != nil {
		b.UserAgent = h.Value()
	}
	return b, expires, nil
}

// okResponse is the 200 OK listing every current binding with its
// remaining lifetime (RFC 3261 section 10.3 step 8).
func (r *Registrar) okResponse(req *sip.Request, bindings []Binding, now time.Time) *sip.Response {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	outbound := false
	for _, b := range bindings {
		left := int(b.Expires.Sub(now).Round(time.Second) / time.Second)
		res.AppendHeader(sip.NewHeader("Contact", "<"+b.Contact+">;expires="+strconv.Itoa(max(left, 1))))
		outbound = outbound || b.Instance != ""
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(time.RFC1123)))
	if supports(req, "path") {
		for _, h := range req.GetHeaders("Path") {
			res.AppendHeader(sip.NewHeader("Path", h.Value()))
		}
	}
	if outbound && supports(req, "outbound") {
		res.AppendHeader(sip.NewHeader("Require", "outbound"))
	}
	res.AppendHeader(sip.NewHeader("Supported", "path, outbound"))
	return res
}

// parseExpires reads an expiry in seconds, capped at max before it can
// overflow a time.Duration.
func parseExpires(v string, max time.Duration) (int, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0, err
	}
	return int(min(n, uint64(max/time.Second))), nil
}

func supports(req *sip.Request, option string) bool {
	for _, h := range req.GetHeaders("Supported") {
		for _, o := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(o), option) {
				return true
			}
		}
	}
	return false
}

func contactHeaders(req *sip.Request) []*sip.ContactHeader {
	var out []*sip.ContactHeader
	for _, h := range req.GetHeaders("Contact") {
		if c, ok := h.(*sip.ContactHeader); ok {
			out = append(out, c)
		}
	}
	return out
}

// bindingsAfter counts the distinct bindings an update would leave.
func bindingsAfter(current, put []Binding, remove []string, removeAll bool) int {
	keys := make(map[string]bool)
	if !removeAll {
		for _, b := range current {
			keys[b.Key()] = true
		}
	}
	for _, k := range remove {
		delete(keys, k)
	}
	for _, b := range put {
		keys[b.Key()] = true
	}
	return len(keys)
}

func findBinding(bs []Binding, key string) *Binding {
	i := slices.IndexFunc(bs, func(b Binding) bool { return b.Key() == key })
	if i < 0 {
		return nil
	}
	return &bs[i]
}

// addressOfRecord is the canonical AOR of a URI (auth.CanonicalAOR).
func addressOfRecord(u sip.Uri) string {
	return canonicalAOR("sip:" + u.User + "@" + u.Host)
}

// storeRetryAfter is what a client is told to wait when the location
// store cannot be reached.
const storeRetryAfter = "5"

// unavailable answers a request a store failed (the location service,
// the publications, the policies): 503 with Retry-After, a condition the
// client retries (RFC 3261 section 21.5.4), with what is stored as it was.
func unavailable(reply func(int, string) *sip.Response, reason string) *sip.Response {
	res := reply(503, reason)
	res.AppendHeader(sip.NewHeader("Retry-After", storeRetryAfter))
	return res
}
