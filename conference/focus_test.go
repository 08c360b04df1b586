package conference

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parleyuc/parley/auth"
)

func TestScheduleOnlyByLicensedTenantUsers(t *testing.T) {
	e := newFocusEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		id   *auth.Identity
	}{
		{"user without a meeting license", internal("dave")},
		{"disabled user", internal("eve")},
		{"unknown user", internal("zed")},
		{"federated user", federated("pat")},
		{"anonymous user", anonymous("x", "Guest")},
		{"nobody", nil},
	} {
		if _, err := e.focus.Schedule(ctx, tc.id, MeetingOptions{}); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("%s schedules: err = %v, want ErrNotAllowed", tc.name, err)
		}
	}
	// A federated user whose partner domain names itself like the tenant is
	// still not a user of the tenant.
	fake := federated("alice")
	fake.Tenant = "example.test"
	if _, err := e.focus.Schedule(ctx, fake, MeetingOptions{}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("federated user with the tenant's domain schedules: %v", err)
	}

	for _, id := range []*auth.Identity{internal("alice"), remote("bob")} {
		m, err := e.focus.Schedule(ctx, id, MeetingOptions{Subject: "Plan", Invitees: []string{"sip:Carol@EXAMPLE.test", "sip:pat@partner.test"}})
		if err != nil {
			t.Fatalf("%s schedules: %v", id.URI, err)
		}
		if m.Organizer != id.URI || m.Access != AccessCompany || m.Presenter != PresentersCompany || m.OrganizerCompany != "Example Corp" {
			t.Errorf("meeting %+v", m)
		}
		if got := m.Invitees; len(got) != 2 || got[0] != "sip:Carol@example.test" { // user parts are case-sensitive
			t.Errorf("invitees %v, want canonical AORs", got)
		}
		if !m.Expires.Equal(e.clock.now().Add(DefaultMeetingLifetime)) {
			t.Errorf("impromptu meeting expires %v", m.Expires)
		}
	}
	// Signed in with a provider's token whose claims grant the license.
	byClaim := internal("dave")
	byClaim.Method, byClaim.MeetingLicense = auth.MethodBearer, true
	if _, err := e.focus.Schedule(ctx, byClaim, MeetingOptions{}); err != nil {
		t.Errorf("dave, licensed by his token's claims: %v", err)
	}
	if _, err := e.focus.Schedule(ctx, internal("alice"), MeetingOptions{Invitees: []string{"not a uri"}}); err == nil {
		t.Error("a bad invitee is accepted")
	}
	if _, err := e.focus.Schedule(ctx, internal("alice"), MeetingOptions{Expires: e.clock.now().Add(-time.Minute)}); err == nil {
		t.Error("a meeting that has already ended is accepted")
	}
}

func TestMeetingKeysAndLinksAreUniqueAndUnguessable(t *testing.T) {
	e := newFocusEnv(t)
	ids, keys, dialIns := map[string]bool{}, map[string]bool{}, map[string]bool{}
	base32 := regexp.MustCompile(`^[a-z2-7]{26}$`)
	for range 200 {
		m := e.schedule(MeetingOptions{})
		// 26 base32 characters carry 130 bits, 128 of them random.
		if !base32.MatchString(string(m.ID)) || !base32.MatchString(m.Key) {
			t.Fatalf("ID %q, key %q: want 128 random bits in base32", m.ID, m.Key)
		}
		if !regexp.MustCompile(`^[1-9][0-9]{8}$`).MatchString(m.DialInID) {
			t.Fatalf("dial-in ID %q", m.DialInID)
		}
		if m.JoinURL != "https://meet.example.test/meet/"+string(m.ID) {
			t.Fatalf("join URL %q", m.JoinURL)
		}
		if ids[string(m.ID)] || keys[m.Key] || dialIns[m.DialInID] || string(m.ID) == m.Key {
			t.Fatal("a meeting ID, key or dial-in ID repeats")
		}
		ids[string(m.ID)], keys[m.Key], dialIns[m.DialInID] = true, true, true
		got, err := e.store.ByDialInID(context.Background(), m.DialInID)
		if err != nil || got.ID != m.ID {
			t.Fatalf("ByDialInID: %v %v", got, err)
		}
	}
}

func TestConferenceKeyOnlyForLiveMeetings(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Expires: e.clock.now().Add(time.Hour)})
	ctx := context.Background()
	if k, err := e.focus.ConferenceKey(ctx, string(m.ID)); err != nil || k != m.Key {
		t.Fatalf("ConferenceKey = %q, %v", k, err)
	}
	if _, err := e.focus.ConferenceKey(ctx, randomToken()); !errors.Is(err, auth.ErrUnknownMeeting) {
		t.Errorf("unknown meeting: %v", err)
	}
	e.clock.advance(time.Hour)
	if _, err := e.focus.ConferenceKey(ctx, string(m.ID)); !errors.Is(err, auth.ErrUnknownMeeting) {
		t.Errorf("expired meeting: %v", err)
	}
	if _, err := e.focus.Join(ctx, m.ID, JoinRequest{Identity: internal("alice")}); !errors.Is(err, ErrNotFound) {
		t.Errorf("join an expired meeting: %v", err)
	}
}

// TestRoles checks who may promote, demote, admit, reject, eject, lock and
// change the policies, and that each refusal changes nothing.
func TestRoles(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessOrganization, Presenter: PresentersChosen, Presenters: []string{"sip:bob@example.test"}})
	org := e.join(m, internal("alice"))
	pres := e.join(m, internal("bob"))
	att := e.join(m, internal("carol"))
	att2 := e.join(m, remote("vic"))
	fed := e.join(m, federated("pat")) // lobby: organization only
	anon := e.join(m, anonymous(m.ID, "Guest"))
	for p, want := range map[*Participant]Role{org: Organizer, pres: Presenter, att: Attendee, att2: Attendee} {
		if p.State != Joined {
			t.Fatalf("%s: %s", p.URI, p.State)
		}
		if _, r := e.state(m, p); r != want {
			t.Fatalf("%s: role %s, want %s", p.URI, r, want)
		}
	}
	if fed.State != InLobby || anon.State != InLobby {
		t.Fatalf("federated %s, anonymous %s: want both in the lobby", fed.State, anon.State)
	}
	f := e.focus
	ctx := context.Background()

	// Attendees control nothing.
	wantErr(t, "attendee admits", f.Lobby().Admit(context.Background(), m.ID, att.ID, fed.ID), ErrForbidden)
	wantErr(t, "attendee rejects", f.Lobby().Reject(context.Background(), m.ID, att.ID, fed.ID), ErrForbidden)
	wantErr(t, "attendee promotes", f.Promote(context.Background(), m.ID, att.ID, att2.ID), ErrForbidden)
	wantErr(t, "attendee ejects", f.Eject(context.Background(), m.ID, att.ID, att2.ID), ErrForbidden)
	wantErr(t, "attendee locks", f.Lock(context.Background(), m.ID, att.ID, true), ErrForbidden)
	// Someone in the lobby controls nothing, not even itself.
	wantErr(t, "lobby admits itself", f.Lobby().Admit(context.Background(), m.ID, fed.ID, fed.ID), ErrForbidden)
	// Nobody outside the meeting does.
	wantErr(t, "stranger admits", f.Lobby().Admit(context.Background(), m.ID, "nobody", fed.ID), ErrForbidden)
	// Anonymous users cannot be promoted before they have joined.
	wantErr(t, "promote from the lobby", f.Promote(context.Background(), m.ID, org.ID, anon.ID), ErrWrongState)

	// Presenters admit from the lobby and promote attendees...
	if err := f.Lobby().Admit(context.Background(), m.ID, pres.ID, fed.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "admit twice", f.Lobby().Admit(context.Background(), m.ID, pres.ID, fed.ID), ErrWrongState)
	if err := f.Promote(context.Background(), m.ID, pres.ID, fed.ID); err != nil {
		t.Fatalf("presenter promotes a federated user who joined: %v", err)
	}
	if _, r := e.state(m, fed); r != Presenter {
		t.Fatalf("promoted federated user is %s", r)
	}
	wantErr(t, "promote a presenter", f.Promote(context.Background(), m.ID, pres.ID, fed.ID), ErrWrongState)
	// ...but only the organizer demotes, changes policies and locks.
	wantErr(t, "presenter demotes", f.Demote(context.Background(), m.ID, pres.ID, fed.ID), ErrForbidden)
	wantErr(t, "presenter changes access", f.SetAccess(ctx, m.ID, pres.ID, AccessAnyone, false), ErrForbidden)
	wantErr(t, "presenter changes presenters", f.SetPresenters(ctx, m.ID, pres.ID, PresentersEveryone, nil), ErrForbidden)
	wantErr(t, "presenter locks", f.Lock(context.Background(), m.ID, pres.ID, true), ErrForbidden)
	// Presenters eject attendees, not other presenters or the organizer.
	wantErr(t, "presenter ejects presenter", f.Eject(context.Background(), m.ID, pres.ID, fed.ID), ErrForbidden)
	wantErr(t, "presenter ejects organizer", f.Eject(context.Background(), m.ID, pres.ID, org.ID), ErrForbidden)
	wantErr(t, "organizer ejects organizer", f.Eject(context.Background(), m.ID, org.ID, org.ID), ErrForbidden)
	wantErr(t, "organizer demotes organizer", f.Demote(context.Background(), m.ID, org.ID, org.ID), ErrWrongState)
	if stored, _ := e.store.Get(ctx, m.ID); stored.Access != AccessOrganization || stored.Presenter != PresentersChosen {
		t.Fatalf("refused policy changes reached the store: %+v", stored)
	}

	if err := f.Eject(context.Background(), m.ID, pres.ID, att2.ID); err != nil {
		t.Fatalf("presenter ejects attendee: %v", err)
	}
	if s, _ := e.state(m, att2); s != Gone {
		t.Fatalf("ejected attendee is %s", s)
	}
	// The organizer controls everything.
	if err := f.Demote(context.Background(), m.ID, org.ID, fed.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.Promote(context.Background(), m.ID, org.ID, anon.ID); !errors.Is(err, ErrWrongState) {
		t.Fatalf("anonymous still in the lobby promoted: %v", err)
	}
	if err := f.Lobby().Admit(context.Background(), m.ID, org.ID, anon.ID); err != nil {
		t.Fatal(err)
	}
	if _, r := e.state(m, anon); r != Attendee {
		t.Fatalf("admitted anonymous user is %s, want attendee", r)
	}
	if err := f.Promote(context.Background(), m.ID, org.ID, anon.ID); err != nil {
		t.Fatalf("anonymous user promoted after joining: %v", err)
	}
	if err := f.Eject(context.Background(), m.ID, org.ID, pres.ID); err != nil {
		t.Fatalf("organizer ejects presenter: %v", err)
	}
	if err := f.SetAccess(ctx, m.ID, org.ID, AccessAnyone, true); err != nil {
		t.Fatal(err)
	}
	if err := f.SetPresenters(ctx, m.ID, org.ID, PresentersEveryone, nil); err != nil {
		t.Fatal(err)
	}
	if stored, _ := e.store.Get(ctx, m.ID); stored.Access != AccessAnyone || !stored.DialInLobby || stored.Presenter != PresentersEveryone {
		t.Fatalf("policy change not stored: %+v", stored)
	}
	// The new presenter policy applies to those who join from now on.
	if p := e.join(m, remote("vic")); p.Role != Presenter {
		t.Fatalf("joined under 'everyone' as %s", p.Role)
	}
}

func TestLockSendsNewcomersToTheLobby(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessAnyone})
	org := e.join(m, internal("alice"))
	if err := e.focus.Lock(context.Background(), m.ID, org.ID, true); err != nil {
		t.Fatal(err)
	}
	if p := e.join(m, internal("bob")); p.State != InLobby {
		t.Fatalf("bob joins a locked meeting: %s", p.State)
	}
	if p := e.join(m, internal("alice")); p.State != Joined {
		t.Fatalf("the organizer's second device: %s", p.State)
	}
	if err := e.focus.Lock(context.Background(), m.ID, org.ID, false); err != nil {
		t.Fatal(err)
	}
	if p := e.join(m, internal("carol")); p.State != Joined {
		t.Fatalf("carol joins the unlocked meeting: %s", p.State)
	}
}

// TestMuteAllHoldsAttendeesAudio: a leader mutes the audience; every
// attendee is Muted, newcomers and demoted presenters too, leaders never;
// attendees cannot; unmuting lets everyone speak.
func TestMuteAllHoldsAttendeesAudio(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessAnyone, Presenter: PresentersOrganizer})
	org := e.join(m, internal("alice"))
	bob := e.join(m, internal("bob"))
	muted := func(pid string) bool {
		p, err := e.focus.Participant(m.ID, ParticipantID(pid))
		if err != nil {
			t.Fatal(err)
		}
		return p.Muted
	}
	wantErr(t, "attendee mutes all", e.focus.MuteAll(context.Background(), m.ID, bob.ID, true), ErrForbidden)
	if err := e.focus.MuteAll(context.Background(), m.ID, org.ID, true); err != nil {
		t.Fatal(err)
	}
	carol := e.join(m, internal("carol"))
	if !muted(string(bob.ID)) || !muted(string(carol.ID)) || muted(string(org.ID)) {
		t.Fatalf("muted: bob %v, carol (newcomer) %v, alice (organizer) %v", muted(string(bob.ID)), muted(string(carol.ID)), muted(string(org.ID)))
	}
	if err := e.focus.Promote(context.Background(), m.ID, org.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	if muted(string(bob.ID)) {
		t.Fatal("a presenter is muted")
	}
	if err := e.focus.Demote(context.Background(), m.ID, org.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	if !muted(string(bob.ID)) {
		t.Fatal("a demoted presenter is not muted with the audience")
	}
	if err := e.focus.MuteAll(context.Background(), m.ID, org.ID, false); err != nil {
		t.Fatal(err)
	}
	if muted(string(bob.ID)) || muted(string(carol.ID)) {
		t.Fatal("still muted after unmute-all")
	}
}

func TestLobbyOutcomes(t *testing.T) {
	e := newFocusEnv(t, func(c *FocusConfig) { c.Lobby = mustLobby(t, LobbyConfig{Timeout: 150 * time.Millisecond}) })
	m := e.schedule(MeetingOptions{Access: AccessOrganization})
	ctx := context.Background()
	org := e.join(m, internal("alice"))

	admitted := e.join(m, anonymous(m.ID, "A"))
	rejected := e.join(m, anonymous(m.ID, "R"))
	timedOut := e.join(m, anonymous(m.ID, "T"))
	left := e.join(m, federated("pat"))
	if err := e.focus.Lobby().Admit(context.Background(), m.ID, org.ID, admitted.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.focus.Lobby().Reject(context.Background(), m.ID, org.ID, rejected.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.focus.Leave(m.ID, left.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "admitted", e.focus.Lobby().Wait(ctx, admitted), nil)
	wantErr(t, "rejected", e.focus.Lobby().Wait(ctx, rejected), ErrRejected)
	wantErr(t, "left", e.focus.Lobby().Wait(ctx, left), ErrLeft)
	start := time.Now()
	wantErr(t, "timed out", e.focus.Lobby().Wait(ctx, timedOut), ErrLobbyTimeout)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("lobby timeout took %v", d)
	}
	if s, _ := e.state(m, timedOut); s != Gone {
		t.Errorf("timed-out participant is %s", s)
	}
	// An admitted participant is not timed out later.
	time.Sleep(200 * time.Millisecond)
	if s, _ := e.state(m, admitted); s != Joined {
		t.Errorf("admitted participant is %s after the lobby timeout", s)
	}
}

// TestAnonymousWaitsForALeader: under "anyone", an anonymous user who
// arrives first waits, and gets in as soon as an authenticated user joins.
func TestAnonymousWaitsForALeader(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessAnyone})
	guest := e.join(m, anonymous(m.ID, "Early guest"))
	if guest.State != InLobby {
		t.Fatalf("anonymous user alone: %s", guest.State)
	}
	// A federated user is authenticated: it may get in under "anyone",
	// and then anonymous users may too.
	e.join(m, federated("pat"))
	if err := e.focus.Lobby().Wait(context.Background(), guest); err != nil {
		t.Fatalf("guest after an authenticated user joined: %v", err)
	}
	if s, r := e.state(m, guest); s != Joined || r != Attendee {
		t.Fatalf("guest is %s %s", s, r)
	}
}

func TestWatchSeesEveryChangeInOrder(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessCompany})
	var got []string
	stop, err := e.focus.Watch(context.Background(), m.ID, func(ev Event) {
		got = append(got, ev.Participant.DisplayName+":"+map[EventKind]string{EventLobby: "lobby", EventJoined: "joined",
			EventRejected: "rejected", EventLeft: "left", EventEjected: "ejected", EventRole: "role", EventPolicy: "policy"}[ev.Kind])
	})
	if err != nil {
		t.Fatal(err)
	}
	org := e.join(m, internal("alice"))
	vic := e.join(m, remote("vic"))
	_ = e.focus.Lobby().Admit(context.Background(), m.ID, org.ID, vic.ID)
	_ = e.focus.Promote(context.Background(), m.ID, org.ID, vic.ID)
	_ = e.focus.Eject(context.Background(), m.ID, org.ID, vic.ID)
	_ = e.focus.Leave(m.ID, org.ID)
	stop()
	want := "alice:joined vic:lobby vic:joined vic:role vic:ejected alice:left"
	if strings.Join(got, " ") != want {
		t.Fatalf("events %q, want %q", strings.Join(got, " "), want)
	}
	e.focus.mu.Lock()
	n := len(e.focus.confs)
	e.focus.mu.Unlock()
	if n != 0 {
		t.Errorf("%d meetings kept in memory after everyone left", n)
	}
}

func TestAddUserGivesAScopedToken(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessCompany})
	org := e.join(m, internal("alice"))
	guest := e.join(m, anonymous(m.ID, "G"))
	lg, err := e.focus.AddUser(m.ID, guest.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := e.tokens.Verify(lg.Token, MediaClaims{Meeting: m.ID, Participant: guest.ID}); err != nil || c.Role != LobbyRole {
		t.Fatalf("media for someone in the lobby: role %v, %v", c, err)
	}
	g, err := e.focus.AddUser(m.ID, org.ID, "sha-256 AB:CD")
	if err != nil {
		t.Fatal(err)
	}
	if g.Server != "media.example.test:3478" || !g.Expires.Equal(e.clock.now().Add(DefaultTokenTTL)) {
		t.Fatalf("grant %+v", g)
	}
	c, err := e.tokens.Verify(g.Token, MediaClaims{Meeting: m.ID, Participant: org.ID, Subject: org.URI, Binding: "sha-256 ab:cd"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != "organizer" {
		t.Errorf("role %q", c.Role)
	}
}

// TestCloseEndsEverything: closing the Focus ends lobby waits with
// ErrClosed and subscriptions with a last update, and later calls fail
// cleanly instead of touching what Close ended.
func TestCloseEndsEverything(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessOrganizer})
	org := e.join(m, internal("alice"))
	waiting := e.join(m, internal("bob"))
	s := e.subscribe(m, org)
	s.next(t)
	if err := e.focus.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "lobby wait", e.focus.Lobby().Wait(context.Background(), waiting), ErrClosed)
	if ci := s.next(t); ci != nil {
		t.Fatal("subscription did not end")
	}
	wantErr(t, "admit after close", e.focus.Lobby().Admit(context.Background(), m.ID, org.ID, waiting.ID), ErrForbidden)
	wantErr(t, "leave after close", e.focus.Leave(m.ID, waiting.ID), ErrClosed)
	if _, err := e.focus.Join(context.Background(), m.ID, JoinRequest{Identity: internal("carol")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("join after close: %v", err)
	}
	if _, err := e.focus.Subscribe(m.ID, org.ID, func(Update) {}); err == nil {
		t.Fatal("subscribe after close")
	}
}

func TestExpiredMeetingTakesNobodyIn(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Expires: e.clock.now().Add(time.Hour)})
	org := e.join(m, internal("alice"))
	e.clock.advance(time.Hour)
	if _, err := e.focus.Join(context.Background(), m.ID, JoinRequest{Identity: internal("bob")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("join an expired meeting someone is still in: %v", err)
	}
	if _, err := e.focus.AddUser(m.ID, org.ID, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("media token for an expired meeting: %v", err)
	}
	// A meeting deleted from the store is gone too.
	m2 := e.schedule(MeetingOptions{})
	e.join(m2, internal("alice"))
	_ = e.store.Delete(context.Background(), m2.ID)
	if _, err := e.focus.Join(context.Background(), m2.ID, JoinRequest{Identity: internal("bob")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("join a deleted meeting someone is still in: %v", err)
	}
}

func TestFederatedUserCannotPassForATenantUser(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessAnyone})
	e.join(m, internal("alice"))
	impostor := federated("alice")
	impostor.URI = "sip:alice@example.test"
	if _, err := e.focus.Join(context.Background(), m.ID, JoinRequest{Identity: impostor}); !errors.Is(err, ErrRefused) {
		t.Fatalf("federated user with the tenant's domain: %v", err)
	}
}

func TestSubscriptionsPerParticipantAreBounded(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{})
	org := e.join(m, internal("alice"))
	for range MaxSubscriptions {
		e.subscribe(m, org)
	}
	if _, err := e.focus.Subscribe(m.ID, org.ID, func(Update) {}); !errors.Is(err, ErrFull) {
		t.Fatalf("subscription %d: %v", MaxSubscriptions+1, err)
	}
}

func TestOrganizerGetsInToAFullMeeting(t *testing.T) {
	e := newFocusEnv(t, func(c *FocusConfig) { c.MaxParticipants = 1 })
	m := e.schedule(MeetingOptions{Access: AccessAnyone})
	e.join(m, internal("bob"))
	if _, err := e.focus.Join(context.Background(), m.ID, JoinRequest{Identity: internal("carol")}); !errors.Is(err, ErrFull) {
		t.Fatalf("carol joins a full meeting: %v", err)
	}
	e.join(m, internal("alice"))
}

// failingDelete is a meeting store whose Delete fails.
type failingDelete struct{ *MemoryMeetings }

func (failingDelete) Delete(context.Context, MeetingID) error { return errors.New("disk full") }

// TestEndMeeting: an admin ends a meeting for everyone in it (the lobby
// too), and nobody can join it again; if the store cannot delete it,
// nothing changes.
func TestEndMeeting(t *testing.T) {
	e := newFocusEnv(t)
	f := e.focus
	m := e.schedule(MeetingOptions{Access: AccessOrganization})
	org, bob := e.join(m, internal("alice")), e.join(m, internal("bob"))
	guest := e.join(m, anonymous(m.ID, "Visitor"))
	if s, _ := e.state(m, guest); s != InLobby {
		t.Fatalf("guest %v, want in the lobby", s)
	}
	waited := make(chan error, 1)
	go func() { waited <- f.Lobby().Wait(context.Background(), guest) }()
	if got := f.Metrics(); got != (FocusMetrics{Meetings: 1, Participants: 2, Lobby: 1}) {
		t.Fatalf("metrics %+v", got)
	}

	if err := f.End(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		wantErr(t, "the lobby's wait", err, ErrRejected)
	case <-time.After(5 * time.Second):
		t.Fatal("the guest still waits after the meeting ended")
	}
	for _, p := range []*Participant{org, bob, guest} {
		if s, _ := e.state(m, p); s != Gone {
			t.Fatalf("%s is %v after the meeting ended", p.ID, s)
		}
	}
	if got := f.Metrics(); got != (FocusMetrics{}) {
		t.Fatalf("metrics after the end %+v", got)
	}
	_, err := f.Join(context.Background(), m.ID, JoinRequest{Identity: internal("alice")})
	wantErr(t, "joining an ended meeting", err, ErrNotFound)
	wantErr(t, "ending it again", f.End(context.Background(), m.ID), ErrNotFound)

	e = newFocusEnv(t, func(c *FocusConfig) { c.Meetings = failingDelete{c.Meetings.(*MemoryMeetings)} })
	m = e.schedule(MeetingOptions{})
	org = e.join(m, internal("alice"))
	if err := e.focus.End(context.Background(), m.ID); err == nil {
		t.Fatal("End reported success though the store failed")
	}
	if s, _ := e.state(m, org); s != Joined {
		t.Fatalf("after a failed End the organizer is %v", s)
	}
	if _, err := e.focus.Meeting(context.Background(), m.ID); err != nil {
		t.Fatalf("after a failed End: %v", err)
	}
}
