package conference

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// subscription collects a subscriber's updates.
type subscription struct {
	updates chan Update
	cancel  func()
	state   ConferenceInfo // the full and partial documents merged
}

func (e *focusEnv) subscribe(m *Meeting, p *Participant) *subscription {
	e.t.Helper()
	s := &subscription{updates: make(chan Update, 64)}
	var err error
	s.cancel, err = e.focus.Subscribe(m.ID, p.ID, func(u Update) { s.updates <- u })
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(s.cancel)
	return s
}

// next returns the next update's parsed document (nil when it ended).
func (s *subscription) next(t *testing.T) *ConferenceInfo {
	t.Helper()
	select {
	case u := <-s.updates:
		if u.Ended {
			return nil
		}
		ci, err := ParseConferenceInfo(u.Doc)
		if err != nil {
			t.Fatalf("%v\n%s", err, u.Doc)
		}
		if err := s.state.Apply(ci); err != nil {
			t.Fatalf("%v\n%s", err, u.Doc)
		}
		return &s.state
	case <-time.After(5 * time.Second):
		t.Fatal("no conference-info update")
		return nil
	}
}

// until returns the first update for which ok holds.
func (s *subscription) until(t *testing.T, ok func(*ConferenceInfo) bool) *ConferenceInfo {
	t.Helper()
	for {
		ci := s.next(t)
		if ci == nil || ok(ci) {
			return ci
		}
	}
}

// roster lists "name:status:role" for each endpoint, with ":hand" when
// its hand is raised.
func roster(ci *ConferenceInfo) string {
	var out []string
	for _, u := range ci.Users.User {
		for _, ep := range u.Endpoints {
			s := u.DisplayText + ":" + ep.Status + ":" + u.Roles.Entry[0]
			if ep.HandRaised {
				s += ":hand"
			}
			out = append(out, s)
		}
	}
	slices.Sort(out) // partial updates append

	return strings.Join(out, " ")
}

func TestSubscribersSeeWhatTheirRoleAllows(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Subject: "Budget", Access: AccessCompany, Presenter: PresentersOrganizer})
	org := e.join(m, internal("alice"))
	att := e.join(m, internal("bob"))
	leader := e.subscribe(m, org)
	attendee := e.subscribe(m, att)
	leader.next(t)
	attendee.next(t)

	guest := e.join(m, anonymous(m.ID, "Guest"))
	lobby := e.subscribe(m, guest)
	// Leaders see the lobby: they are notified of the newcomer.
	ci := leader.until(t, func(ci *ConferenceInfo) bool { return strings.Contains(roster(ci), "Guest") })
	if got := roster(ci); got != "Guest:pending:attendee alice:connected:organizer bob:connected:attendee" {
		t.Fatalf("leader view %q", got)
	}
	if ci.Entity != m.Focus() || ci.Description.Subject != "Budget" || *ci.ConfState.UserCount != 2 {
		t.Fatalf("conference %+v %+v", ci, ci.ConfState)
	}
	if ci.Users.User[2].Type != "anonymous" || ci.Users.User[2].Endpoints[0].ParticipantID() != guest.ID {
		t.Fatalf("guest entry %+v", ci.Users.User[2])
	}
	// The lobby participant sees only itself.
	if got := roster(lobby.next(t)); got != "Guest:pending:attendee" {
		t.Fatalf("lobby view %q", got)
	}
	// Attendees do not see the lobby.
	if err := e.focus.Lobby().Admit(context.Background(), m.ID, org.ID, guest.ID); err != nil {
		t.Fatal(err)
	}
	ci = attendee.until(t, func(ci *ConferenceInfo) bool { return strings.Contains(roster(ci), "Guest") })
	if got := roster(ci); got != "Guest:connected:attendee alice:connected:organizer bob:connected:attendee" {
		t.Fatalf("attendee view after admission %q", got)
	}
	// Once admitted, the former lobby participant sees the roster.
	if got := roster(lobby.until(t, func(ci *ConferenceInfo) bool { return *ci.ConfState.UserCount == 3 })); got != "Guest:connected:attendee alice:connected:organizer bob:connected:attendee" {
		t.Fatalf("admitted guest's view %q", got)
	}
	// Leaving ends the participant's subscription.
	_ = e.focus.Leave(m.ID, att.ID)
	for ci := attendee.next(t); ci != nil; ci = attendee.next(t) {
	}
}

func TestEachSubscriberCountsItsOwnVersions(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessAnyone})
	org := e.join(m, internal("alice"))
	a := e.subscribe(m, org)
	if v := a.next(t).Version; v != 1 {
		t.Fatalf("first version %d", v)
	}
	e.join(m, internal("bob"))
	b := e.subscribe(m, org)
	if v := b.next(t).Version; v != 1 {
		t.Fatalf("second subscriber's first version %d", v)
	}
	if v := a.next(t).Version; v != 2 {
		t.Fatalf("first subscriber's second version %d", v)
	}
}

// TestConferenceInfoValidatesAgainstRFC4575Schema renders every view
// Parley sends and validates it with xmllint against the RFC's schema.
func TestConferenceInfoValidatesAgainstRFC4575Schema(t *testing.T) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("xmllint (libxml2-utils) is not installed")
		}
		t.Skip("xmllint is not installed (Debian: apt-get install libxml2-utils)")
	}
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Subject: "Q&A <review> \"1\"", Access: AccessCompany})
	org := e.join(m, internal("alice"))
	att := e.join(m, federated("pat"))
	_ = e.focus.Lobby().Admit(context.Background(), m.ID, org.ID, att.ID)
	lobby := e.join(m, anonymous(m.ID, "Ann & <Co>"))
	e.join(m, internal("alice")) // a second device
	_ = e.focus.Lock(context.Background(), m.ID, org.ID, true)
	if err := e.focus.SetHand(context.Background(), m.ID, att.ID, att.ID, true); err != nil { // Parley's extension element
		t.Fatal(err)
	}

	dir := t.TempDir()
	var files []string
	for name, p := range map[string]*Participant{"leader": org, "attendee": att, "lobby": lobby} {
		doc, err := e.focus.ConferenceInfo(context.Background(), m.ID, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".xml")
		if err := os.WriteFile(path, withVersion(doc, 7), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	// Partial notifications: a subscriber's second document, after a
	// departure and a promotion.
	sub := e.subscribe(m, org)
	first := <-sub.updates
	_ = e.focus.Leave(m.ID, att.ID)
	second := <-sub.updates
	if !bytes.Contains(first.Doc, []byte(`state="full"`)) || !bytes.Contains(second.Doc, []byte(`state="partial"`)) || !bytes.Contains(second.Doc, []byte(`state="deleted"`)) {
		t.Fatalf("want a full then a partial document with a deletion:\n%s\n%s", first.Doc, second.Doc)
	}
	for i, d := range [][]byte{first.Doc, second.Doc} {
		path := filepath.Join(dir, fmt.Sprintf("notify%d.xml", i))
		_ = os.WriteFile(path, d, 0o600)
		files = append(files, path)
	}

	// And one that breaks the schema, to show xmllint would notice.
	bad := filepath.Join(dir, "bad.xml")
	doc, _ := e.focus.ConferenceInfo(context.Background(), m.ID, org.ID)
	_ = os.WriteFile(bad, bytes.Replace(doc, []byte("<status>pending</status>"), []byte("<status>lobby</status>"), 1), 0o600)

	schema := filepath.Join("testdata", "conference-info.xsd")
	out, err := exec.Command(xmllint, append([]string{"--noout", "--schema", schema}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("xmllint: %v\n%s", err, out)
	}
	if out, err := exec.Command(xmllint, "--noout", "--schema", schema, bad).CombinedOutput(); err == nil {
		t.Fatalf("xmllint accepts an invalid status:\n%s", out)
	}
	// Our own validation agrees.
	badDoc, _ := os.ReadFile(bad)
	if _, err := ParseConferenceInfo(badDoc); err == nil {
		t.Fatal("ParseConferenceInfo accepts an invalid status")
	}
}

func TestParseConferenceInfoRefusesHostileDocuments(t *testing.T) {
	for name, doc := range map[string]string{
		"dtd":          `<!DOCTYPE x [<!ENTITY a "b">]><conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:a@b"/>`,
		"deep":         `<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:a@b">` + strings.Repeat("<x>", 50) + strings.Repeat("</x>", 50) + `</conference-info>`,
		"no entity":    `<conference-info xmlns="urn:ietf:params:xml:ns:conference-info"/>`,
		"bad state":    `<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:a@b" state="most"/>`,
		"user twice":   `<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:a@b"><users><user entity="sip:u@b"/><user entity="sip:u@b"/></users></conference-info>`,
		"empty roles":  `<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:a@b"><users><user entity="sip:u@b"><roles/></user></users></conference-info>`,
		"bad joining":  `<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:a@b"><users><user entity="sip:u@b"><endpoint entity="e"><joining-method>teleported</joining-method></endpoint></user></users></conference-info>`,
		"not xml":      `conference`,
		"wrong root":   `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>`,
		"partial user": `<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:a@b" state="full"><users><user entity="sip:u@b" state="partial"/></users></conference-info>`,
	} {
		if _, err := ParseConferenceInfo([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseConferenceInfo(bytes.Repeat([]byte(" "), MaxConferenceInfoSize+1)); err == nil {
		t.Error("oversized document accepted")
	}
}

// TestPartialNotificationsAddUpToTheFullState: after a random run of
// joins, lobby waits, admissions, rejections, promotions, demotions,
// ejections, leaves and locks, every subscriber's merged state equals the
// full document it may see now.
func TestPartialNotificationsAddUpToTheFullState(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessCompany, Presenter: PresentersOrganizer})
	org := e.join(m, internal("alice"))
	subs := map[string]*subscription{string(org.ID): e.subscribe(m, org)}
	var people []*Participant
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		switch op := rng.IntN(9); {
		case op < 2 || len(people) == 0:
			id := internal([]string{"bob", "carol", "dave"}[rng.IntN(3)])
			if op == 1 {
				id = anonymous(m.ID, fmt.Sprintf("g%d", i))
			}
			p := e.join(m, id)
			people = append(people, p)
			if rng.IntN(2) == 0 {
				subs[string(p.ID)] = e.subscribe(m, p)
			}
		default:
			p := people[rng.IntN(len(people))]
			f := e.focus
			switch op {
			case 2:
				_ = f.Lobby().Admit(context.Background(), m.ID, org.ID, p.ID)
			case 3:
				_ = f.Lobby().Reject(context.Background(), m.ID, org.ID, p.ID)
			case 4:
				_ = f.Promote(context.Background(), m.ID, org.ID, p.ID)
			case 5:
				_ = f.Demote(context.Background(), m.ID, org.ID, p.ID)
			case 6:
				if rng.IntN(2) == 0 {
					_ = f.Eject(context.Background(), m.ID, org.ID, p.ID)
				} else {
					_ = f.Leave(m.ID, p.ID)
				}
			case 7:
				_ = f.Lock(context.Background(), m.ID, org.ID, rng.IntN(2) == 0)
			case 8: // a hand raised or lowered by its owner, or lowered by the organizer
				if rng.IntN(3) == 0 {
					_ = f.SetHand(context.Background(), m.ID, org.ID, p.ID, false)
				} else {
					_ = f.SetHand(context.Background(), m.ID, p.ID, p.ID, rng.IntN(2) == 0)
				}
			}
		}
	}
	waitSettled(e.focus)
	checked := 0
	for pid, s := range subs {
		// Drain what was delivered; a gone participant's subscription ended.
		ended := false
	drain:
		for {
			select {
			case u := <-s.updates:
				if u.Ended {
					ended = true
					continue
				}
				ci, err := ParseConferenceInfo(u.Doc)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.state.Apply(ci); err != nil {
					t.Fatalf("%v\n%s", err, u.Doc)
				}
			default:
				break drain
			}
		}
		doc, err := e.focus.ConferenceInfo(context.Background(), m.ID, ParticipantID(pid))
		if err != nil {
			if !ended {
				t.Errorf("%s is gone but its subscription did not end", pid)
			}
			continue
		}
		want, _ := ParseConferenceInfo(doc)
		if got, w := roster(&s.state), roster(want); got != w {
			t.Errorf("subscriber %s merged:\n%s\nfull:\n%s", pid, got, w)
		}
		if *s.state.ConfState.UserCount != *want.ConfState.UserCount || *s.state.ConfState.Locked != *want.ConfState.Locked {
			t.Errorf("subscriber %s conference state %+v, want %+v", pid, s.state.ConfState, want.ConfState)
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d live subscribers checked", checked)
	}
	t.Logf("%d subscribers checked", checked)
}

// TestAttendeesLearnNothingOfTheLobby: someone entering and leaving the
// lobby sends attendees nothing; the next thing they hear of is a change
// they may see.
func TestAttendeesLearnNothingOfTheLobby(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessCompany, Presenter: PresentersOrganizer})
	org := e.join(m, internal("alice"))
	att := e.join(m, internal("bob"))
	s := e.subscribe(m, att)
	s.next(t)
	guest := e.join(m, anonymous(m.ID, "Secret guest"))
	_ = e.focus.Lobby().Reject(context.Background(), m.ID, org.ID, guest.ID)
	carol := e.join(m, internal("carol"))
	u := <-s.updates
	if bytes.Contains(u.Doc, []byte(guest.ID)) || bytes.Contains(u.Doc, []byte(guest.URI)) || bytes.Contains(u.Doc, []byte("Secret")) || !bytes.Contains(u.Doc, []byte(carol.ID)) {
		t.Fatalf("attendee's next notification:\n%s", u.Doc)
	}
	if !bytes.Contains(u.Doc, []byte(`state="partial"`)) {
		t.Fatalf("not a partial notification:\n%s", u.Doc)
	}
	// Promoted, bob sees the lobby: a full state again.
	lobby := e.join(m, anonymous(m.ID, "Waiting"))
	_ = e.focus.Promote(context.Background(), m.ID, org.ID, att.ID)
	ci := s.until(t, func(ci *ConferenceInfo) bool { return strings.Contains(roster(ci), "Waiting:pending") })
	if ci.State != "full" {
		t.Fatalf("promoted subscriber got a %s document", ci.State)
	}
	// Demoted, the lobby disappears from its view.
	_ = e.focus.Demote(context.Background(), m.ID, org.ID, att.ID)
	s.until(t, func(ci *ConferenceInfo) bool { return !strings.Contains(roster(ci), "Waiting") })
	_ = lobby
}

func TestApplyRefusesAGap(t *testing.T) {
	var state ConferenceInfo
	partial := &ConferenceInfo{Entity: "sip:m@x", State: "partial", Version: 2}
	if err := state.Apply(partial); !errors.Is(err, ErrVersionGap) {
		t.Fatalf("partial before full: %v", err)
	}
	_ = state.Apply(&ConferenceInfo{Entity: "sip:m@x", State: "full", Version: 1})
	partial.Version = 3
	if err := state.Apply(partial); !errors.Is(err, ErrVersionGap) {
		t.Fatalf("version 3 after 1: %v", err)
	}
	partial.Version = 2
	if err := state.Apply(partial); err != nil || state.Version != 2 {
		t.Fatalf("version 2 after 1: %v", err)
	}
}
