package presence

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/hooks"
)

// Level is a watcher's relationship to a presentity; it decides which
// parts of enhanced presence the watcher sees.
type Level int

// The relationship levels, from none to closest.
const (
	// Blocked: sees the presentity Offline and nothing else, and cannot
	// send it messages.
	Blocked Level = iota
	// External: federated partners' users not in the contacts: status and
	// basic personal data.
	External
	// Colleague: the tenant's users, by default: also time zone, work
	// phone and calendar free/busy.
	Colleague
	// Workgroup: close colleagues: also mobile phone, out-of-office notice
	// and meeting details.
	Workgroup
	// Personal: friends and family: everything, home phone included.
	Personal
)

func (l Level) String() string {
	switch l {
	case Blocked:
		return "blocked"
	case External:
		return "external"
	case Colleague:
		return "colleague"
	case Workgroup:
		return "workgroup"
	case Personal:
		return "personal"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// ErrInvalidLevel is what ParseLevel and SetContact return (wrapped) for
// a level that is not one of Blocked to Personal: the caller's input is
// wrong (HTTP 400), unlike a failing store ([ErrStore]).
var ErrInvalidLevel = errors.New("presence: invalid level")

// ParseLevel returns the level String names ("colleague"), or an error
// wrapping ErrInvalidLevel.
func ParseLevel(name string) (Level, error) {
	for l := Blocked; l <= Personal; l++ {
		if strings.EqualFold(name, l.String()) {
			return l, nil
		}
	}
	return 0, fmt.Errorf("%w %q (want blocked, external, colleague, workgroup or personal)", ErrInvalidLevel, name)
}

// Visibility says which enhanced-presence data a level sees (the
// categories of the reference's table 1).
type Visibility struct {
	Status, Note                       bool // availability and note
	Name, Title, Company, Email        bool // personal data
	TimeZone                           bool
	WorkPhone, MobilePhone, HomePhone  bool // telephone numbers
	FreeBusy, OutOfOffice, MeetingInfo bool // calendar information
}

// DefaultVisibility is what each level sees unless configured otherwise.
var DefaultVisibility = map[Level]Visibility{
	Blocked:   {},
	External:  {Status: true, Name: true, Title: true, Company: true, Email: true},
	Colleague: {Status: true, Note: true, Name: true, Title: true, Company: true, Email: true, TimeZone: true, WorkPhone: true, FreeBusy: true},
	Workgroup: {Status: true, Note: true, Name: true, Title: true, Company: true, Email: true, TimeZone: true, WorkPhone: true,
		MobilePhone: true, FreeBusy: true, OutOfOffice: true, MeetingInfo: true},
	Personal: {Status: true, Note: true, Name: true, Title: true, Company: true, Email: true, TimeZone: true, WorkPhone: true,
		MobilePhone: true, HomePhone: true, FreeBusy: true, OutOfOffice: true, MeetingInfo: true},
}

// UserPolicy is one user's privacy settings.
type UserPolicy struct {
	// Contacts maps a watcher's address of record to its level; Blocked
	// entries are blocks.
	Contacts map[string]Level
	// PrivacyMode hides presence from everyone not in Contacts.
	PrivacyMode bool
}

// PolicyStore keeps users' privacy settings. Implementations must be safe
// for concurrent use.
type PolicyStore interface {
	Policy(ctx context.Context, aor string) (UserPolicy, error)
	SetPolicy(ctx context.Context, aor string, p UserPolicy) error
}

// MemoryPolicies is a PolicyStore in memory.
type MemoryPolicies struct {
	mu sync.Mutex
	m  map[string]UserPolicy
}

// NewMemoryPolicies returns an empty MemoryPolicies.
func NewMemoryPolicies() *MemoryPolicies { return &MemoryPolicies{m: map[string]UserPolicy{}} }

// Policy implements PolicyStore.
func (s *MemoryPolicies) Policy(_ context.Context, aor string) (UserPolicy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.m[aor]
	p.Contacts = maps.Clone(p.Contacts)
	return p, nil
}

// SetPolicy implements PolicyStore.
func (s *MemoryPolicies) SetPolicy(_ context.Context, aor string, p UserPolicy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.Contacts = maps.Clone(p.Contacts)
	s.m[aor] = p
	return nil
}

// PresencePolicyConfig configures a [PresencePolicy].
type PresencePolicyConfig struct {
	Store PolicyStore // default: MemoryPolicies
	// Visibility overrides DefaultVisibility per level.
	Visibility map[Level]Visibility
}

// VisibilityRule decides what each watcher sees of each presentity, and
// who may not reach a user at all. The PresenceServer asks it for every
// NOTIFY and the Router for every request; it tells them when a user's
// rule changes, so active watchers get a fresh view at once.
//
// *PresencePolicy is the rule of the reference text and the default; an
// application supplies its own (PresenceServerConfig.Policy,
// RouterConfig.Policy) to replace it, or wraps it: embed the
// *PresencePolicy, call its Level, then restrict or widen the answer.
// Implementations must be safe for concurrent use.
//
// Two further methods are used when the rule has them, as *PresencePolicy
// (and so a wrapper embedding it) does: View(full *Presence, level Level)
// *Presence, which cuts a presentity's full state down to what a level
// sees (otherwise DefaultVisibility applies), and IsContact(ctx, owner,
// sender string) (bool, error), which exempts a user's contacts from spim
// limits (otherwise nobody is exempt).
type VisibilityRule interface {
	// Level returns watcher's relationship to presentity. Blocked sees
	// the presentity Offline and nothing else. An error leaves the
	// watcher with the last view it was sent.
	Level(ctx context.Context, presentity string, watcher *auth.Identity) (Level, error)
	// Blocks reports whether owner refuses requests from sender: they get
	// 480, as if owner were offline. An error refuses the request (503).
	Blocks(ctx context.Context, owner, sender string) (bool, error)
	// OnChange registers f, to be called with a user's address of record
	// after what others may see of that user changed, and returns the
	// function that removes it. f must not block.
	OnChange(f func(aor string)) (remove func())
}

// PresencePolicy is the visibility rule of the reference text, and the
// default [VisibilityRule]: each user keeps contacts, each at a [Level]
// (Blocked, External, Colleague, Workgroup, Personal) that decides which
// enhanced-presence categories that watcher sees ([Visibility]); a user
// in privacy mode is seen only by contacts; blocked users see the user
// Offline and cannot reach them. Users not in the contacts get a level
// from who they are (see [PresencePolicy.Level]).
//
// Composition: give the same PresencePolicy to PresenceServerConfig.Policy
// and RouterConfig.Policy, and to the application's settings API, which
// calls SetContact, RemoveContact and SetPrivacyMode for the signed-in
// user. Changes take effect at once: OnChange hooks are called with the
// user whose policy changed, and a PresenceServer subscribes itself, so
// its watchers are sent a fresh view.
//
// Config ([PresencePolicyConfig]): Store keeps the users' settings
// (default in memory; store.OpenBolt and the Redis store give persistent
// ones); Visibility overrides what a level sees.
//
// To change the rule, wrap it (embed *PresencePolicy and override Level or
// Blocks) or replace it with your own [VisibilityRule]. It is safe for
// concurrent use.
type PresencePolicy struct {
	store      PolicyStore
	visibility map[Level]Visibility

	onChange hooks.List[func(aor string)]
	updateMu sync.Mutex // serializes read-modify-write updates
}

var _ VisibilityRule = (*PresencePolicy)(nil)

// NewPresencePolicy returns a PresencePolicy, or an error naming the
// invalid field.
func NewPresencePolicy(cfg PresencePolicyConfig) (*PresencePolicy, error) {
	if cfg.Store == nil {
		cfg.Store = NewMemoryPolicies()
	}
	for l := range cfg.Visibility {
		if l < Blocked || l > Personal {
			return nil, fmt.Errorf("presence: PresencePolicyConfig.Visibility: unknown level %d", int(l))
		}
	}
	if v, ok := cfg.Visibility[Blocked]; ok && v != (Visibility{}) {
		// A blocked watcher sees the presentity Offline and nothing else.
		return nil, errors.New("presence: PresencePolicyConfig.Visibility: Blocked must see nothing")
	}
	vis := maps.Clone(DefaultVisibility)
	maps.Copy(vis, cfg.Visibility)
	return &PresencePolicy{store: cfg.Store, visibility: vis}, nil
}

// OnChange registers f to be called after a user's policy changes (through
// SetContact, RemoveContact or SetPrivacyMode), with the user's address of
// record, and returns the function that removes it. A PresenceServer
// registers itself; f runs on the goroutine that made the change.
func (pp *PresencePolicy) OnChange(f func(aor string)) (remove func()) {
	return pp.onChange.Add(f)
}

func (pp *PresencePolicy) changed(aor string) {
	for _, f := range pp.onChange.All() {
		f(aor)
	}
}

// SetContact puts watcher in owner's contacts at level (Blocked blocks).
func (pp *PresencePolicy) SetContact(ctx context.Context, owner, watcher string, level Level) error {
	if level < Blocked || level > Personal {
		return fmt.Errorf("%w %d", ErrInvalidLevel, int(level))
	}
	return pp.update(ctx, owner, func(p *UserPolicy) {
		if p.Contacts == nil {
			p.Contacts = map[string]Level{}
		}
		p.Contacts[canonicalAOR(watcher)] = level
	})
}

// RemoveContact takes watcher out of owner's contacts (and unblocks it).
func (pp *PresencePolicy) RemoveContact(ctx context.Context, owner, watcher string) error {
	return pp.update(ctx, owner, func(p *UserPolicy) { delete(p.Contacts, canonicalAOR(watcher)) })
}

// Policy returns owner's contacts and privacy mode as stored; a failing
// store's error wraps ErrStore.
func (pp *PresencePolicy) Policy(ctx context.Context, owner string) (UserPolicy, error) {
	p, err := pp.store.Policy(ctx, canonicalAOR(owner))
	if err != nil {
		return p, fmt.Errorf("%w: policy of %s: %w", ErrStore, owner, err)
	}
	return p, nil
}

// SetPrivacyMode turns owner's privacy mode on or off.
func (pp *PresencePolicy) SetPrivacyMode(ctx context.Context, owner string, on bool) error {
	return pp.update(ctx, owner, func(p *UserPolicy) { p.PrivacyMode = on })
}

func (pp *PresencePolicy) update(ctx context.Context, owner string, f func(*UserPolicy)) error {
	owner = canonicalAOR(owner)
	pp.updateMu.Lock()
	defer pp.updateMu.Unlock()
	p, err := pp.store.Policy(ctx, owner)
	if err != nil {
		return fmt.Errorf("%w: policy of %s: %w", ErrStore, owner, err)
	}
	f(&p)
	if err := pp.store.SetPolicy(ctx, owner, p); err != nil {
		return fmt.Errorf("%w: policy of %s: %w", ErrStore, owner, err)
	}
	pp.changed(owner)
	return nil
}

// Level returns watcher's relationship to presentity: the level in the
// presentity's contacts; else, in privacy mode, Blocked; else Colleague for
// users of the same tenant, External for federated users, Blocked for
// anonymous ones. A user is Personal to themselves.
func (pp *PresencePolicy) Level(ctx context.Context, presentity string, watcher *auth.Identity) (Level, error) {
	presentity = canonicalAOR(presentity)
	if canonicalAOR(watcher.URI) == presentity {
		return Personal, nil
	}
	p, err := pp.store.Policy(ctx, presentity)
	if err != nil {
		return Blocked, fmt.Errorf("%w: policy of %s: %w", ErrStore, presentity, err)
	}
	return p.Level(presentity, watcher), nil
}

// Level is PresencePolicy.Level with presentity's policy p already read.
func (p UserPolicy) Level(presentity string, watcher *auth.Identity) Level {
	presentity = canonicalAOR(presentity)
	if canonicalAOR(watcher.URI) == presentity {
		return Personal
	}
	if l, ok := p.Contacts[canonicalAOR(watcher.URI)]; ok {
		return l
	}
	switch {
	case p.PrivacyMode || watcher.Kind == auth.Anonymous:
		return Blocked
	case watcher.Kind == auth.Federated || watcher.Tenant != domainOf(presentity):
		return External
	}
	return Colleague
}

// Blocks reports whether owner has blocked sender: its requests to owner
// are refused.
func (pp *PresencePolicy) Blocks(ctx context.Context, owner, sender string) (bool, error) {
	p, err := pp.store.Policy(ctx, canonicalAOR(owner))
	if err != nil {
		return false, fmt.Errorf("%w: policy of %s: %w", ErrStore, owner, err)
	}
	l, ok := p.Contacts[canonicalAOR(sender)]
	return ok && l == Blocked, nil
}

// IsContact reports whether owner has sender in their contacts, at a
// level other than Blocked. Requests from non-contacts are subject to spim
// limits.
func (pp *PresencePolicy) IsContact(ctx context.Context, owner, sender string) (bool, error) {
	p, err := pp.store.Policy(ctx, canonicalAOR(owner))
	if err != nil {
		return false, fmt.Errorf("%w: policy of %s: %w", ErrStore, owner, err)
	}
	l, ok := p.Contacts[canonicalAOR(sender)]
	return ok && l != Blocked, nil
}

// spimCheck applies the spim limit to a request from id to owner: nothing
// for the owner's contacts, otherwise one token per request from the
// sender's bucket (and its domain's, for a federated sender). It returns
// the response to send when the request is refused, else nil.
func spimCheck(ctx context.Context, req *sip.Request, rule VisibilityRule, spim *auth.Throttle, owner string, id *auth.Identity) *sip.Response {
	if rule == nil || spim == nil || canonicalAOR(owner) == canonicalAOR(id.URI) {
		return nil
	}
	if c, ok := rule.(contactRule); ok {
		if ok, err := c.IsContact(ctx, owner, id.URI); err != nil || ok {
			return nil
		}
	}
	domain := ""
	if id.Kind == auth.Federated {
		domain = domainOf(id.URI)
	}
	ok, wait := spim.AllowSender(canonicalAOR(id.URI), domain)
	if ok {
		return nil
	}
	res := sip.NewResponseFromRequest(req, 503, "Too many requests to people who do not know you", nil)
	res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second)))))
	return res
}

// contactRule is the optional method of a VisibilityRule that exempts a
// user's contacts from spim limits.
type contactRule interface {
	IsContact(ctx context.Context, owner, sender string) (bool, error)
}

// viewRule is the optional method of a VisibilityRule that cuts a full
// state down to what a level sees.
type viewRule interface {
	View(full *Presence, level Level) *Presence
}

// viewFor is what a watcher at level sees of full under rule: the rule's
// own View if it has one, else DefaultVisibility's.
func viewFor(rule VisibilityRule, full *Presence, level Level) *Presence {
	if v, ok := rule.(viewRule); ok {
		return v.View(full, level)
	}
	return view(DefaultVisibility, full, level)
}

// nilRule reports whether rule is nil, or a nil *PresencePolicy (which
// would otherwise pass as a rule and panic on its first use).
func nilRule(rule VisibilityRule) bool {
	pp, ok := rule.(*PresencePolicy)
	return rule == nil || ok && pp == nil
}

// View returns what a watcher at level may see of full: a copy holding
// only the visible parts. A Blocked watcher sees the presentity Offline.
func (pp *PresencePolicy) View(full *Presence, level Level) *Presence {
	return view(pp.visibility, full, level)
}

func view(visibility map[Level]Visibility, full *Presence, level Level) *Presence {
	v := visibility[level]
	out := &Presence{Entity: full.Entity, Availability: Offline}
	if !v.Status {
		return out
	}
	out.Availability = full.Availability
	if v.Note {
		out.Note = full.Note
	}
	if d := full.Personal; d != nil && (v.Name || v.Title || v.Company || v.Email || v.TimeZone) {
		out.Personal = &PersonalData{
			Name: pick(v.Name, d.Name), Title: pick(v.Title, d.Title), Company: pick(v.Company, d.Company),
			Email: pick(v.Email, d.Email), TimeZone: pick(v.TimeZone, d.TimeZone),
		}
	}
	if ph := full.Phones; ph != nil {
		p := &PhoneNumbers{Work: pick(v.WorkPhone, ph.Work), Mobile: pick(v.MobilePhone, ph.Mobile), Home: pick(v.HomePhone, ph.Home)}
		if *p != (PhoneNumbers{}) {
			out.Phones = p
		}
	}
	if c := full.Calendar; c != nil && (v.FreeBusy || v.OutOfOffice || v.MeetingInfo) {
		cal := &Calendar{OutOfOffice: pick(v.OutOfOffice, c.OutOfOffice), Meeting: pick(v.MeetingInfo, c.Meeting)}
		if v.FreeBusy {
			cal.Busy = append([]Period(nil), c.Busy...)
		}
		if len(cal.Busy) > 0 || cal.OutOfOffice != "" || cal.Meeting != "" {
			out.Calendar = cal
		}
	}
	return out
}

func pick(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}

// canonicalAOR is auth.CanonicalAOR, with unparsable input kept as it is
// (it then matches nothing).
func canonicalAOR(s string) string {
	if c, err := auth.CanonicalAOR(s); err == nil {
		return c
	}
	return s
}

func domainOf(aor string) string {
	c := canonicalAOR(aor)
	return c[strings.LastIndexByte(c, '@')+1:]
}
