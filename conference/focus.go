package conference

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/parleyuc/parley/auth"
	"golang.org/x/time/rate"
)

// Errors of the Focus. Callers test them with errors.Is.
var (
	// ErrNotAllowed: the user may not schedule meetings (not a licensed
	// user of the tenant).
	ErrNotAllowed = errors.New("conference: not allowed to organize meetings")
	// ErrRefused: the access policy refuses this participant.
	ErrRefused = errors.New("conference: refused")
	// ErrForbidden: the participant's role does not allow the request.
	ErrForbidden = errors.New("conference: forbidden by role")
	// ErrNoParticipant: no such participant in the meeting.
	ErrNoParticipant = errors.New("conference: no such participant")
	// ErrWrongState: the participant is not in the state the request
	// needs (admitting someone not in the lobby, promoting a presenter).
	ErrWrongState = errors.New("conference: participant not in that state")
	// ErrRejected: a presenter rejected the participant from the lobby.
	ErrRejected = errors.New("conference: rejected from the lobby")
	// ErrLobbyTimeout: nobody admitted the participant in time.
	ErrLobbyTimeout = errors.New("conference: lobby wait timed out")
	// ErrLeft: the participant left (or was ejected) before the outcome.
	ErrLeft = errors.New("conference: participant left")
	// ErrFull: the meeting or its lobby is full.
	ErrFull = errors.New("conference: meeting full")
	// ErrClosed: the Focus is closed.
	ErrClosed = errors.New("conference: focus closed")
	// ErrInvalid: a request's argument is malformed (a presenter that is
	// not a SIP address).
	ErrInvalid = errors.New("conference: invalid request")
)

// Defaults applied to zero FocusConfig fields.
const (
	DefaultLobbyTimeout    = 15 * time.Minute
	DefaultTokenTTL        = 2 * time.Minute
	DefaultMeetingLifetime = 24 * time.Hour
	MaxMeetingLifetime     = 366 * 24 * time.Hour
	DefaultMaxParticipants = 1000
	DefaultMaxLobby        = 500
	defaultStoreTimeout    = 5 * time.Second
)

// FocusConfig configures a Focus. Meetings, Directory and Tokens are
// required; the SIP fields are needed only for the SIP handlers.
type FocusConfig struct {
	Meetings  MeetingStore   // required
	Directory auth.Directory // licenses and companies. Required.
	// Tokens signs media tokens; the media server verifies them with the
	// same key. Required.
	Tokens *TokenIssuer
	// MediaServer is the A/V conferencing server's address, given to
	// participants with their media token.
	MediaServer string
	// JoinURL is the HTTPS base of meeting links: a meeting's link is
	// JoinURL + "/meet/" + ID. Required for Schedule.
	JoinURL string
	// TokenTTL is how long a media token is valid. Default 2 minutes.
	TokenTTL time.Duration
	// Lobby holds those who wait and carries the admission decision:
	// give one made by NewLobby to plug in your own AdmissionRule, lobby
	// timeout or size. Default: NewLobby(LobbyConfig{}), the security
	// model's access policies. A Lobby serves one Focus.
	Lobby *Lobby
	// MaxParticipants bounds a meeting's participants, lobby included.
	// Default 1,000.
	MaxParticipants int

	// Auth authenticates SIP requests to the focus. Required with any
	// of the SIP fields below; a Focus without it answers SIP with 500.
	Auth Authenticator
	// Client sends NOTIFYs and BYEs over the participants' connections;
	// it must share the user agent of the server they connect to.
	Client *sipgo.Client
	// Connections, if set, keeps NOTIFYs and BYEs on existing connections
	// (ua.TransportLayer()).
	Connections Connections
	// Listeners maps a transport (TLS, WSS) to the address this server
	// listens on, for the focus's Contact.
	Listeners map[string]string
	// Gateways are the identity URIs of trusted PSTN gateways (as their
	// client certificates name them): participants arriving through them
	// are dial-in.
	Gateways []string
	// PlainRTPGateways are the gateways (of Gateways) whose calls may
	// carry plain RTP, on a network trusted for it. Everyone else's media
	// must be SRTP.
	PlainRTPGateways []string
	// DialInNumbers are the user parts of Request-URIs (the access
	// numbers, e.g. "+15550100") at which gateways deliver dial-in
	// callers to the IVR: it asks for the conference ID and, the caller
	// being anonymous, a recorded name, then puts it in the meeting (or
	// its lobby, per the meeting's dial-in setting). They need the media
	// server (SetMedia).
	DialInNumbers []string

	// Leases, if set, makes this Focus one front end of a pool sharing a
	// store: a live meeting is hosted by the front end holding its lease
	// (lease.go). Nil: a single front end hosts every meeting, without
	// leases. With Leases, Meetings must be a FencedMeetingStore, and
	// the meeting's settings are written fenced by the lease's token.
	Leases HostLeases
	// Host names this front end in Leases (its pool address). Required
	// with Leases.
	Host string
	// LeaseTTL is how long a lease lasts unless renewed; the Focus renews
	// it every third of it, so a host that dies frees its meetings within
	// LeaseTTL. Default DefaultLeaseTTL (10 s); only with Leases.
	LeaseTTL time.Duration
	// HostAddress, if set, returns the SIP-TLS address (host:port) of the
	// pool's front end named host, for an INVITE to a meeting hosted
	// there to be redirected (302) to it; "" or an error: unknown, the
	// INVITE is answered 503 with Retry-After. Only with Leases.
	HostAddress func(ctx context.Context, host string) (string, error)
	// Forwarder, if set, passes the SIP requests for a meeting another
	// front end hosts (a join's INVITE, a SUBSCRIBE to its conference
	// state, a gateway's dial-in caller) to that front end, instead of a
	// redirect: participants stay connected to the front end they
	// reached. *presence.Router implements it. The Focus follows the joins
	// it passed on: if the host goes (its lease lapses or another front
	// end takes it), the participant is sent a BYE with Reason cause 503,
	// to join again. Only with Leases.
	Forwarder HostForwarder

	Logger *slog.Logger
	Now    func() time.Time
}

// Focus runs meetings: it schedules them, decides who enters through its
// Lobby, keeps the roster, carries out leaders' requests, issues media
// tokens and tells subscribers the conference state (RFC 4575).
//
// Build one with NewFocus from a FocusConfig; give it your own Lobby (and
// with it your AdmissionRule) in FocusConfig.Lobby. The Go API and the SIP
// handlers (Dispatch, HandleRequest) are two doors to the same state:
//
//   - scheduling: Schedule (licensed users of the tenant), Meeting, End;
//   - the roster: Join, Leave, Participants, Participant, Watch (for the
//     media server), Subscribe (conference-info documents);
//   - the lobby: Lobby().Admit, Reject, Wait, Waiting;
//   - leaders' controls (leader.go): Promote, Demote, Eject, Lock,
//     MuteAll, SetAccess, SetPresenters, RecordedName, each checked
//     against the requester's role (ErrForbidden);
//   - media: AddUser issues a media token; SetMedia gives the A/V server
//     that answers SIP participants' offers.
//
// Errors are the sentinel values above (ErrNotFound, ErrRefused,
// ErrForbidden, ...), to test with errors.Is. It is safe for concurrent
// use; Shutdown drains it (BYE, terminating NOTIFYs, lobby waits
// answered), Close stops it at once.
type Focus struct {
	cfg FocusConfig

	mu    sync.Mutex
	confs map[MeetingID]*conf
	// starting: the meetings whose live state is being set up (their
	// lease acquired), closed when done.
	starting map[MeetingID]chan struct{}
	closed   bool
	// draining: Shutdown has begun; no one joins or subscribes.
	draining bool
	// busy counts SIP requests being handled and goroutines of goRun,
	// for Shutdown to wait on.
	busy atomic.Int64

	lobby *Lobby
	// removeClose unregisters FlowClosed from the Authenticator.
	removeClose func()
	sip         sipState
	media       atomic.Pointer[Media] // SetMedia
	forwards    atomic.Uint64         // requests passed on to hosts (FocusMetrics.Forwarded)
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

// conf is the live state of a meeting with participants or watchers.
type conf struct {
	mu       sync.Mutex
	meeting  *Meeting
	parts    map[ParticipantID]*participant
	locked   bool
	muted    bool // the audience: attendees' audio held back
	dead     bool // removed from Focus.confs
	version  uint64
	watchers map[int]func(Event)
	chats    map[int]func(ChatMessage) // chat watchers (chat.go)
	subs     map[*subscriber]struct{}
	nextID   int
	arrivals int
	cache    map[cacheKey][]byte
	log      []change
	// lease is this front end's lease on the meeting, if leased (with
	// FocusConfig.Leases); the renewer extends it.
	lease  Lease
	leased bool
}

type participant struct {
	Participant
	recordedName []byte // WAV
	identity     *auth.Identity
	cand         Candidate
	decided      chan struct{} // closed when a lobby wait ends
	finished     bool          // decided is closed
	outcome      error         // nil: admitted
	timer        *time.Timer
	onLeader     bool          // waits only for a leader or an authenticated user
	seq          int           // arrival order
	hands        *rate.Limiter // bounds the participant's own hand changes (SetHand)
}

// NewFocus returns a Focus, or an error naming the missing field.
func NewFocus(cfg FocusConfig) (*Focus, error) {
	switch {
	case cfg.Meetings == nil:
		return nil, errors.New("conference: FocusConfig.Meetings is required")
	case cfg.Directory == nil:
		return nil, errors.New("conference: FocusConfig.Directory is required")
	case cfg.Tokens == nil:
		return nil, errors.New("conference: FocusConfig.Tokens is required")
	case cfg.Auth == nil && (cfg.Client != nil || len(cfg.Listeners) > 0 || len(cfg.Gateways) > 0 || len(cfg.DialInNumbers) > 0):
		return nil, errors.New("conference: FocusConfig.Auth is required with the SIP fields (Client, Listeners, Gateways, DialInNumbers)")
	case len(cfg.PlainRTPGateways) > 0 && !subset(cfg.PlainRTPGateways, cfg.Gateways):
		return nil, errors.New("conference: FocusConfig.PlainRTPGateways must be listed in Gateways")
	case cfg.TokenTTL < 0:
		return nil, errors.New("conference: FocusConfig.TokenTTL must not be negative")
	case cfg.MaxParticipants < 0:
		return nil, errors.New("conference: FocusConfig.MaxParticipants must not be negative")
	}
	if err := validHosting(&cfg); err != nil {
		return nil, err
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.MaxParticipants == 0 {
		cfg.MaxParticipants = DefaultMaxParticipants
	}
	if cfg.Lobby == nil {
		cfg.Lobby, _ = NewLobby(LobbyConfig{}) // valid by construction
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for i, g := range cfg.Gateways {
		cfg.Gateways[i] = canonical(g)
	}
	for i, g := range cfg.PlainRTPGateways {
		cfg.PlainRTPGateways[i] = canonical(g)
	}
	f := &Focus{cfg: cfg, confs: map[MeetingID]*conf{}, starting: map[MeetingID]chan struct{}{}, lobby: cfg.Lobby, removeClose: func() {}}
	if err := cfg.Lobby.attach(f); err != nil {
		return nil, err
	}
	if ct, ok := cfg.Auth.(ConnectionTracker); ok {
		// A participant whose connection closes leaves its meetings.
		f.removeClose = ct.OnConnectionClose(f.FlowClosed)
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.sip.init()
	if cfg.Leases != nil {
		f.wg.Add(1)
		go f.renewLeases()
	}
	return f, nil
}

// shutdownPoll is how often Shutdown looks whether the drain is done, as
// net/http's Server.Shutdown polls its connections.
const shutdownPoll = 10 * time.Millisecond

// Shutdown drains the Focus, like net/http's Server.Shutdown: nobody new
// joins or subscribes (ErrClosed; SIP 503); every participant's INVITE
// dialog gets a BYE; every lobby wait ends with ErrClosed, its INVITE
// answered; every conference-state subscription gets its terminating
// NOTIFY (Subscription-State: terminated;reason=deactivated); watchers
// see everyone leave. Meetings stay in the store: a restarted focus hosts
// them again. Shutdown returns once the SIP requests in flight and the
// messages it sent are done, then releases everything as Close does. If
// ctx ends first, it closes at once and returns ctx's error.
func (f *Focus) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	if f.closed || f.draining {
		f.mu.Unlock()
		return f.Close()
	}
	f.draining = true
	confs := make([]*conf, 0, len(f.confs))
	for _, c := range f.confs {
		confs = append(confs, c)
	}
	f.mu.Unlock()
	f.sip.mu.Lock()
	var dialogs []*dialog
	for _, d := range f.sip.dialogs {
		if !d.subscription && d.confirmed {
			dialogs = append(dialogs, d)
		}
	}
	f.sip.mu.Unlock()
	for _, d := range dialogs {
		f.endDialog(d, "The focus is shutting down")
	}
	for _, c := range confs {
		c.mu.Lock()
		for _, p := range c.sorted() {
			f.removeLocked(c, p, EventLeft, "", ErrClosed)
		}
		c.mu.Unlock()
		f.release(c)
	}
	tick := time.NewTicker(shutdownPoll)
	defer tick.Stop()
	for f.busy.Load() > 0 {
		select {
		case <-ctx.Done():
			_ = f.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
	return f.Close()
}

// Close ends every lobby wait and subscription and stops the Focus's
// goroutines.
func (f *Focus) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	confs := make([]*conf, 0, len(f.confs))
	for _, c := range f.confs {
		confs = append(confs, c)
	}
	clear(f.confs)
	f.mu.Unlock()
	f.removeClose()
	f.sip.goMu.Lock()
	f.sip.stopped = true
	f.sip.goMu.Unlock()
	f.cancel()
	// Every meeting ends: lobby waits fail with ErrClosed, subscribers are
	// told the end (those whose delivery loop runs are told by it).
	var idle []*subscriber
	for _, c := range confs {
		c.mu.Lock()
		c.dead = true
		for _, p := range c.parts {
			if p.State == InLobby {
				p.decide(ErrClosed)
			}
			p.State = Gone
		}
		clear(c.parts)
		for s := range c.subs {
			s.ended = true
			if !s.running {
				idle = append(idle, s)
			}
			delete(c.subs, s)
		}
		c.mu.Unlock()
	}
	for _, s := range idle {
		s.deliver(Update{Ended: true})
	}
	f.sip.closeAll()
	f.wg.Wait()
	for _, c := range confs {
		f.releaseLease(c) // the renewer has stopped: the leases stay released
	}
	return nil
}

// conf returns the live state of meeting id, creating it if needed, with
// its lock held.
func (f *Focus) conf(ctx context.Context, id MeetingID) (*conf, error) {
	for {
		f.mu.Lock()
		if f.closed || f.draining {
			f.mu.Unlock()
			return nil, ErrClosed
		}
		c := f.confs[id]
		if c == nil {
			if wait := f.starting[id]; wait != nil {
				// Another request sets the meeting up: its outcome first.
				f.mu.Unlock()
				select {
				case <-wait:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				continue
			}
			done := make(chan struct{})
			f.starting[id] = done
			f.mu.Unlock()
			var err error
			c, err = f.start(ctx, id)
			f.mu.Lock()
			delete(f.starting, id)
			close(done)
			closed := f.closed || f.draining
			if err == nil && !closed {
				f.confs[id] = c
			}
			f.mu.Unlock()
			if err != nil {
				return nil, err
			}
			if closed {
				f.releaseLease(c)
				return nil, ErrClosed
			}
		} else {
			f.mu.Unlock()
		}
		c.mu.Lock()
		if !c.dead {
			return c, nil
		}
		c.mu.Unlock() // removed meanwhile: look again
	}
}

// existing returns the live state of meeting id with its lock held, or
// ErrNoParticipant if nobody is in it.
func (f *Focus) existing(id MeetingID) (*conf, error) {
	f.mu.Lock()
	c, closed := f.confs[id], f.closed
	f.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if c == nil {
		return nil, ErrNoParticipant
	}
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return nil, ErrNoParticipant
	}
	return c, nil
}

// release forgets c if nobody is in it or watches it: the live meeting
// ends, and its host lease is released.
func (f *Focus) release(c *conf) {
	f.mu.Lock()
	c.mu.Lock()
	ended := false
	if !c.dead && len(c.parts) == 0 && len(c.watchers) == 0 && len(c.chats) == 0 && len(c.subs) == 0 {
		c.dead, ended = true, true
		if f.confs[c.meeting.ID] == c {
			delete(f.confs, c.meeting.ID)
		}
	}
	c.mu.Unlock()
	f.mu.Unlock()
	if ended {
		f.releaseLease(c)
	}
}

// FocusMetrics is what the focus holds now, for monitoring.
type FocusMetrics struct {
	Meetings     int // meetings someone is in or waits for
	Participants int // joined
	Lobby        int // waiting in the lobby
	// Hosted counts the live meetings whose host lease this front end
	// holds (with FocusConfig.Leases).
	Hosted int
	// Forwarded counts the requests passed on to the front ends hosting
	// their meetings (FocusConfig.Forwarder) since the Focus started, and
	// Remote the joins passed on whose participants are still followed.
	Forwarded uint64
	Remote    int
}

// Metrics counts the live meetings and the people in them.
func (f *Focus) Metrics() FocusMetrics {
	m := FocusMetrics{Forwarded: f.forwards.Load()}
	f.sip.mu.Lock()
	m.Remote = len(f.sip.remote)
	f.sip.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.confs {
		c.mu.Lock()
		if len(c.parts) > 0 {
			m.Meetings++
		}
		if c.leased {
			m.Hosted++
		}
		for _, p := range c.parts {
			switch p.State {
			case Joined:
				m.Participants++
			case InLobby:
				m.Lobby++
			}
		}
		c.mu.Unlock()
	}
	return m
}

// subset reports whether every SIP address of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y string) bool { return canonical(x) == canonical(y) }) {
			return false
		}
	}
	return true
}
