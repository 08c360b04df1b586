package conference

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parleyuc/parley/auth"
)

// partnerRule is an application's admission rule: users of partner.test
// enter directly, users of blocked.test are refused before the lobby,
// everyone else is decided by the meeting's access policy.
func partnerRule(_ context.Context, m *Meeting, c Candidate) (Admission, error) {
	switch c.Domain() {
	case "partner.test":
		return Direct, nil
	case "blocked.test":
		return Refused, nil
	}
	return AccessRule{}.Admission(context.Background(), m, c)
}

func TestCustomAdmissionRule(t *testing.T) {
	e := newFocusEnv(t, func(c *FocusConfig) {
		c.Lobby = mustLobby(t, LobbyConfig{Rule: AdmissionFunc(partnerRule)})
	})
	ctx := t.Context()
	m := e.schedule(MeetingOptions{Access: AccessCompany})
	org := e.join(m, internal("alice"))

	if p := e.join(m, federated("pat")); p.State != Joined {
		t.Errorf("partner.test user: %s, want joined directly (the app's rule)", p.State)
	}
	blocked := &auth.Identity{URI: "sip:mallory@blocked.test", Tenant: "blocked.test", Kind: auth.Federated}
	if _, err := e.focus.Join(ctx, m.ID, JoinRequest{Identity: blocked}); !errors.Is(err, ErrRefused) {
		t.Errorf("blocked.test user: %v, want ErrRefused", err)
	}
	if p := e.join(m, internal("vic")); p.State != InLobby {
		t.Errorf("vendor of the tenant: %s, want the lobby (the default rule, company access)", p.State)
	}
	for _, p := range e.focus.Participants(m.ID) {
		if strings.Contains(p.URI, "blocked.test") {
			t.Errorf("a refused user is in the roster: %+v", p)
		}
	}

	// The lock is an invariant no rule lifts.
	if err := e.focus.Lock(ctx, m.ID, org.ID, true); err != nil {
		t.Fatal(err)
	}
	if p := e.join(m, federated("pam")); p.State != InLobby {
		t.Errorf("partner.test user in a locked meeting: %s, want the lobby", p.State)
	}
	if got := len(e.focus.Lobby().Waiting(m.ID)); got != 2 {
		t.Errorf("Waiting: %d, want 2 (vic, pam)", got)
	}
}

// An application's rule that lets anonymous users in directly still cannot
// let them in before a leader or an authenticated user has joined.
func TestAdmissionRuleCannotLetAnonymousInAlone(t *testing.T) {
	everyone := AdmissionFunc(func(context.Context, *Meeting, Candidate) (Admission, error) { return Direct, nil })
	e := newFocusEnv(t, func(c *FocusConfig) { c.Lobby = mustLobby(t, LobbyConfig{Rule: everyone}) })
	m := e.schedule(MeetingOptions{Access: AccessOrganizer})
	guest := e.join(m, anonymous(m.ID, "Guest"))
	if guest.State != InLobby {
		t.Fatalf("anonymous guest before anyone: %s, want the lobby", guest.State)
	}
	other := anonymous("0123456789abcdef0123456789abcdef", "Other")
	if _, err := e.focus.Join(t.Context(), m.ID, JoinRequest{Identity: other}); !errors.Is(err, ErrRefused) {
		t.Errorf("another meeting's key: %v, want ErrRefused whatever the rule", err)
	}
	e.join(m, internal("bob")) // authenticated: the rule lets bob in, and the guest with him
	if err := e.focus.Lobby().Wait(t.Context(), guest); err != nil {
		t.Errorf("guest's wait: %v, want admitted once bob joined", err)
	}
}

func TestAdmissionRuleFailureFailsTheJoin(t *testing.T) {
	broken := errors.New("allow-list unreachable")
	rule := AdmissionFunc(func(context.Context, *Meeting, Candidate) (Admission, error) { return 0, broken })
	e := newFocusEnv(t, func(c *FocusConfig) { c.Lobby = mustLobby(t, LobbyConfig{Rule: rule}) })
	m := e.schedule(MeetingOptions{})
	if _, err := e.focus.Join(t.Context(), m.ID, JoinRequest{Identity: internal("bob")}); !errors.Is(err, broken) {
		t.Errorf("Join: %v, want the rule's error", err)
	}
	bad := AdmissionFunc(func(context.Context, *Meeting, Candidate) (Admission, error) { return Admission(42), nil })
	e2 := newFocusEnv(t, func(c *FocusConfig) { c.Lobby = mustLobby(t, LobbyConfig{Rule: bad}) })
	m2 := e2.schedule(MeetingOptions{})
	if _, err := e2.focus.Join(t.Context(), m2.ID, JoinRequest{Identity: internal("bob")}); err == nil {
		t.Error("Join with a rule answering Admission(42) succeeded")
	}
	if n := len(e.focus.Participants(m.ID)) + len(e2.focus.Participants(m2.ID)); n != 0 {
		t.Errorf("%d participants after failed joins", n)
	}
}

func TestLobbyConfigErrors(t *testing.T) {
	for _, cfg := range []LobbyConfig{{Timeout: -1}, {Max: -1}} {
		if _, err := NewLobby(cfg); err == nil || !strings.Contains(err.Error(), "LobbyConfig.") {
			t.Errorf("NewLobby(%+v) = %v, want an error naming the field", cfg, err)
		}
	}
	l := mustLobby(t, LobbyConfig{})
	newFocusEnv(t, func(c *FocusConfig) { c.Lobby = l })
	cfg := FocusConfig{Meetings: NewMemoryMeetings(), Directory: testDirectory(t), Lobby: l}
	cfg.Tokens, _ = NewTokenIssuer(nil, nil)
	if _, err := NewFocus(cfg); err == nil || !strings.Contains(err.Error(), "FocusConfig.Lobby") {
		t.Errorf("a second Focus on one Lobby: %v, want an error naming FocusConfig.Lobby", err)
	}
	unbound := mustLobby(t, LobbyConfig{})
	if err := unbound.Admit(t.Context(), "m", "a", "b"); !errors.Is(err, ErrClosed) {
		t.Errorf("Admit on a Lobby that serves no Focus: %v, want ErrClosed", err)
	}
}
