package conference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/parleyuc/parley/auth"
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
	// LobbyTimeout is how long a participant waits in the lobby before
	// the wait fails. Default 15 minutes.
	LobbyTimeout time.Duration
	// MaxParticipants and MaxLobby bound a meeting's participants and
	// its lobby. Defaults 1,000 and 500.
	MaxParticipants, MaxLobby int

	// Auth authenticates SIP requests to the focus (SIP handlers).
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

	Logger *slog.Logger
	Now    func() time.Time
}

// State is where a participant is.
type State int

// The participant states.
const (
	InLobby State = iota + 1
	Joined
	Gone
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case InLobby:
		return "lobby"
	case Joined:
		return "joined"
	case Gone:
		return "gone"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Participant is one device's presence in a meeting, as a snapshot.
type Participant struct {
	// ID is unique per join, 128 random bits.
	ID      string
	Meeting string
	// URI is the identity URI (per security association for anonymous
	// users); AOR the canonical address of authenticated users.
	URI, AOR    string
	DisplayName string
	Type        ParticipantType
	Role        Role
	State       State
	// Muted says the media server holds back the participant's audio: an
	// attendee while a leader has muted the audience (MuteAll).
	Muted bool
	// NameRecorded says the participant (an anonymous dial-in caller)
	// recorded its name: leaders hear it with RecordedName.
	NameRecorded bool
	// Since is when the participant entered the lobby or the meeting.
	Since time.Time

	w *participant // for Wait
}

// EventKind says what changed in a meeting.
type EventKind int

// The events a Watch sees.
const (
	EventLobby        EventKind = iota + 1 // entered the lobby
	EventJoined                            // joined, directly or admitted
	EventRejected                          // rejected from the lobby
	EventLobbyTimeout                      // gave up waiting in the lobby
	EventLeft                              // left
	EventEjected                           // ejected by a leader
	EventRole                              // role changed
	EventPolicy                            // access or presenter policy, or lock, changed
)

// Event is a change in a meeting. Participant is the participant after
// the change (zero for EventPolicy); By the participant ID of the leader
// who made it, if one did.
type Event struct {
	Kind        EventKind
	Meeting     string
	Participant Participant
	By          string
}

// Focus runs meetings: it schedules them, decides who enters, keeps the
// lobby and the roster, carries out leaders' requests, issues media tokens
// and tells subscribers the conference state. Its Go API is what its SIP
// handlers use. It is safe for concurrent use; Close stops its work.
type Focus struct {
	cfg FocusConfig

	mu     sync.Mutex
	confs  map[string]*conf
	closed bool

	sip    sipState
	media  atomic.Pointer[Media] // SetMedia
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// conf is the live state of a meeting with participants or watchers.
type conf struct {
	mu       sync.Mutex
	meeting  *Meeting
	parts    map[string]*participant
	locked   bool
	muted    bool // the audience: attendees' audio held back
	dead     bool // removed from Focus.confs
	version  uint64
	watchers map[int]func(Event)
	subs     map[*subscriber]struct{}
	nextID   int
	arrivals int
	cache    map[cacheKey][]byte
	log      []change
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
	seq          int // arrival order
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
	case cfg.TokenTTL < 0, cfg.LobbyTimeout < 0, cfg.MaxParticipants < 0, cfg.MaxLobby < 0:
		return nil, errors.New("conference: FocusConfig durations and limits must not be negative")
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.LobbyTimeout == 0 {
		cfg.LobbyTimeout = DefaultLobbyTimeout
	}
	if cfg.MaxParticipants == 0 {
		cfg.MaxParticipants = DefaultMaxParticipants
	}
	if cfg.MaxLobby == 0 {
		cfg.MaxLobby = DefaultMaxLobby
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
	f := &Focus{cfg: cfg, confs: map[string]*conf{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.sip.init()
	return f, nil
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
	return nil
}

// decide ends p's lobby wait with outcome (nil: admitted), once.
func (p *participant) decide(outcome error) {
	if p.decided == nil || p.finished {
		return
	}
	p.finished = true
	p.timer.Stop()
	p.outcome = outcome
	close(p.decided)
}

// MeetingOptions are what an organizer chooses for a new meeting.
type MeetingOptions struct {
	Subject  string
	Invitees []string
	// Access defaults to AccessCompany, Presenter to PresentersCompany.
	Access      AccessPolicy
	DialInLobby bool
	Presenter   PresenterPolicy
	Presenters  []string
	// Expires is when the meeting ends; zero makes an impromptu meeting
	// that lasts DefaultMeetingLifetime. At most MaxMeetingLifetime ahead.
	Expires time.Time
}

// Schedule creates a meeting organized by the authenticated user
// organizer. Only enabled users of a tenant, signed in as such (internal
// or remote) and licensed for meetings, may; federated and anonymous users
// may not. The meeting gets a random ID (its focus URI and link), a random
// conference key and a random numeric dial-in ID.
func (f *Focus) Schedule(ctx context.Context, organizer *auth.Identity, opts MeetingOptions) (*Meeting, error) {
	if f.cfg.JoinURL == "" {
		return nil, errors.New("conference: FocusConfig.JoinURL is required to schedule")
	}
	if organizer == nil || (organizer.Kind != auth.Internal && organizer.Kind != auth.Remote) || organizer.Tenant == "" {
		return nil, fmt.Errorf("%w: only users of the tenant organize meetings", ErrNotAllowed)
	}
	aor := canonical(organizer.URI)
	u, err := f.cfg.Directory.User(ctx, aor)
	if err != nil {
		if errors.Is(err, auth.ErrUnknownUser) {
			return nil, fmt.Errorf("%w: %s is not in the directory", ErrNotAllowed, aor)
		}
		return nil, err
	}
	if !u.Enabled || !u.MeetingLicense || u.Tenant != organizer.Tenant {
		return nil, fmt.Errorf("%w: %s has no meeting license", ErrNotAllowed, aor)
	}
	now := f.cfg.Now()
	m := &Meeting{
		Organizer: aor, Tenant: organizer.Tenant, OrganizerCompany: u.Company,
		Subject: opts.Subject, Access: opts.Access, DialInLobby: opts.DialInLobby,
		Presenter: opts.Presenter, Created: now, Expires: opts.Expires,
	}
	if m.Access == 0 {
		m.Access = AccessCompany
	}
	if m.Presenter == 0 {
		m.Presenter = PresentersCompany
	}
	if _, ok := accessNames[m.Access]; !ok {
		return nil, fmt.Errorf("conference: MeetingOptions.Access: invalid %d", m.Access)
	}
	if _, ok := presenterNames[m.Presenter]; !ok {
		return nil, fmt.Errorf("conference: MeetingOptions.Presenter: invalid %d", m.Presenter)
	}
	if m.Expires.IsZero() {
		m.Expires = now.Add(DefaultMeetingLifetime)
	}
	if !m.Expires.After(now) || m.Expires.Sub(now) > MaxMeetingLifetime {
		return nil, errors.New("conference: MeetingOptions.Expires must be in the future and within a year")
	}
	for _, list := range []struct {
		in  []string
		out *[]string
	}{{opts.Invitees, &m.Invitees}, {opts.Presenters, &m.Presenters}} {
		for _, s := range list.in {
			c, err := auth.CanonicalAOR(s)
			if err != nil {
				return nil, fmt.Errorf("conference: MeetingOptions: %q: %w", s, err)
			}
			if !slices.Contains(*list.out, c) {
				*list.out = append(*list.out, c)
			}
		}
	}
	for range 5 { // collisions of 128-bit IDs do not happen; of 9-digit dial-in IDs they might
		m.ID, m.Key, m.DialInID = randomToken(), randomToken(), randomDialInID()
		m.JoinURL = f.cfg.JoinURL + "/meet/" + m.ID
		err = f.cfg.Meetings.Create(ctx, m)
		if !errors.Is(err, ErrExists) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	f.cfg.Logger.Info("meeting scheduled", "meeting", m.ID, "organizer", aor, "access", m.Access, "presenters", m.Presenter)
	return m.Clone(), nil
}

// Meeting returns a live meeting (not expired), or an error wrapping
// ErrNotFound.
func (f *Focus) Meeting(ctx context.Context, id string) (*Meeting, error) {
	return liveMeeting(ctx, f.cfg.Meetings, f.cfg.Now, id)
}

func liveMeeting(ctx context.Context, store MeetingStore, now func() time.Time, id string) (*Meeting, error) {
	if !isMeetingID(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	m, err := store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !now().Before(m.Expires) {
		return nil, fmt.Errorf("%w: %s has expired", ErrNotFound, id)
	}
	return m, nil
}

// ConferenceKey implements auth.ConferenceKeys: anonymous users
// authenticate with the key of a live meeting.
func (f *Focus) ConferenceKey(ctx context.Context, meetingID string) (string, error) {
	return Keys(f.cfg.Meetings, f.cfg.Now).ConferenceKey(ctx, meetingID)
}

// Keys returns the conference keys of the live meetings in store, for
// auth.Config.Conferences: the Authenticator is made before the Focus
// that uses it. now may be nil (time.Now).
func Keys(store MeetingStore, now func() time.Time) auth.ConferenceKeys {
	if now == nil {
		now = time.Now
	}
	return meetingKeys{store, now}
}

type meetingKeys struct {
	store MeetingStore
	now   func() time.Time
}

func (k meetingKeys) ConferenceKey(ctx context.Context, meetingID string) (string, error) {
	m, err := liveMeeting(ctx, k.store, k.now, meetingID)
	if err != nil {
		return "", fmt.Errorf("%w: %w", auth.ErrUnknownMeeting, err)
	}
	return m.Key, nil
}

// conf returns the live state of meeting id, creating it if needed, with
// its lock held.
func (f *Focus) conf(ctx context.Context, id string) (*conf, error) {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return nil, ErrClosed
		}
		c := f.confs[id]
		f.mu.Unlock()
		if c == nil {
			m, err := f.Meeting(ctx, id)
			if err != nil {
				return nil, err
			}
			f.mu.Lock()
			if c = f.confs[id]; c == nil {
				c = &conf{meeting: m, parts: map[string]*participant{}, watchers: map[int]func(Event){},
					subs: map[*subscriber]struct{}{}, cache: map[cacheKey][]byte{}}
				f.confs[id] = c
			}
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
func (f *Focus) existing(id string) (*conf, error) {
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

// release forgets c if nobody is in it or watches it.
func (f *Focus) release(c *conf) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dead && len(c.parts) == 0 && len(c.watchers) == 0 && len(c.subs) == 0 {
		c.dead = true
		if f.confs[c.meeting.ID] == c {
			delete(f.confs, c.meeting.ID)
		}
	}
}

// JoinRequest is someone asking to join a meeting.
type JoinRequest struct {
	// Identity is who asks, as the Authenticator established it. A dial-in
	// caller without a PIN has an anonymous identity for the meeting whose
	// conference ID it entered; with a PIN, the user's identity.
	Identity *auth.Identity
	// DialIn says the request came through a trusted PSTN gateway.
	DialIn bool
	// DisplayName overrides the identity's display name (an anonymous
	// user's chosen name, a dial-in caller's recorded name's label).
	DisplayName string
	// RecordedName is an anonymous dial-in caller's recording of its name
	// (a WAV file), which identifies it to the meeting's leaders.
	RecordedName []byte
}

// candidate describes who asks, for the policies.
func (f *Focus) candidate(ctx context.Context, m *Meeting, r JoinRequest) (Candidate, error) {
	id := r.Identity
	c := Candidate{Type: TypeOf(id, r.DialIn), Meeting: id.Meeting}
	if id.Kind == auth.Anonymous {
		return c, nil
	}
	c.AOR, c.Tenant = canonical(id.URI), id.Tenant
	if id.Kind == auth.Federated {
		// A partner's user cannot pass for one of the tenant's.
		if _, host, _ := strings.Cut(c.AOR, "@"); strings.EqualFold(host, m.Tenant) {
			return c, fmt.Errorf("%w: a federated user with the tenant's domain", ErrRefused)
		}
		c.Tenant = ""
		return c, nil
	}
	if c.Tenant == m.Tenant {
		u, err := f.cfg.Directory.User(ctx, c.AOR)
		switch {
		case err == nil:
			c.Company = u.Company
		case errors.Is(err, auth.ErrUnknownUser):
			c.Tenant = "" // no longer in the directory: not a user of the tenant
		default:
			return c, err
		}
	}
	return c, nil
}

// Join asks for r's entry into meeting id. It returns the participant in
// the meeting (Joined) or in the lobby (InLobby: Wait for the outcome), or
// an error: ErrNotFound, ErrRefused, ErrFull.
func (f *Focus) Join(ctx context.Context, id string, r JoinRequest) (*Participant, error) {
	if r.Identity == nil {
		return nil, errors.New("conference: JoinRequest.Identity is required")
	}
	// The meeting as stored now: expired or deleted meetings take nobody
	// in, and policy changes made elsewhere apply.
	m, err := f.Meeting(ctx, id)
	if err != nil {
		return nil, err
	}
	cand, err := f.candidate(ctx, m, r)
	if err != nil {
		return nil, err
	}
	c, err := f.conf(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.Revision > c.meeting.Revision {
		c.meeting = m
	}
	p, err := f.joinLocked(c, cand, r)
	c.mu.Unlock()
	if err != nil {
		f.release(c)
		return nil, err
	}
	return p, nil
}

func (f *Focus) joinLocked(c *conf, cand Candidate, r JoinRequest) (*Participant, error) {
	m := c.meeting
	a := Admit(m, cand, c.leaderOrAuthenticatedIn())
	if a == Direct && c.locked && !cand.isOrganizer(m) {
		a = Lobby
	}
	if a == Refused {
		return nil, fmt.Errorf("%w: %s may not join %s", ErrRefused, cand.Type, m.ID)
	}
	lobby := 0
	for _, q := range c.parts {
		if q.State == InLobby {
			lobby++
		}
	}
	organizer := cand.isOrganizer(m)
	if !organizer && (len(c.parts) >= f.cfg.MaxParticipants || a == Lobby && lobby >= f.cfg.MaxLobby) {
		return nil, ErrFull
	}
	name := r.DisplayName
	if name == "" {
		name = r.Identity.DisplayName
	}
	p := &participant{
		Participant: Participant{ID: randomToken(), Meeting: m.ID, URI: r.Identity.URI, AOR: cand.AOR,
			DisplayName: name, Type: cand.Type, Role: Attendee, Since: f.cfg.Now(), NameRecorded: len(r.RecordedName) > 0},
		identity: r.Identity, cand: cand, recordedName: r.RecordedName,
	}
	p.w = p
	c.arrivals++
	p.seq = c.arrivals
	c.parts[p.ID] = p
	if a == Direct {
		f.enterLocked(c, p, "")
	} else {
		p.State = InLobby
		p.decided = make(chan struct{})
		p.timer = time.AfterFunc(f.cfg.LobbyTimeout, func() { f.lobbyTimeout(m.ID, p.ID) })
		f.emitLocked(c, Event{Kind: EventLobby, Participant: p.Participant}, false)
		f.cfg.Logger.Info("participant waits in the lobby", "meeting", m.ID, "participant", p.ID, "type", p.Type, "uri", p.URI)
	}
	out := p.Participant
	return &out, nil
}

// enterLocked puts p in the meeting with the role its presenter policy
// gives, and lets in anonymous users who were waiting only for a leader or
// an authenticated user.
func (f *Focus) enterLocked(c *conf, p *participant, by string) {
	wasIn := c.leaderOrAuthenticatedIn()
	p.State, p.Role, p.Since = Joined, InitialRole(c.meeting, p.cand), f.cfg.Now()
	c.muteLocked(p)
	p.decide(nil)
	f.emitLocked(c, Event{Kind: EventJoined, Participant: p.Participant, By: by}, true)
	f.cfg.Logger.Info("participant joined", "meeting", c.meeting.ID, "participant", p.ID, "type", p.Type, "role", p.Role, "by", by)
	if wasIn || !c.leaderOrAuthenticatedIn() || c.locked {
		return
	}
	for _, q := range c.sorted() {
		if q.State == InLobby && !q.cand.authenticated() && Admit(c.meeting, q.cand, true) == Direct {
			f.enterLocked(c, q, "")
		}
	}
}

// leaderOrAuthenticatedIn reports whether a leader or an authenticated
// user has joined.
func (c *conf) leaderOrAuthenticatedIn() bool {
	for _, p := range c.parts {
		if p.State == Joined && (p.Role.Leader() || p.cand.authenticated()) {
			return true
		}
	}
	return false
}

// sorted returns the participants in the order they arrived.
func (c *conf) sorted() []*participant {
	out := make([]*participant, 0, len(c.parts))
	for _, p := range c.parts {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *participant) int { return int(a.seq - b.seq) })
	return out
}

// Wait blocks until p, as Join returned it, is out of the lobby: nil once
// admitted (or if it never waited), else ErrRejected, ErrLobbyTimeout,
// ErrLeft, ErrClosed or ctx's error.
func (f *Focus) Wait(ctx context.Context, p *Participant) error {
	if p.w == nil || p.w.decided == nil {
		return nil
	}
	select {
	case <-p.w.decided:
		return p.w.outcome // written before decided was closed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// removeLocked takes p out of the meeting; a lobby wait ends with why.
func (f *Focus) removeLocked(c *conf, p *participant, kind EventKind, by string, why error) {
	if p.State == InLobby {
		p.decide(why)
	}
	wasIn := p.State == Joined
	p.State = Gone
	delete(c.parts, p.ID)
	f.emitLocked(c, Event{Kind: kind, Participant: p.Participant, By: by}, wasIn)
	f.cfg.Logger.Info("participant out", "meeting", c.meeting.ID, "participant", p.ID, "why", kind, "by", by)
}

func (f *Focus) lobbyTimeout(id, pid string) {
	c, err := f.existing(id)
	if err != nil {
		return
	}
	if p := c.parts[pid]; p != nil && p.State == InLobby {
		f.removeLocked(c, p, EventLobbyTimeout, "", ErrLobbyTimeout)
	}
	c.mu.Unlock()
	f.release(c)
}

// Leave takes participant pid out of meeting id (hang-up, cancel).
func (f *Focus) Leave(id, pid string) error {
	c, err := f.existing(id)
	if err != nil {
		return err
	}
	p := c.parts[pid]
	if p != nil {
		f.removeLocked(c, p, EventLeft, "", ErrLeft)
	}
	c.mu.Unlock()
	f.release(c)
	if p == nil {
		return ErrNoParticipant
	}
	return nil
}

// End ends meeting id for everyone, as a tenant admin does: the meeting is
// deleted from the store, so its link and conference key open nothing
// more, then everyone in it is taken out (those in the lobby rejected,
// the others ejected, which ends their SIP dialogs and media) and its
// subscribers hear no more. If the store fails, nothing changes.
func (f *Focus) End(ctx context.Context, id string) error {
	c, err := f.existing(id)
	if err != nil {
		return f.cfg.Meetings.Delete(ctx, id) // nobody in it
	}
	if err := f.cfg.Meetings.Delete(ctx, id); err != nil {
		c.mu.Unlock()
		return err
	}
	for _, p := range c.sorted() {
		if p.State == InLobby {
			f.removeLocked(c, p, EventRejected, "", ErrRejected)
		} else {
			f.removeLocked(c, p, EventEjected, "", ErrLeft)
		}
	}
	c.dead = true // a join now finds no meeting in the store
	c.mu.Unlock()
	f.mu.Lock()
	if f.confs[id] == c {
		delete(f.confs, id)
	}
	f.mu.Unlock()
	f.cfg.Logger.Info("meeting ended", "meeting", id)
	return nil
}

// FocusMetrics is what the focus holds now, for monitoring.
type FocusMetrics struct {
	Meetings     int // meetings someone is in or waits for
	Participants int // joined
	Lobby        int // waiting in the lobby
}

// Metrics counts the live meetings and the people in them.
func (f *Focus) Metrics() FocusMetrics {
	var m FocusMetrics
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.confs {
		c.mu.Lock()
		if len(c.parts) > 0 {
			m.Meetings++
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

// Participants returns the meeting's participants, lobby included, in the
// order they arrived.
func (f *Focus) Participants(id string) []Participant {
	c, err := f.existing(id)
	if err != nil {
		return nil
	}
	defer c.mu.Unlock()
	var out []Participant
	for _, p := range c.sorted() {
		out = append(out, p.Participant)
	}
	return out
}

// RecordedName returns the name participant pid recorded when it dialed
// in (a WAV file), for actor, a leader of meeting id.
func (f *Focus) RecordedName(id, actor, pid string) ([]byte, error) {
	var out []byte
	err := f.control(id, actor, func(c *conf, a *participant) error {
		if !a.Role.Leader() {
			return fmt.Errorf("%w: only presenters hear recorded names", ErrForbidden)
		}
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		if len(p.recordedName) == 0 {
			return fmt.Errorf("%w: %s recorded no name", ErrNoParticipant, pid)
		}
		out = p.recordedName
		return nil
	})
	return out, err
}

// Participant returns one participant.
func (f *Focus) Participant(id, pid string) (Participant, error) {
	c, err := f.existing(id)
	if err != nil {
		return Participant{}, err
	}
	defer c.mu.Unlock()
	p := c.parts[pid]
	if p == nil {
		return Participant{}, ErrNoParticipant
	}
	return p.Participant, nil
}

// Watch calls fn with every change of meeting id until stop is called.
// fn runs with the meeting locked, in the order of the changes: it must
// not block or call the Focus (hand the event to a goroutine of yours).
// The media server watches to drop ejected participants and to switch a
// lobby participant's media from music to the meeting.
func (f *Focus) Watch(ctx context.Context, id string, fn func(Event)) (stop func(), err error) {
	c, err := f.conf(ctx, id)
	if err != nil {
		return nil, err
	}
	n := c.nextID
	c.nextID++
	c.watchers[n] = fn
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.watchers, n)
			c.mu.Unlock()
			f.release(c)
		})
	}, nil
}

// emitLocked records a change: watchers see it, subscribers are sent the
// new state. attendees says whether joined attendees see the change.
func (f *Focus) emitLocked(c *conf, ev Event, attendees bool) {
	ev.Meeting = c.meeting.ID
	c.version++
	c.recordLocked(ev, attendees)
	clear(c.cache)
	for _, fn := range c.watchers {
		fn(ev)
	}
	for s := range c.subs {
		f.kickLocked(c, s)
	}
	if ev.Kind == EventEjected || ev.Kind == EventLeft {
		f.participantGone(c.meeting.ID, ev.Participant.ID)
	}
}

// actorLocked returns the joined participant actor, or an error.
func (c *conf) actorLocked(actor string) (*participant, error) {
	a := c.parts[actor]
	if a == nil || a.State != Joined {
		return nil, fmt.Errorf("%w: the requester is not in the meeting", ErrForbidden)
	}
	return a, nil
}

// control runs op for actor on meeting id with the lock held.
func (f *Focus) control(id, actor string, op func(c *conf, a *participant) error) error {
	c, err := f.existing(id)
	if err != nil {
		return fmt.Errorf("%w: the requester is not in the meeting", ErrForbidden)
	}
	a, err := c.actorLocked(actor)
	if err == nil {
		err = op(c, a)
	}
	c.mu.Unlock()
	f.release(c)
	return err
}

func (c *conf) target(pid string) (*participant, error) {
	if p := c.parts[pid]; p != nil {
		return p, nil
	}
	return nil, ErrNoParticipant
}

// Admit lets participant pid in from the lobby, on the request of the
// joined leader actor.
func (f *Focus) Admit(id, actor, pid string) error {
	return f.control(id, actor, func(c *conf, a *participant) error {
		if !a.Role.Leader() {
			return fmt.Errorf("%w: only presenters admit from the lobby", ErrForbidden)
		}
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		if p.State != InLobby {
			return fmt.Errorf("%w: %s is not in the lobby", ErrWrongState, pid)
		}
		f.enterLocked(c, p, a.ID)
		return nil
	})
}

// Reject turns participant pid away from the lobby, on the request of the
// joined leader actor.
func (f *Focus) Reject(id, actor, pid string) error {
	return f.control(id, actor, func(c *conf, a *participant) error {
		if !a.Role.Leader() {
			return fmt.Errorf("%w: only presenters reject from the lobby", ErrForbidden)
		}
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		if p.State != InLobby {
			return fmt.Errorf("%w: %s is not in the lobby", ErrWrongState, pid)
		}
		f.removeLocked(c, p, EventRejected, a.ID, ErrRejected)
		return nil
	})
}

// Promote makes the joined attendee pid a presenter. Any presenter may.
// Anonymous and federated users can be promoted once they have joined.
func (f *Focus) Promote(id, actor, pid string) error {
	return f.control(id, actor, func(c *conf, a *participant) error {
		if !a.Role.Leader() {
			return fmt.Errorf("%w: only presenters promote", ErrForbidden)
		}
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		if p.State != Joined || p.Role != Attendee {
			return fmt.Errorf("%w: %s is not a joined attendee", ErrWrongState, pid)
		}
		p.Role = Presenter
		c.muteLocked(p)
		f.emitLocked(c, Event{Kind: EventRole, Participant: p.Participant, By: a.ID}, true)
		return nil
	})
}

// Demote makes presenter pid an attendee. Only the organizer decides who
// else presents; the organizer cannot be demoted.
func (f *Focus) Demote(id, actor, pid string) error {
	return f.control(id, actor, func(c *conf, a *participant) error {
		if a.Role != Organizer {
			return fmt.Errorf("%w: only the organizer demotes", ErrForbidden)
		}
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		if p.State != Joined || p.Role != Presenter {
			return fmt.Errorf("%w: %s is not a presenter", ErrWrongState, pid)
		}
		p.Role = Attendee
		c.muteLocked(p)
		f.emitLocked(c, Event{Kind: EventRole, Participant: p.Participant, By: a.ID}, true)
		return nil
	})
}

// Eject removes joined participant pid. The organizer may eject anyone
// but an organizer; a presenter, attendees only.
func (f *Focus) Eject(id, actor, pid string) error {
	return f.control(id, actor, func(c *conf, a *participant) error {
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		switch {
		case !a.Role.Leader():
			return fmt.Errorf("%w: attendees eject nobody", ErrForbidden)
		case p.Role == Organizer:
			return fmt.Errorf("%w: the organizer cannot be ejected", ErrForbidden)
		case a.Role != Organizer && p.Role != Attendee:
			return fmt.Errorf("%w: only the organizer ejects presenters", ErrForbidden)
		case p.State != Joined:
			return fmt.Errorf("%w: %s has not joined (reject it from the lobby)", ErrWrongState, pid)
		}
		f.removeLocked(c, p, EventEjected, a.ID, ErrLeft)
		return nil
	})
}

// Lock sends every newcomer but the organizer to the lobby while the
// meeting runs (locked), or stops doing so. Organizer only.
func (f *Focus) Lock(id, actor string, locked bool) error {
	return f.control(id, actor, func(c *conf, a *participant) error {
		if a.Role != Organizer {
			return fmt.Errorf("%w: only the organizer locks the meeting", ErrForbidden)
		}
		if c.locked != locked {
			c.locked = locked
			f.emitLocked(c, Event{Kind: EventPolicy, By: a.ID}, true)
		}
		return nil
	})
}

// MuteAll mutes the audience (muted) or lets it speak again: while it is
// muted, the media server forwards no attendee's audio, newcomers'
// included; presenters and the organizer are heard. Any leader may. Each
// attendee's Muted changes, with an EventRole; then an EventPolicy.
func (f *Focus) MuteAll(id, actor string, muted bool) error {
	return f.control(id, actor, func(c *conf, a *participant) error {
		if !a.Role.Leader() {
			return fmt.Errorf("%w: only presenters mute the audience", ErrForbidden)
		}
		if c.muted == muted {
			return nil
		}
		c.muted = muted
		for _, p := range c.sorted() {
			if p.State == Joined && c.muteLocked(p) {
				f.emitLocked(c, Event{Kind: EventRole, Participant: p.Participant, By: a.ID}, true)
			}
		}
		f.emitLocked(c, Event{Kind: EventPolicy, By: a.ID}, true)
		return nil
	})
}

// muteLocked sets whether p is muted: an attendee while the audience is.
// It reports whether that changed.
func (c *conf) muteLocked(p *participant) bool {
	muted := c.muted && !p.Role.Leader()
	changed := p.Muted != muted
	p.Muted = muted
	return changed
}

// SetAccess changes the meeting's access policy and dial-in option, in the
// store too. Organizer only; it applies to those who join from now on.
func (f *Focus) SetAccess(ctx context.Context, id, actor string, access AccessPolicy, dialInLobby bool) error {
	if _, ok := accessNames[access]; !ok {
		return fmt.Errorf("%w: access policy %d", ErrInvalid, access)
	}
	return f.control(id, actor, func(c *conf, a *participant) error {
		if a.Role != Organizer {
			return fmt.Errorf("%w: only the organizer changes the access policy", ErrForbidden)
		}
		return f.updateLocked(ctx, c, a, func(m *Meeting) error {
			m.Access, m.DialInLobby = access, dialInLobby
			return nil
		})
	})
}

// SetPresenters changes the meeting's presenter policy (and chosen
// presenters), in the store too. Organizer only; it applies to those who
// join from now on.
func (f *Focus) SetPresenters(ctx context.Context, id, actor string, policy PresenterPolicy, chosen []string) error {
	if _, ok := presenterNames[policy]; !ok {
		return fmt.Errorf("%w: presenter policy %d", ErrInvalid, policy)
	}
	var list []string
	for _, s := range chosen {
		aor, err := auth.CanonicalAOR(s)
		if err != nil {
			return fmt.Errorf("%w: presenter %q: %w", ErrInvalid, s, err)
		}
		list = append(list, aor)
	}
	return f.control(id, actor, func(c *conf, a *participant) error {
		if a.Role != Organizer {
			return fmt.Errorf("%w: only the organizer changes the presenter policy", ErrForbidden)
		}
		return f.updateLocked(ctx, c, a, func(m *Meeting) error {
			m.Presenter, m.Presenters = policy, list
			return nil
		})
	})
}

func (f *Focus) updateLocked(ctx context.Context, c *conf, a *participant, fn func(*Meeting) error) error {
	ctx, cancel := context.WithTimeout(ctx, defaultStoreTimeout)
	defer cancel()
	m, err := f.cfg.Meetings.Update(ctx, c.meeting.ID, fn)
	if err != nil {
		return err
	}
	c.meeting = m
	f.emitLocked(c, Event{Kind: EventPolicy, By: a.ID}, true)
	return nil
}

// AddUser admits participant pid to the A/V conference: it returns a
// media token scoped to the meeting, the participant and its role, and the
// media server's address. A participant still in the lobby gets a token
// with the role [LobbyRole], with which the media server lets it hear the
// lobby's music and nothing of the meeting until it is admitted. binding,
// optional, is the fingerprint of the participant's DTLS certificate the
// token will be bound to.
func (f *Focus) AddUser(id, pid, binding string) (*MediaGrant, error) {
	c, err := f.existing(id)
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	p := c.parts[pid]
	if p == nil {
		return nil, ErrNoParticipant
	}
	if !f.cfg.Now().Before(c.meeting.Expires) {
		return nil, fmt.Errorf("%w: the meeting has ended", ErrNotFound)
	}
	role := p.Role.String()
	if p.State == InLobby {
		role = LobbyRole
	}
	tok := f.cfg.Tokens.Issue(MediaClaims{Meeting: id, Participant: pid, Subject: p.URI, Role: role, Binding: binding}, f.cfg.TokenTTL)
	return &MediaGrant{Token: tok, Server: f.cfg.MediaServer, Expires: f.cfg.Now().Add(f.cfg.TokenTTL).UTC().Truncate(time.Second)}, nil
}
