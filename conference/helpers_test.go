package conference

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/parleyuc/parley/auth"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// go test merges the Focus's logs into the test output; keep errors.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if os.Getenv("DEBUGSIP") != "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}
	goleak.VerifyTestMain(m)
}

// clock is a settable time for tokens and meeting expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testDirectory has tenant example.test: alice (organizer, licensed), bob
// and carol of Example Corp, vic of a vendor, dave without a license,
// eve disabled.
func testDirectory(t testing.TB) *auth.MemoryDirectory {
	t.Helper()
	dir := auth.NewMemoryDirectory()
	if err := dir.PutTenant(auth.Tenant{Domain: "example.test", Name: "Example"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []auth.User{
		{URI: "sip:alice@example.test", DisplayName: "Alice", Enabled: true, MeetingLicense: true, Company: "Example Corp"},
		{URI: "sip:bob@example.test", DisplayName: "Bob", Enabled: true, MeetingLicense: true, Company: "Example Corp"},
		{URI: "sip:carol@example.test", DisplayName: "Carol", Enabled: true, Company: "Example Corp"},
		{URI: "sip:vic@example.test", DisplayName: "Vic", Enabled: true, Company: "Vendor Ltd"},
		{URI: "sip:dave@example.test", DisplayName: "Dave", Enabled: true, Company: "Example Corp"},
		{URI: "sip:eve@example.test", DisplayName: "Eve", Enabled: false, MeetingLicense: true, Company: "Example Corp"},
	} {
		u.Tenant = "example.test"
		if err := dir.PutUser(u); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type focusEnv struct {
	t      testing.TB
	focus  *Focus
	tokens *TokenIssuer
	clock  *clock
	store  *MemoryMeetings
}

func newFocusEnv(t testing.TB, opts ...func(*FocusConfig)) *focusEnv {
	t.Helper()
	c := newClock()
	tokens, err := NewTokenIssuer(nil, c.now)
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemoryMeetings()
	cfg := FocusConfig{Meetings: store, Directory: testDirectory(t), Tokens: tokens, MediaServer: "media.example.test:3478",
		JoinURL: "https://meet.example.test", Now: c.now}
	for _, o := range opts {
		o(&cfg)
	}
	f, err := NewFocus(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return &focusEnv{t: t, focus: f, tokens: tokens, clock: c, store: store}
}

func internal(user string) *auth.Identity {
	return &auth.Identity{URI: "sip:" + user + "@example.test", DisplayName: user, Tenant: "example.test", Kind: auth.Internal, Method: auth.MethodDigest}
}

func remote(user string) *auth.Identity {
	id := internal(user)
	id.Kind = auth.Remote
	return id
}

func federated(user string) *auth.Identity {
	return &auth.Identity{URI: "sip:" + user + "@partner.test", DisplayName: user, Tenant: "partner.test", Kind: auth.Federated}
}

var anonCount struct {
	sync.Mutex
	n int
}

func anonymous(meeting MeetingID, name string) *auth.Identity {
	anonCount.Lock()
	anonCount.n++
	n := anonCount.n
	anonCount.Unlock()
	return &auth.Identity{URI: "sip:anon" + time.Duration(n).String() + "@anonymous.invalid", DisplayName: name,
		Kind: auth.Anonymous, Method: auth.MethodConferenceKey, Meeting: string(meeting)}
}

// schedule has alice schedule a meeting.
func (e *focusEnv) schedule(opts MeetingOptions) *Meeting {
	e.t.Helper()
	m, err := e.focus.Schedule(context.Background(), internal("alice"), opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *focusEnv) join(m *Meeting, id *auth.Identity) *Participant {
	e.t.Helper()
	p, err := e.focus.Join(context.Background(), m.ID, JoinRequest{Identity: id})
	if err != nil {
		e.t.Fatalf("%s joins: %v", id.URI, err)
	}
	return p
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func (e *focusEnv) state(m *Meeting, p *Participant) (State, Role) {
	q, err := e.focus.Participant(m.ID, p.ID)
	if err != nil {
		return Gone, 0
	}
	return q.State, q.Role
}

func mustLobby(t testing.TB, cfg LobbyConfig) *Lobby {
	t.Helper()
	l, err := NewLobby(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
