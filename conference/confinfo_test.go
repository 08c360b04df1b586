package conference

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// subscription collects a subscriber's updates.
type subscription struct {
	updates chan Update
	cancel  func()
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
		return ci
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

// roster lists "name:status:role" for each endpoint.
func roster(ci *ConferenceInfo) string {
	var out []string
	for _, u := range ci.Users.User {
		for _, ep := range u.Endpoints {
			out = append(out, u.DisplayText+":"+ep.Status+":"+u.Roles.Entry[0])
		}
	}
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
	if got := roster(ci); got != "alice:connected:organizer bob:connected:attendee Guest:pending:attendee" {
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
	if err := e.focus.Admit(m.ID, org.ID, guest.ID); err != nil {
		t.Fatal(err)
	}
	ci = attendee.until(t, func(ci *ConferenceInfo) bool { return strings.Contains(roster(ci), "Guest") })
	if got := roster(ci); got != "alice:connected:organizer bob:connected:attendee Guest:connected:attendee" {
		t.Fatalf("attendee view after admission %q", got)
	}
	// Once admitted, the former lobby participant sees the roster.
	if got := roster(lobby.until(t, func(ci *ConferenceInfo) bool { return *ci.ConfState.UserCount == 3 })); !strings.HasPrefix(got, "alice:connected") {
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
		t.Skip("xmllint (libxml2-utils) is not installed")
	}
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Subject: "Q&A <review> \"1\"", Access: AccessCompany})
	org := e.join(m, internal("alice"))
	att := e.join(m, federated("pat"))
	_ = e.focus.Admit(m.ID, org.ID, att.ID)
	lobby := e.join(m, anonymous(m.ID, "Ann & <Co>"))
	e.join(m, internal("alice")) // a second device
	_ = e.focus.Lock(m.ID, org.ID, true)

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
