package conference

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parleyuc/parley/auth"
)

// Errors a MeetingStore returns.
var (
	// ErrNotFound: no meeting with that ID or dial-in conference ID, or it
	// has expired.
	ErrNotFound = errors.New("conference: meeting not found")
	// ErrExists: a meeting with that ID or dial-in conference ID exists.
	ErrExists = errors.New("conference: meeting exists")
)

// AccessPolicy says who enters a meeting directly; everyone else waits in
// the lobby until a presenter admits them. The four policies are those of
// the security model, "Participant Admittance".
type AccessPolicy int

// The access policies, strictest first.
const (
	// AccessOrganizer: "Only me, the meeting organizer (locked)".
	// Everyone except the organizer waits in the lobby until admitted.
	AccessOrganizer AccessPolicy = iota + 1
	// AccessCompany: "People I invite from my company". Anyone from the
	// organizer's company gets in directly, even if not invited.
	AccessCompany
	// AccessOrganization: "Anyone from my organization". All users of the
	// tenant get in directly, even if not invited; all others, external
	// and anonymous users included, wait in the lobby.
	AccessOrganization
	// AccessAnyone: "Anyone (there are no restrictions)". Anyone with
	// access to the meeting link gets in directly.
	AccessAnyone
)

var accessNames = map[AccessPolicy]string{
	AccessOrganizer: "organizer", AccessCompany: "company",
	AccessOrganization: "organization", AccessAnyone: "anyone",
}

// String returns the policy's wire name: organizer, company, organization
// or anyone.
func (a AccessPolicy) String() string {
	if s, ok := accessNames[a]; ok {
		return s
	}
	return fmt.Sprintf("AccessPolicy(%d)", int(a))
}

// ParseAccessPolicy parses a wire name as String returns it.
func ParseAccessPolicy(s string) (AccessPolicy, error) {
	for a, name := range accessNames {
		if name == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("conference: unknown access policy %q", s)
}

// PresenterPolicy says who presents on entering a meeting ("Presenter
// Capabilities"). Whatever it says, anonymous users enter as attendees
// and can only be promoted after they have joined.
type PresenterPolicy int

// The presenter policies.
const (
	// PresentersOrganizer: "Organizer only".
	PresentersOrganizer PresenterPolicy = iota + 1
	// PresentersCompany: "People from my company": all internal users of
	// the organizer's company.
	PresentersCompany
	// PresentersEveryone: "Everyone including people outside my company":
	// everyone who joins (anonymous users excepted, as above).
	PresentersEveryone
	// PresentersChosen: "People I choose": the organizer and the users
	// listed in Meeting.Presenters.
	PresentersChosen
)

var presenterNames = map[PresenterPolicy]string{
	PresentersOrganizer: "organizer", PresentersCompany: "company",
	PresentersEveryone: "everyone", PresentersChosen: "chosen",
}

// String returns the policy's wire name: organizer, company, everyone or
// chosen.
func (p PresenterPolicy) String() string {
	if s, ok := presenterNames[p]; ok {
		return s
	}
	return fmt.Sprintf("PresenterPolicy(%d)", int(p))
}

// ParsePresenterPolicy parses a wire name as String returns it.
func ParsePresenterPolicy(s string) (PresenterPolicy, error) {
	for p, name := range presenterNames {
		if name == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("conference: unknown presenter policy %q", s)
}

// MeetingID names a meeting (Meeting.ID). A type of its own, so that a
// meeting and a participant cannot be passed in each other's place.
type MeetingID string

// ParticipantID names one join of a meeting (Participant.ID), unique per
// join: 128 random bits.
type ParticipantID string

// Meeting is a scheduled or impromptu meeting.
type Meeting struct {
	// ID names the meeting: its focus is sip:<ID>@<Tenant> and its join
	// URL ends in /meet/<ID>. 26 characters of base32, 128 random bits, so
	// the URL cannot be guessed.
	ID MeetingID `json:"id"`
	// DialInID is the numeric conference ID callers enter by phone.
	DialInID string `json:"dial_in_id"`
	// Key is the conference key anonymous users present (Digest password
	// for the username "meeting:<ID>"): 128 random bits, unique per
	// meeting.
	Key string `json:"key"`
	// Organizer is the canonical address of record of the user who
	// created the meeting; Tenant its tenant's domain.
	Organizer string `json:"organizer"`
	Tenant    string `json:"tenant"`
	// OrganizerCompany is the organizer's company in the directory when
	// the meeting was created: "my company" of the access and presenter
	// policies.
	OrganizerCompany string `json:"organizer_company,omitempty"`
	Subject          string `json:"subject,omitempty"`
	// Invitees are canonical addresses of record, for the application to
	// invite. Admission does not depend on them: as the security model
	// words "People I invite from my company", anyone from the company
	// gets in directly even if not invited, and others wait in the lobby
	// even if invited.
	Invitees []string     `json:"invitees,omitempty"`
	Access   AccessPolicy `json:"access"`
	// DialInLobby forces dial-in participants to the lobby. By default
	// (false), "people dialing in by phone bypass the lobby", unless the
	// access policy is AccessOrganizer.
	DialInLobby bool            `json:"dial_in_lobby,omitempty"`
	Presenter   PresenterPolicy `json:"presenter"`
	// Presenters are the chosen presenters (PresentersChosen).
	Presenters []string  `json:"presenters,omitempty"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
	// JoinURL is the HTTPS link to the meeting.
	JoinURL string `json:"join_url"`
	// Revision counts the meeting's updates: MeetingStore.Update adds one.
	Revision uint64 `json:"revision"`
	// Live is what the host of the live meeting keeps for the next host
	// to rebuild it (LiveState); nil when none is kept.
	Live *LiveState `json:"live,omitempty"`
}

// Clone returns a deep copy.
func (m *Meeting) Clone() *Meeting {
	c := *m
	c.Invitees = slices.Clone(m.Invitees)
	c.Presenters = slices.Clone(m.Presenters)
	c.Live = m.Live.clone()
	return &c
}

// Focus returns the SIP URI of the meeting's focus.
func (m *Meeting) Focus() string { return "sip:" + string(m.ID) + "@" + m.Tenant }

// MeetingStore keeps meetings. Implementations return copies: a caller
// changes a meeting only through Update. Package store provides
// persistent implementations; MemoryMeetings is the in-memory one.
type MeetingStore interface {
	// Create stores a new meeting, or returns an error wrapping ErrExists
	// if its ID or DialInID is taken.
	Create(ctx context.Context, m *Meeting) error
	// Get returns the meeting with the given ID, or an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, id MeetingID) (*Meeting, error)
	// ByDialInID returns the meeting with the given dial-in conference ID.
	ByDialInID(ctx context.Context, dialInID string) (*Meeting, error)
	// Update applies fn to the stored meeting atomically and adds one to
	// its Revision; if fn returns an error nothing is changed and the
	// error is returned.
	Update(ctx context.Context, id MeetingID, fn func(*Meeting) error) (*Meeting, error)
	// Delete removes a meeting.
	Delete(ctx context.Context, id MeetingID) error
	// ByOrganizer lists the meetings organized by aor.
	ByOrganizer(ctx context.Context, aor string) ([]*Meeting, error)
}

// MemoryMeetings is a MeetingStore in memory, safe for concurrent use.
type MemoryMeetings struct {
	mu     sync.RWMutex
	byID   map[MeetingID]*Meeting
	dialIn map[string]MeetingID // dial-in ID -> meeting ID
	// leases and tokens are those of HostLeases: the lease held on a
	// meeting, and the newest token granted (kept after the lease).
	leases map[MeetingID]memoryLease
	tokens map[MeetingID]uint64
}

// NewMemoryMeetings returns an empty store.
func NewMemoryMeetings() *MemoryMeetings {
	return &MemoryMeetings{byID: map[MeetingID]*Meeting{}, dialIn: map[string]MeetingID{},
		leases: map[MeetingID]memoryLease{}, tokens: map[MeetingID]uint64{}}
}

// Create implements MeetingStore.
func (s *MemoryMeetings) Create(_ context.Context, m *Meeting) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[m.ID]; ok {
		return fmt.Errorf("%w: id %s", ErrExists, m.ID)
	}
	if _, ok := s.dialIn[m.DialInID]; ok && m.DialInID != "" {
		return fmt.Errorf("%w: dial-in id %s", ErrExists, m.DialInID)
	}
	s.byID[m.ID] = m.Clone()
	if m.DialInID != "" {
		s.dialIn[m.DialInID] = m.ID
	}
	return nil
}

// Get implements MeetingStore.
func (s *MemoryMeetings) Get(_ context.Context, id MeetingID) (*Meeting, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return m.Clone(), nil
}

// ByDialInID implements MeetingStore.
func (s *MemoryMeetings) ByDialInID(ctx context.Context, dialInID string) (*Meeting, error) {
	s.mu.RLock()
	id, ok := s.dialIn[dialInID]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: dial-in id %s", ErrNotFound, dialInID)
	}
	return s.Get(ctx, id)
}

// Update implements MeetingStore.
func (s *MemoryMeetings) Update(_ context.Context, id MeetingID, fn func(*Meeting) error) (*Meeting, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updateLocked(id, fn)
}

func (s *MemoryMeetings) updateLocked(id MeetingID, fn func(*Meeting) error) (*Meeting, error) {
	m, ok := s.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	c, err := ApplyUpdate(m, fn)
	if err != nil {
		return nil, err
	}
	s.byID[id] = c
	return c.Clone(), nil
}

// ApplyUpdate returns the meeting MeetingStore.Update stores: fn applied
// to a copy of m, which must keep its ID and dial-in ID, with the next
// Revision. Every MeetingStore applies it; m is not changed.
func ApplyUpdate(m *Meeting, fn func(*Meeting) error) (*Meeting, error) {
	c := m.Clone()
	if err := fn(c); err != nil {
		return nil, err
	}
	if c.ID != m.ID || c.DialInID != m.DialInID {
		return nil, errors.New("conference: a meeting's ID and dial-in ID cannot change")
	}
	c.Revision = m.Revision + 1
	return c, nil
}

// Delete implements MeetingStore.
func (s *MemoryMeetings) Delete(_ context.Context, id MeetingID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.byID[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	delete(s.byID, id)
	delete(s.dialIn, m.DialInID)
	return nil
}

// ByOrganizer implements MeetingStore.
func (s *MemoryMeetings) ByOrganizer(_ context.Context, aor string) ([]*Meeting, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Meeting
	for _, m := range s.byID {
		if m.Organizer == aor {
			out = append(out, m.Clone())
		}
	}
	slices.SortFunc(out, func(a, b *Meeting) int { return a.Created.Compare(b.Created) })
	return out, nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// randomToken returns 128 random bits as 26 lower-case base32 characters.
func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return strings.ToLower(b32.EncodeToString(b[:]))
}

// dialInDigits is the length of a dial-in conference ID.
const dialInDigits = 9

// randomDialInID returns a random numeric conference ID without a leading
// zero.
func randomDialInID() string {
	lo := new(big.Int).Exp(big.NewInt(10), big.NewInt(dialInDigits-1), nil)
	span := new(big.Int).Sub(new(big.Int).Mul(lo, big.NewInt(10)), lo)
	n, _ := rand.Int(rand.Reader, span)
	return n.Add(n, lo).String()
}

// isMeetingID reports whether s has the form of a meeting ID, so that
// requests for anything else are not looked up.
func isMeetingID(s string) bool {
	if len(s) != 26 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '2' || r > '7') {
			return false
		}
	}
	return true
}

// canonical returns the canonical AOR of uri, or uri lower-cased when it
// is not a SIP address.
func canonical(uri string) string {
	if c, err := auth.CanonicalAOR(uri); err == nil {
		return c
	}
	return strings.ToLower(uri)
}
