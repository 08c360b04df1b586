package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

// Defaults applied to zero [PresenceServerConfig] fields.
const (
	DefaultPresenceExpires    = time.Hour
	DefaultPresenceMinExpires = 60 * time.Second
	// notifySenders bounds the NOTIFYs in flight at once; notifyTimeout
	// how long one waits for its answer.
	notifySenders = 256
	notifyTimeout = 5 * time.Second
	pidfType      = "application/pidf+xml"
)

// errNoPublication: a PUBLISH's SIP-If-Match names no live publication.
var errNoPublication = errors.New("presence: no such publication")

// PresenceServerConfig configures a [PresenceServer].
type PresenceServerConfig struct {
	Auth      Authenticator  // required
	Directory auth.Directory // presentities, and their personal data. Required.
	// Policy decides who sees what: a *PresencePolicy for the reference
	// text's rule, or the application's own VisibilityRule. Required. The
	// server subscribes to its OnChange, so watchers see a change at once.
	Policy VisibilityRule
	// Registrar tells whether a presentity without publications is signed
	// in (shown Available) or not (Offline), and when that changes: the
	// server subscribes to its OnChange, so watchers see a device sign in
	// or out at once, and a device whose connection closed loses what it
	// published over it. A *Registrar. Required.
	Registrar Registrations
	// Client sends NOTIFYs over the watchers' own connections; it must
	// share the user agent of the server they connect to. Required.
	Client *sipgo.Client
	// Spim limits new subscriptions to users who do not have the watcher
	// as a contact, per watcher and per federated domain. Share it with
	// the Router (see RouterConfig.Spim). Nil: a Throttle of its own with
	// the default PerSender and PerDomain limits.
	Spim *auth.Throttle
	// MinExpires and MaxExpires bound publications and subscriptions.
	// Defaults 60 s and 1 h.
	MinExpires, MaxExpires time.Duration
	// MaxWatcherSubscriptions bounds the subscriptions one watcher may
	// hold (default 200); MaxPresentityWatchers the subscriptions to one
	// presentity (default 50,000); MaxPublications the devices'
	// publications kept per user, the oldest dropped first (default 16).
	MaxWatcherSubscriptions, MaxPresentityWatchers, MaxPublications int
	// Connections, if set, sends NOTIFYs only over the watcher's existing
	// connection; a subscription whose connection is gone is dropped (see
	// RouterConfig.Connections).
	Connections Connections
	// Publications keeps the devices' publications. Default: a
	// MemoryPublications. Front ends of a pool share one, and a Feed.
	Publications PublicationStore
	// Feed, if set, carries presence changes between the front ends of a
	// pool: this server announces each change it makes, and sends its
	// watchers fresh views when another announces one.
	Feed Feed
	// Contact is the SIP URI of this server put in NOTIFYs and responses,
	// e.g. "sips:sip.example.test". Default: the presentity's address.
	Contact string
	Logger  *slog.Logger
	Now     func() time.Time
}

// PresenceServer handles PUBLISH (RFC 3903) and SUBSCRIBE/NOTIFY for the
// presence event (RFC 6665, RFC 3856). It aggregates a user's devices'
// publications into one view (the most demanding state wins; a user
// signed in with nothing published is Available), and sends each watcher
// the part of it the VisibilityRule lets it see, again whenever the
// state, the rule or the user's registrations change.
//
// Composition: mount HandlePublish (srv.OnPublish) and HandleSubscribe
// (srv.OnSubscribe, through SubscribeHandler to leave other event
// packages to the Router) on the sipgo.Server whose user agent also made
// Config.Client, so NOTIFYs go out over the watchers' own connections.
// Its Config ([PresenceServerConfig]) takes the Authenticator, the
// Directory, the VisibilityRule (a *PresencePolicy, or the application's
// own), the *Registrar, the client, and for a pool the shared
// PublicationStore and Feed.
//
// Hooks: none to wire. The server subscribes itself to the rule's and the
// Registrar's OnChange (and the Registrar to the Authenticator's closed
// connections), so watchers follow policy changes, sign-in, sign-out and
// dropped connections; call Changed when a user's directory data changes.
//
// Lifecycle: Shutdown(ctx) drains (a final NOTIFY to every watcher),
// Close stops at once; both remove its hooks. It is safe for concurrent
// use.
type PresenceServer struct {
	cfg PresenceServerConfig

	mu        sync.Mutex
	subs      map[string]*subscription // dialog ID -> subscription
	byPres    map[string]map[string]*subscription
	byWatcher map[string]int       // subscriptions per watcher
	snaps     map[string]*snapshot // presentity -> the latest reading, while it has watchers
	seq       uint64               // counts readings begun

	removeHooks func() // from the Policy and the Registrar
	draining    bool   // Shutdown has begun: no new subscriptions or publications (under mu)
	senders     int    // NOTIFY senders running (under mu)

	sends  chan struct{} // semaphore for NOTIFYs in flight
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type subscription struct {
	id         string
	presentity string
	watcher    *auth.Identity
	target     sip.Uri // the watcher's Contact
	callID     string
	remoteTag  string   // the watcher's From tag
	localTag   string   // our To tag
	routeSet   []string // the SUBSCRIBE's Record-Route, for NOTIFYs (RFC 3261 section 12.1.1)

	// Guarded by PresenceServer.mu.
	transport  string // the flow of the latest SUBSCRIBE
	source     string
	expires    time.Time
	cseq       uint32
	sending    bool     // a NOTIFY sender owns the subscription
	dirty      bool     // the state changed while it was sending
	mustSend   bool     // the next NOTIFY goes out even if the view is unchanged
	lastBody   [32]byte // hash of the last body sent
	terminated string   // why it ends: "terminated", "deactivated", "rejected"; "sent" once the final NOTIFY is
}

// snapshot is what every watcher's view of one presentity is made from,
// read from the stores once per change rather than once per watcher.
type snapshot struct {
	seq  uint64 // when the reading began
	full *Presence
	// policy is the presentity's settings when the rule is our own
	// *PresencePolicy, read once for all its watchers; nil for another
	// rule, which is asked per watcher.
	policy *UserPolicy
}

// NewPresenceServer returns a PresenceServer and starts its expiry timer,
// or returns an error naming the missing field.
func NewPresenceServer(cfg PresenceServerConfig) (*PresenceServer, error) {
	switch {
	case cfg.Auth == nil:
		return nil, errors.New("presence: PresenceServerConfig.Auth is required")
	case cfg.Directory == nil:
		return nil, errors.New("presence: PresenceServerConfig.Directory is required")
	case nilRule(cfg.Policy):
		return nil, errors.New("presence: PresenceServerConfig.Policy is required")
	case cfg.Registrar == nil:
		return nil, errors.New("presence: PresenceServerConfig.Registrar is required")
	case cfg.Client == nil:
		return nil, errors.New("presence: PresenceServerConfig.Client is required")
	}
	if cfg.MinExpires == 0 {
		cfg.MinExpires = DefaultPresenceMinExpires
	}
	if cfg.MaxExpires == 0 {
		cfg.MaxExpires = DefaultPresenceExpires
	}
	if cfg.MaxWatcherSubscriptions == 0 {
		cfg.MaxWatcherSubscriptions = 200
	}
	if cfg.MaxPresentityWatchers == 0 {
		cfg.MaxPresentityWatchers = 50_000
	}
	if cfg.MaxPublications == 0 {
		cfg.MaxPublications = 16
	}
	switch {
	case cfg.MinExpires < time.Second:
		return nil, errors.New("presence: PresenceServerConfig.MinExpires must be at least 1 s")
	case cfg.MaxExpires < cfg.MinExpires:
		return nil, errors.New("presence: PresenceServerConfig.MaxExpires must not be below MinExpires")
	case cfg.MaxWatcherSubscriptions < 0:
		return nil, errors.New("presence: PresenceServerConfig.MaxWatcherSubscriptions must be positive")
	case cfg.MaxPresentityWatchers < 0:
		return nil, errors.New("presence: PresenceServerConfig.MaxPresentityWatchers must be positive")
	case cfg.MaxPublications < 0:
		return nil, errors.New("presence: PresenceServerConfig.MaxPublications must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Spim == nil {
		spim, err := auth.NewThrottle(auth.ThrottleConfig{Now: cfg.Now})
		if err != nil {
			return nil, err
		}
		cfg.Spim = spim
	}
	if cfg.Publications == nil {
		cfg.Publications = NewMemoryPublications()
	}
	s := &PresenceServer{cfg: cfg, subs: map[string]*subscription{},
		byPres: map[string]map[string]*subscription{}, byWatcher: map[string]int{}, snaps: map[string]*snapshot{}, sends: make(chan struct{}, notifySenders)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	removePolicy := cfg.Policy.OnChange(s.Changed)
	removeRegistrar := cfg.Registrar.OnChange(s.registrationChanged)
	s.removeHooks = func() { removePolicy(); removeRegistrar() }
	s.wg.Go(s.expireLoop)
	if cfg.Feed != nil {
		s.wg.Go(s.listen)
	}
	return s, nil
}

// listen sends the local watchers fresh views on the changes the other
// front ends announce, until Close; a failed feed is listened to again
// after a second.
func (s *PresenceServer) listen() {
	for {
		err := s.cfg.Feed.Listen(s.ctx, s.changedHere)
		if s.ctx.Err() != nil {
			return
		}
		s.cfg.Logger.Error("presence feed failed; listening again", "err", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// Shutdown drains the server, as net/http's Server.Shutdown does: new
// SUBSCRIBEs and PUBLISHes are refused (503 with Retry-After), every
// subscription is sent a final NOTIFY (Subscription-State:
// terminated;reason=deactivated, RFC 6665 section 4.2.2: the watcher may
// subscribe again at once, to another front end or this one restarted),
// and Shutdown waits until each has been answered or given up. Then it
// closes the server and returns nil. If ctx ends first it returns
// ctx.Err(), leaving the rest; call Close to stop at once.
func (s *PresenceServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	subs := slices.Collect(maps.Values(s.subs))
	for _, sub := range subs {
		if sub.terminated == "" {
			sub.terminated = "deactivated"
		}
	}
	s.mu.Unlock()
	for _, sub := range subs {
		s.kick(sub)
	}
	// Polled, as net/http polls its idle connections: the final NOTIFYs
	// end on their own (answered, refused, or after notifyTimeout).
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		idle := len(s.subs) == 0 && s.senders == 0
		s.mu.Unlock()
		if idle {
			return s.Close()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// refuseWhileDraining answers req 503 once Shutdown has begun, and
// reports whether it did.
func (s *PresenceServer) refuseWhileDraining(req *sip.Request, tx sip.ServerTransaction) bool {
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	if draining {
		_ = tx.Respond(unavailable(func(code int, reason string) *sip.Response {
			return sip.NewResponseFromRequest(req, code, reason, nil)
		}, "Shutting down"))
	}
	return draining
}

// Close stops the server at once: the expiry timer, the Feed, and the
// NOTIFYs in flight (their watchers are not told; see Shutdown). It
// returns nil.
func (s *PresenceServer) Close() error {
	s.removeHooks()
	s.mu.Lock()
	s.cancel() // under mu, so no kick starts a sender after Wait
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// expiresOf reads Expires, applying the defaults and bounds. It returns
// ok=false with a response to send when the value is refused.
func (s *PresenceServer) expiresOf(req *sip.Request) (time.Duration, *sip.Response) {
	h := req.GetHeader("Expires")
	if h == nil {
		return s.cfg.MaxExpires, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil {
		return 0, sip.NewResponseFromRequest(req, 400, "Bad Expires", nil)
	}
	n = min(n, uint64(s.cfg.MaxExpires/time.Second)) // before multiplying: no overflow
	d := time.Duration(n) * time.Second
	if d > 0 && d < s.cfg.MinExpires {
		res := sip.NewResponseFromRequest(req, 423, "Interval Too Brief", nil)
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(int(s.cfg.MinExpires/time.Second))))
		return 0, res
	}
	return min(d, s.cfg.MaxExpires), nil
}

// badEvent answers a request for an event package other than presence.
func badEvent(req *sip.Request) *sip.Response {
	h := req.GetHeader("Event")
	if h != nil && strings.EqualFold(strings.TrimSpace(strings.SplitN(h.Value(), ";", 2)[0]), "presence") {
		return nil
	}
	res := sip.NewResponseFromRequest(req, 489, "Bad Event", nil)
	res.AppendHeader(sip.NewHeader("Allow-Events", "presence"))
	return res
}

// HandlePublish is the sipgo handler for PUBLISH (RFC 3903): a user
// publishes their own presence, one publication per device, each with an
// entity tag for refresh, modification and removal.
func (s *PresenceServer) HandlePublish(req *sip.Request, tx sip.ServerTransaction) {
	if s.refuseWhileDraining(req, tx) {
		return
	}
	id := s.cfg.Auth.Authenticate(req, tx)
	if id == nil {
		return
	}
	_ = tx.Respond(s.publish(req, id))
}

func (s *PresenceServer) publish(req *sip.Request, id *auth.Identity) *sip.Response {
	reply := func(code int, reason string) *sip.Response { return sip.NewResponseFromRequest(req, code, reason, nil) }
	if res := badEvent(req); res != nil {
		return res
	}
	aor := canonicalAOR(req.Recipient.String())
	if aor != canonicalAOR(id.URI) {
		return reply(403, "You may only publish your own presence")
	}
	expires, res := s.expiresOf(req)
	if res != nil {
		return res
	}
	var doc *Presence
	if len(req.Body()) > 0 {
		if len(req.Body()) > MaxPIDFSize {
			return reply(413, "Request Entity Too Large")
		}
		if ct := req.ContentType(); ct == nil || !strings.EqualFold(strings.TrimSpace(strings.SplitN(ct.Value(), ";", 2)[0]), pidfType) {
			res := reply(415, "Unsupported Media Type")
			res.AppendHeader(sip.NewHeader("Accept", pidfType))
			return res
		}
		var err error
		if doc, err = ParsePIDF(req.Body()); err != nil {
			if errors.Is(err, ErrPIDFTooLarge) {
				return reply(413, "Request Entity Too Large")
			}
			return reply(400, "Bad PIDF document")
		}
		if canonicalAOR(doc.Entity) != aor && !strings.HasPrefix(doc.Entity, "pres:") {
			return reply(400, "PIDF entity is not the presentity")
		}
		doc.Entity = aor
	}

	ifMatch := ""
	if h := req.GetHeader("SIP-If-Match"); h != nil {
		ifMatch = strings.TrimSpace(h.Value())
	}
	switch {
	case ifMatch == "" && doc == nil:
		return reply(400, "Initial PUBLISH needs a body")
	case ifMatch == "" && expires == 0:
		return reply(400, "Initial PUBLISH with Expires: 0")
	}
	now := s.cfg.Now()
	flow := (&Flow{Transport: strings.ToUpper(req.Transport()), Source: req.Source()}).String()
	var etag string
	refresh := false
	ctx, cancel := context.WithTimeout(s.ctx, storeDeadline)
	defer cancel()
	err := s.cfg.Publications.Update(ctx, aor, func(pubs []Publication) ([]Publication, error) {
		pubs = LivePublications(pubs, now) // oldest first
		etag, refresh = "", false
		if ifMatch == "" {
			// One device, one state: a new publication replaces the
			// earlier ones made over the same connection. (baresip 1.0
			// starts a new one instead of modifying when its previous
			// PUBLISH is still unanswered; the orphan would outrank its
			// later state until it expired.)
			pubs = slices.DeleteFunc(pubs, func(p Publication) bool { return p.Flow == flow })
			if n := len(pubs) - s.cfg.MaxPublications + 1; n > 0 {
				pubs = pubs[n:]
			}
			etag = newTag()
			return append(pubs, Publication{ETag: etag, Doc: doc, Expires: now.Add(expires), At: now, Flow: flow}), nil
		}
		i := slices.IndexFunc(pubs, func(p Publication) bool { return p.ETag == ifMatch })
		if i < 0 {
			return nil, errNoPublication
		}
		old := pubs[i]
		pubs = slices.Delete(pubs, i, i+1)
		if expires == 0 {
			return pubs, nil
		}
		etag = newTag()
		if doc == nil {
			// A refresh: the same document, published when it was.
			refresh = true
			return append(pubs, Publication{ETag: etag, Doc: old.Doc, Expires: now.Add(expires), At: old.At, Flow: flow}), nil
		}
		return append(pubs, Publication{ETag: etag, Doc: doc, Expires: now.Add(expires), At: now, Flow: flow}), nil
	})
	switch {
	case errors.Is(err, errNoPublication):
		return reply(412, "Conditional Request Failed")
	case err != nil:
		s.cfg.Logger.Error("publication store failed", "user", aor, "err", err)
		return unavailable(reply, "Presence unavailable")
	}

	out := reply(200, "OK")
	if etag != "" {
		out.AppendHeader(sip.NewHeader("SIP-ETag", etag))
	}
	out.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	if !refresh {
		s.Changed(aor) // a refresh changes nothing watchers can see
		s.cfg.Logger.Info("published", "user", aor, "etag", etag, "expires", int(expires/time.Second))
	}
	return out
}

// HandleSubscribe is the sipgo handler for SUBSCRIBE to the presence
// event: it creates, refreshes or ends a subscription and sends the
// watcher a NOTIFY with the view it may see.
func (s *PresenceServer) HandleSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	if s.refuseWhileDraining(req, tx) {
		return
	}
	id := s.cfg.Auth.Authenticate(req, tx)
	if id == nil {
		return
	}
	res, sub := s.subscribe(req, id)
	_ = tx.Respond(res)
	if sub != nil {
		s.kick(sub)
	}
}

func (s *PresenceServer) subscribe(req *sip.Request, id *auth.Identity) (*sip.Response, *subscription) {
	reply := func(code int, reason string) *sip.Response { return sip.NewResponseFromRequest(req, code, reason, nil) }
	if res := badEvent(req); res != nil {
		return res, nil
	}
	if !acceptsPIDF(req) {
		return reply(406, "Not Acceptable"), nil
	}
	if tp := strings.ToUpper(req.Transport()); tp != "TLS" && tp != "WSS" {
		// NOTIFYs go back over the subscriber's connection; over UDP a
		// spoofed source would aim them at a victim.
		return reply(403, "Subscriptions need TLS"), nil
	}
	expires, res := s.expiresOf(req)
	if res != nil {
		return res, nil
	}
	if !id.Expires.IsZero() {
		// No longer than the credential behind it.
		expires = max(0, min(expires, id.Expires.Sub(s.cfg.Now()).Truncate(time.Second)))
	}
	from, to, callID := req.From(), req.To(), req.CallID()
	if from == nil || to == nil || callID == nil {
		return reply(400, "Missing From, To or Call-ID"), nil
	}
	remoteTag, _ := from.Params.Get("tag")
	localTag, _ := to.Params.Get("tag")
	now := s.cfg.Now()

	var sub *subscription
	if localTag != "" {
		// A refresh or an unsubscribe within an existing dialog.
		s.mu.Lock()
		sub = s.subs[dialogID(callID.Value(), remoteTag, localTag)]
		if sub == nil || canonicalAOR(sub.watcher.URI) != canonicalAOR(id.URI) {
			s.mu.Unlock()
			return reply(481, "Subscription Does Not Exist"), nil
		}
		sub.expires = now.Add(expires)
		// A client that reconnected refreshes from its new connection.
		sub.transport, sub.source = strings.ToUpper(req.Transport()), req.Source()
		sub.mustSend = true
		if expires == 0 {
			sub.terminated = "terminated"
		}
		s.mu.Unlock()
	} else {
		ctx, cancel := context.WithTimeout(s.ctx, storeDeadline)
		defer cancel()
		presentity := canonicalAOR(req.Recipient.String())
		if res := spimCheck(ctx, req, s.cfg.Policy, s.cfg.Spim, presentity, id); res != nil {
			return res, nil
		}
		if _, err := s.cfg.Directory.User(ctx, presentity); err != nil {
			if errors.Is(err, auth.ErrUnknownUser) {
				return reply(404, "Not Found"), nil
			}
			s.cfg.Logger.Error("directory unavailable", "user", presentity, "err", err)
			return reply(500, "Directory unavailable"), nil
		}
		contact := req.Contact()
		if contact == nil || (!strings.EqualFold(contact.Address.Scheme, "sip") && !strings.EqualFold(contact.Address.Scheme, "sips")) {
			return reply(400, "Missing or unusable Contact"), nil
		}
		target := *contact.Address.Clone()
		target.Headers = nil // URI headers would be copied into every NOTIFY
		sub = &subscription{
			presentity: presentity, watcher: id, target: target, callID: callID.Value(),
			remoteTag: remoteTag, localTag: newTag(), transport: strings.ToUpper(req.Transport()), source: req.Source(),
			expires: now.Add(expires), mustSend: true,
		}
		for _, h := range req.GetHeaders("Record-Route") {
			sub.routeSet = append(sub.routeSet, h.Value())
		}
		sub.id = dialogID(sub.callID, sub.remoteTag, sub.localTag)
		if expires == 0 {
			sub.terminated = "terminated" // a fetch: one NOTIFY, then done
		}
		watcher := canonicalAOR(id.URI)
		s.mu.Lock()
		if s.byWatcher[watcher] >= s.cfg.MaxWatcherSubscriptions || len(s.byPres[presentity]) >= s.cfg.MaxPresentityWatchers {
			s.mu.Unlock()
			return reply(403, "Too many subscriptions"), nil
		}
		s.subs[sub.id] = sub
		s.byWatcher[watcher]++
		if s.byPres[presentity] == nil {
			s.byPres[presentity] = map[string]*subscription{}
		}
		s.byPres[presentity][sub.id] = sub
		s.mu.Unlock()
	}
	out := reply(200, "OK")
	out.ReplaceHeader(&sip.ToHeader{DisplayName: to.DisplayName, Address: to.Address, Params: withTag(to.Params, sub.localTag)})
	out.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	out.AppendHeader(sip.NewHeader("Contact", "<"+s.contact(sub)+">"))
	return out, sub
}

// contact is the Contact this server gives in sub's dialog.
func (s *PresenceServer) contact(sub *subscription) string {
	if s.cfg.Contact != "" {
		return s.cfg.Contact
	}
	return sub.presentity
}

func acceptsPIDF(req *sip.Request) bool {
	hs := req.GetHeaders("Accept")
	if len(hs) == 0 {
		return true
	}
	for _, h := range hs {
		for _, t := range strings.Split(h.Value(), ",") {
			t = strings.TrimSpace(strings.SplitN(t, ";", 2)[0])
			if strings.EqualFold(t, pidfType) || t == "*/*" || strings.EqualFold(t, "application/*") {
				return true
			}
		}
	}
	return false
}

func withTag(p sip.HeaderParams, tag string) sip.HeaderParams {
	out := sip.NewParams()
	for _, kv := range p {
		if kv.K != "tag" {
			out.Add(kv.K, kv.V)
		}
	}
	out.Add("tag", tag)
	return out
}

func dialogID(callID, remoteTag, localTag string) string {
	return callID + "\x00" + remoteTag + "\x00" + localTag
}

func newTag() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Subscriptions returns how many subscriptions are active.
func (s *PresenceServer) Subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}
