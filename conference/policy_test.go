package conference

import (
	"fmt"
	"testing"
)

// policyMeeting is organized by alice of Example Corp, tenant example.test.
func policyMeeting(access AccessPolicy, dialInLobby bool) *Meeting {
	return &Meeting{ID: "mtg", Tenant: "example.test", Organizer: "sip:alice@example.test",
		OrganizerCompany: "Example Corp", Access: access, DialInLobby: dialInLobby, Presenter: PresentersCompany}
}

// The participant types of the security model.
var (
	organizerC = Candidate{Type: Internal, AOR: "sip:alice@example.test", Tenant: "example.test", Company: "Example Corp"}
	internalC  = Candidate{Type: Internal, AOR: "sip:bob@example.test", Tenant: "example.test", Company: "Example Corp"}
	remoteC    = Candidate{Type: Remote, AOR: "sip:carol@example.test", Tenant: "example.test", Company: "Example Corp"}
	// A trusted vendor's employee with enterprise credentials: in the
	// organization, not the company.
	vendorC     = Candidate{Type: Remote, AOR: "sip:vic@example.test", Tenant: "example.test", Company: "Vendor Ltd"}
	federatedC  = Candidate{Type: Federated, AOR: "sip:pat@partner.test"}
	anonymousC  = Candidate{Type: Anonymous, Meeting: "mtg"}
	otherKeyC   = Candidate{Type: Anonymous, Meeting: "another"}
	dialInC     = Candidate{Type: DialIn}
	dialInPINC  = Candidate{Type: DialIn, AOR: "sip:bob@example.test", Tenant: "example.test", Company: "Example Corp"}
	dialInPINVC = Candidate{Type: DialIn, AOR: "sip:vic@example.test", Tenant: "example.test", Company: "Vendor Ltd"}
)

// TestAdmitMatchesTheSecurityModel is the policy table of "Participant
// Admittance", row by row: every participant type against every access
// policy, with the dial-in bypass on and off, and before and after a
// leader or authenticated user has joined.
func TestAdmitMatchesTheSecurityModel(t *testing.T) {
	const D, L, R = Direct, WaitInLobby, Refused
	policies := []AccessPolicy{AccessOrganizer, AccessCompany, AccessOrganization, AccessAnyone}
	rows := []struct {
		name        string
		c           Candidate
		dialInLobby bool
		leaderIn    bool
		want        [4]Admission // organizer, company, organization, anyone
		why         string
	}{
		{"organizer", organizerC, false, false, [4]Admission{D, D, D, D},
			"the organizer always gets in"},
		{"internal user of the company", internalC, false, true, [4]Admission{L, D, D, D},
			"Only me: everyone except the organizer must wait in the lobby; my company: anyone from your company can get in directly, even if not invited"},
		{"remote user of the company", remoteC, false, true, [4]Admission{L, D, D, D},
			"remote users belong to the tenant like internal ones"},
		{"tenant user of another company", vendorC, false, true, [4]Admission{L, L, D, D},
			"my organization: all users in the tenant can join without waiting in the lobby"},
		{"federated user", federatedC, false, true, [4]Admission{L, L, L, D},
			"all others, including all external and anonymous users, must wait in the lobby; anyone: anyone who has access to the meeting link gets in directly"},
		{"anonymous user", anonymousC, false, true, [4]Admission{L, L, L, D},
			"as federated"},
		{"anonymous user before any leader or authenticated user", anonymousC, false, false, [4]Admission{L, L, L, L},
			"anonymous users aren't admitted until at least one leader or authenticated user has joined"},
		{"anonymous user with another meeting's key", otherKeyC, false, true, [4]Admission{R, R, R, R},
			"a conference key opens one meeting"},
		{"dial-in caller, bypass on (default)", dialInC, false, true, [4]Admission{L, D, D, D},
			"by default, participants dialing in from the PSTN go directly; not when only the organizer gets in"},
		{"dial-in caller, bypass on, before any leader", dialInC, false, false, [4]Admission{L, L, L, L},
			"unauthenticated dial-in callers are anonymous: they wait for a leader"},
		{"dial-in caller forced to the lobby", dialInC, true, true, [4]Admission{L, L, L, L},
			"this option can be changed to force dial-in participants to go to the lobby"},
		{"dial-in with PIN, bypass on, before any leader", dialInPINC, false, false, [4]Admission{L, D, D, D},
			"a PIN authenticates the caller: no wait for a leader"},
		{"dial-in with PIN forced to the lobby, company", dialInPINC, true, true, [4]Admission{L, D, D, D},
			"forced to the lobby, an authenticated caller is admitted as the user it is"},
		{"dial-in with PIN forced to the lobby, vendor", dialInPINVC, true, true, [4]Admission{L, L, D, D},
			"as the user it is"},
		{"organizer dialing in with PIN, locked", Candidate{Type: DialIn, AOR: organizerC.AOR, Tenant: organizerC.Tenant, Company: organizerC.Company}, true, false, [4]Admission{D, D, D, D},
			"the organizer, by phone, is still the organizer"},
	}
	for _, row := range rows {
		for i, p := range policies {
			t.Run(fmt.Sprintf("%s/%s", row.name, p), func(t *testing.T) {
				if got := admitNow(t, policyMeeting(p, row.dialInLobby), row.c, row.leaderIn); got != row.want[i] {
					t.Errorf("admission = %s, want %s (%s)", got, row.want[i], row.why)
				}
			})
		}
	}
}

func TestInitialRoleFollowsThePresenterPolicy(t *testing.T) {
	const A, P, O = Attendee, Presenter, Organizer
	policies := []PresenterPolicy{PresentersOrganizer, PresentersCompany, PresentersEveryone, PresentersChosen}
	rows := []struct {
		name string
		c    Candidate
		want [4]Role // organizer only, company, everyone, chosen
	}{
		{"organizer", organizerC, [4]Role{O, O, O, O}},
		{"internal user of the company, chosen", internalC, [4]Role{A, P, P, P}},
		{"remote user of the company, not chosen", remoteC, [4]Role{A, P, P, A}},
		{"tenant user of another company", vendorC, [4]Role{A, A, P, A}},
		{"federated user, chosen", federatedC, [4]Role{A, A, P, P}},
		// Anonymous users "can't be assigned a predefined role".
		{"anonymous user", anonymousC, [4]Role{A, A, A, A}},
		{"dial-in caller", dialInC, [4]Role{A, A, A, A}},
		{"dial-in with PIN", dialInPINC, [4]Role{A, P, P, P}},
	}
	for _, row := range rows {
		for i, p := range policies {
			m := policyMeeting(AccessAnyone, false)
			m.Presenter = p
			m.Presenters = []string{internalC.AOR, federatedC.AOR}
			if got := InitialRole(m, row.c); got != row.want[i] {
				t.Errorf("%s under %s: role %s, want %s", row.name, p, got, row.want[i])
			}
		}
	}
}

// admitNow is what the default Lobby decides for c in m: its invariants
// around AccessRule, with a leader or authenticated user joined or not.
func admitNow(t *testing.T, m *Meeting, c Candidate, leaderIn bool) Admission {
	t.Helper()
	l, err := NewLobby(LobbyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := l.decide(t.Context(), m, c)
	if err != nil {
		t.Fatal(err)
	}
	room := &conf{meeting: m, parts: map[ParticipantID]*participant{}}
	if leaderIn {
		room.parts["leader"] = &participant{Participant: Participant{State: Joined, Role: Presenter}}
	}
	return d.placeLocked(room, c)
}
