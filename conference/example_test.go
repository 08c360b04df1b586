package conference_test

import (
	"context"
	"fmt"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
)

// A meeting organized by alice, who lets in anyone from her organization
// directly: a guest with the conference key waits in the lobby until she
// admits it, then gets a media token the media server verifies.
func Example() {
	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test"})
	_ = dir.PutUser(auth.User{URI: "sip:alice@example.test", Tenant: "example.test", Enabled: true, MeetingLicense: true})
	tokens, _ := conference.NewTokenIssuer(nil, nil) // a random key, shared with the media server
	focus, err := conference.NewFocus(conference.FocusConfig{
		Meetings: conference.NewMemoryMeetings(), Directory: dir, Tokens: tokens,
		JoinURL: "https://meet.example.test", MediaServer: "media.example.test:443",
	})
	if err != nil {
		panic(err)
	}
	defer focus.Close()
	ctx := context.Background()

	// Identities come from auth.Authenticator; here they are made by hand.
	alice := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Remote, Method: auth.MethodBearer}
	m, err := focus.Schedule(ctx, alice, conference.MeetingOptions{Subject: "Launch", Access: conference.AccessOrganization})
	if err != nil {
		panic(err)
	}
	guest := &auth.Identity{URI: "sip:g1@anonymous.invalid", DisplayName: "Guest", Kind: auth.Anonymous,
		Method: auth.MethodConferenceKey, Meeting: string(m.ID)}

	organizer, _ := focus.Join(ctx, m.ID, conference.JoinRequest{Identity: alice})
	waiting, _ := focus.Join(ctx, m.ID, conference.JoinRequest{Identity: guest})
	fmt.Println("alice:", organizer.State, organizer.Role)
	fmt.Println("guest:", waiting.State)

	if err := focus.Lobby().Admit(context.Background(), m.ID, organizer.ID, waiting.ID); err != nil {
		panic(err)
	}
	if err := focus.Lobby().Wait(ctx, waiting); err != nil {
		panic(err)
	}
	grant, _ := focus.AddUser(m.ID, waiting.ID, "")
	claims, err := tokens.Verify(grant.Token, conference.MediaClaims{Meeting: m.ID, Participant: waiting.ID})
	fmt.Println("guest admitted; media token for", claims.Role, err, grant.Expires.After(time.Now()))
	// Output:
	// alice: joined organizer
	// guest: lobby
	// guest admitted; media token for attendee <nil> true
}
