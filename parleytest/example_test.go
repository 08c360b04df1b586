package parleytest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/parleytest"
)

// A whole stack on loopback and two devices: alice messages bob, then
// holds a meeting that a guest enters through the lobby. In a test, use
// parleytest.Start(t, cfg) and s.Client(t, name): both close when the test
// ends.
func Example() {
	s, err := parleytest.New(parleytest.Config{})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	alice, _ := s.NewClient("alice")
	defer alice.HangUp()
	bob, _ := s.NewClient("bob")
	defer bob.HangUp()
	_ = alice.SignIn(ctx)
	_ = bob.SignIn(ctx)
	if err := alice.Send(ctx, "bob", "lunch?"); err != nil {
		panic(err)
	}
	msg := <-bob.Messages()
	fmt.Println(msg.From, "says", msg.Text)

	m, _ := s.Schedule(ctx, "alice", conference.MeetingOptions{Access: conference.AccessOrganization})
	organizer, _ := alice.Join(ctx, m)
	guest, _ := s.NewGuest(m, "Guest")
	defer guest.HangUp()
	waiting, _ := guest.Join(ctx, m)
	fmt.Println("guest:", waiting.State())
	_ = organizer.Admit(ctx, s.Focus.Lobby().Waiting(m.ID)[0].ID)
	fmt.Println("admitted:", waiting.Admitted(ctx) == nil)
	// Output:
	// sip:alice@example.test says lunch?
	// guest: lobby
	// admitted: true
}
