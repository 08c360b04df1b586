package conference_test

import (
	"context"
	"fmt"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
)

// newFocus makes a Focus for the examples with a tenant example.test whose
// user alice may organize meetings.
func newFocus(lobby *conference.Lobby) *conference.Focus {
	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test"})
	_ = dir.PutUser(auth.User{URI: "sip:alice@example.test", Tenant: "example.test", Enabled: true, MeetingLicense: true})
	tokens, _ := conference.NewTokenIssuer(nil, nil)
	focus, err := conference.NewFocus(conference.FocusConfig{
		Meetings: conference.NewMemoryMeetings(), Directory: dir, Tokens: tokens,
		JoinURL: "https://meet.example.test", Lobby: lobby,
	})
	if err != nil {
		panic(err)
	}
	return focus
}

// An application's own admission rule: partners on an allow-list skip the
// lobby, one domain is refused before the lobby, and everyone else is
// decided by the meeting's access policy (AccessRule, the default).
func ExampleLobby() {
	partners := map[string]bool{"partner.test": true}
	rule := conference.AdmissionFunc(func(ctx context.Context, m *conference.Meeting, c conference.Candidate) (conference.Admission, error) {
		switch {
		case c.Type == conference.Federated && partners[c.Domain()]:
			return conference.Direct, nil
		case c.Domain() == "rival.test":
			return conference.Refused, nil
		}
		return conference.AccessRule{}.Admission(ctx, m, c)
	})
	lobby, err := conference.NewLobby(conference.LobbyConfig{Rule: rule})
	if err != nil {
		panic(err)
	}
	focus := newFocus(lobby)
	defer focus.Close()
	ctx := context.Background()

	alice := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal}
	m, _ := focus.Schedule(ctx, alice, conference.MeetingOptions{Access: conference.AccessCompany})
	organizer, _ := focus.Join(ctx, m.ID, conference.JoinRequest{Identity: alice})

	for _, uri := range []string{"sip:pat@partner.test", "sip:ola@other.test", "sip:rex@rival.test"} {
		id := &auth.Identity{URI: uri, Kind: auth.Federated}
		p, err := focus.Join(ctx, m.ID, conference.JoinRequest{Identity: id})
		if err != nil {
			fmt.Println(uri, "refused")
			continue
		}
		fmt.Println(uri, p.State)
	}
	waiting := lobby.Waiting(m.ID)
	_ = lobby.Admit(ctx, m.ID, organizer.ID, waiting[0].ID)
	fmt.Println("waiting after alice admits:", len(lobby.Waiting(m.ID)))
	// Output:
	// sip:pat@partner.test joined
	// sip:ola@other.test lobby
	// sip:rex@rival.test refused
	// waiting after alice admits: 0
}

// The Focus's leader controls: the organizer promotes an attendee, who as
// a presenter mutes the audience; a newcomer joins muted.
func ExampleFocus() {
	focus := newFocus(nil) // the default Lobby: the access policies
	defer focus.Close()
	ctx := context.Background()

	alice := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal}
	m, _ := focus.Schedule(ctx, alice, conference.MeetingOptions{Access: conference.AccessAnyone, Presenter: conference.PresentersOrganizer})
	org, _ := focus.Join(ctx, m.ID, conference.JoinRequest{Identity: alice})
	pat, _ := focus.Join(ctx, m.ID, conference.JoinRequest{Identity: &auth.Identity{URI: "sip:pat@partner.test", Kind: auth.Federated}})
	fmt.Println("pat:", pat.State, pat.Role)

	if err := focus.Promote(ctx, m.ID, org.ID, pat.ID); err != nil {
		panic(err)
	}
	if err := focus.MuteAll(ctx, m.ID, pat.ID, true); err != nil {
		panic(err)
	}
	ola, _ := focus.Join(ctx, m.ID, conference.JoinRequest{Identity: &auth.Identity{URI: "sip:ola@other.test", Kind: auth.Federated}})
	for _, p := range focus.Participants(m.ID) {
		fmt.Println(p.URI, p.Role, "muted:", p.Muted)
	}
	err := focus.Eject(ctx, m.ID, ola.ID, pat.ID)
	fmt.Println("an attendee ejects:", err)
	// Output:
	// pat: joined attendee
	// sip:alice@example.test organizer muted: false
	// sip:pat@partner.test presenter muted: false
	// sip:ola@other.test attendee muted: true
	// an attendee ejects: conference: forbidden by role: attendees eject nobody
}
