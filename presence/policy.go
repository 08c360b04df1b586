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

// ParseLevel returns the level String names ("colleague"), or an error.
func ParseLevel(name string) (Level, error) {
	for l := Blocked; l <= Personal; l++ {
		if strings.EqualFold(name, l.String()) {
			return l, nil
		}
	}
	return 0, fmt.Errorf("presence: unknown level %q (want blocked, external, colleague, workgroup or personal)", name)
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

// PresencePolicy decides what each watcher may see of each presentity, and
// who may not reach a user at all. Changes take effect at once: the
// function given to OnChange is called with the user whose policy changed,
// so active watchers can be sent a fresh view. It is safe for concurrent
// use.
type PresencePolicy struct {
	store      PolicyStore
	visibility map[Level]Visibility

	mu       sync.Mutex
	onChange []func(aor string)
	updateMu sync.Mutex // serializes read-modify-write updates
}

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

// OnChange registers f to be called after a user's policy changes.
func (pp *PresencePolicy) OnChange(f func(aor string)) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.onChange = append(pp.onChange, f)
}

func (pp *PresencePolicy) changed(aor string) {
	pp.mu.Lock()
	fs := pp.onChange
	pp.mu.Unlock()
	for _, f := range fs {
		f(aor)
	}
}

// SetContact puts watcher in owner's contacts at level (Blocked blocks).
func (pp *PresencePolicy) SetContact(ctx context.Context, owner, watcher string, level Level) error {
	if level < Blocked || level > Personal {
		return fmt.Errorf("presence: invalid level %d", level)
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

// Policy returns owner's contacts and privacy mode as stored.
func (pp *PresencePolicy) Policy(ctx context.Context, owner string) (UserPolicy, error) {
	return pp.store.Policy(ctx, canonicalAOR(owner))
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
		return fmt.Errorf("presence: policy of %s: %w", owner, err)
	}
	f(&p)
	if err := pp.store.SetPolicy(ctx, owner, p); err != nil {
		return fmt.Errorf("presence: policy of %s: %w", owner, err)
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
		return Blocked, fmt.Errorf("presence: policy of %s: %w", presentity, err)
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
		return false, err
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
		return false, err
	}
	l, ok := p.Contacts[canonicalAOR(sender)]
	return ok && l != Blocked, nil
}

// spimCheck applies the spim limit to a request from id to owner: nothing
// for the owner's contacts, otherwise one token per request from the
// sender's bucket (and its domain's, for a federated sender). It returns
// the response to send when the request is refused, else nil.
func spimCheck(ctx context.Context, req *sip.Request, pp *PresencePolicy, spim *auth.Throttle, owner string, id *auth.Identity) *sip.Response {
	if pp == nil || spim == nil || canonicalAOR(owner) == canonicalAOR(id.URI) {
		return nil
	}
	if ok, err := pp.IsContact(ctx, owner, id.URI); err != nil || ok {
		return nil
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

// View returns what a watcher at level may see of full: a copy holding
// only the visible parts. A Blocked watcher sees the presentity Offline.
func (pp *PresencePolicy) View(full *Presence, level Level) *Presence {
	v := pp.visibility[level]
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
