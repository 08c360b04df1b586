package presence_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/parleyuc/parley/parleytest"
	"github.com/parleyuc/parley/presence"
)

// The location store behind the Registrar: a device's binding, refreshed,
// then gone once it expires.
func ExampleMemoryLocation() {
	store := presence.NewMemoryLocation()
	ctx := context.Background()
	now := time.Now()
	laptop := presence.Binding{AOR: "sip:alice@example.test", Contact: "sip:alice@192.0.2.10;transport=tls",
		Expires: now.Add(time.Minute), Transport: "TLS", Source: "192.0.2.10:51000"}
	_ = store.Update(ctx, laptop.AOR, []presence.Binding{laptop}, nil, false)

	bs, _ := store.Bindings(ctx, laptop.AOR, now)
	fmt.Println(len(bs), "binding, over", bs[0].Transport, "from", bs[0].Source)

	bs, _ = store.Bindings(ctx, laptop.AOR, now.Add(2*time.Minute))
	fmt.Println(len(bs), "bindings after expiry")
	// Output:
	// 1 binding, over TLS from 192.0.2.10:51000
	// 0 bindings after expiry
}

// A Registrar follows its users' devices: OnChange tells each sign-in and
// sign-out, and a device whose TLS connection drops is signed out at once
// with no wiring, because the Registrar registers itself with the
// Authenticator that tracks the connections. (parleytest builds the stack
// from the public API: see its Start for the wiring.)
func ExampleRegistrar() {
	s, err := parleytest.New(parleytest.Config{Users: []string{"alice"}})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	changes := make(chan presence.RegistrationChange, 8)
	remove := s.Registrar.OnChange(func(c presence.RegistrationChange) { changes <- c })
	defer remove()
	show := func() {
		select {
		case c := <-changes:
			bs, _ := s.Registrar.Lookup(ctx, c.AOR)
			why := "REGISTER"
			if c.Closed != nil {
				why = "connection closed"
			}
			fmt.Printf("%s: %d device(s) after %s\n", c.AOR, len(bs), why)
		case <-ctx.Done():
			fmt.Println("no change")
		}
	}
	laptop, _ := s.NewClient("alice")
	defer laptop.HangUp()
	_ = laptop.SignIn(ctx)
	show()
	_ = laptop.SignOut(ctx) // REGISTER with Expires: 0
	show()
	phone, _ := s.NewClient("alice")
	_ = phone.SignIn(ctx)
	show()
	phone.HangUp() // no REGISTER: the connection drops
	show()
	// Output:
	// sip:alice@example.test: 1 device(s) after REGISTER
	// sip:alice@example.test: 0 device(s) after REGISTER
	// sip:alice@example.test: 1 device(s) after REGISTER
	// sip:alice@example.test: 0 device(s) after connection closed
}

// A PresenceServer sends each watcher what alice publishes, as her
// PresencePolicy lets that watcher see it; Shutdown ends every
// subscription with a final NOTIFY.
func ExamplePresenceServer() {
	s, err := parleytest.New(parleytest.Config{Users: []string{"alice", "bob"}})
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
	if err := alice.Publish(ctx, presence.Busy, "in a meeting"); err != nil {
		panic(err)
	}
	if err := bob.Watch(ctx, "alice"); err != nil {
		panic(err)
	}
	if err := bob.WaitPresence(ctx, "alice", presence.Busy); err != nil {
		panic(err)
	}
	doc := bob.LastPresence("alice")
	fmt.Printf("bob sees alice %s (%q), subscription %s\n", doc.Availability, doc.Note, strings.SplitN(<-bob.SubscriptionStates(), ";", 2)[0])

	if err := s.Presence.Shutdown(ctx); err != nil {
		panic(err)
	}
	fmt.Println("after Shutdown:", <-bob.SubscriptionStates())
	// Output:
	// bob sees alice busy ("in a meeting"), subscription active
	// after Shutdown: terminated;reason=deactivated
}

// A Router delivers a MESSAGE to every device the recipient has
// registered, asserting the sender it verified; a user who blocked the
// sender is shown offline to it (480).
func ExampleRouter() {
	s, err := parleytest.New(parleytest.Config{Users: []string{"alice", "bob"}})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	laptop, _ := s.NewClient("alice")
	defer laptop.HangUp()
	phone, _ := s.NewClient("alice")
	defer phone.HangUp()
	bob, _ := s.NewClient("bob")
	defer bob.HangUp()
	_ = laptop.SignIn(ctx)
	_ = phone.SignIn(ctx)

	if err := bob.Send(ctx, "alice", "lunch?"); err != nil {
		panic(err)
	}
	for _, d := range []*parleytest.Client{laptop, phone} {
		m := <-d.Messages()
		fmt.Printf("%q from %s\n", m.Text, m.Asserted)
	}

	_ = s.Policy.SetContact(ctx, "sip:alice@example.test", "sip:bob@example.test", presence.Blocked)
	fmt.Println("after alice blocks bob:", bob.Send(ctx, "alice", "lunch??"))
	// Output:
	// "lunch?" from sip:bob@example.test
	// "lunch?" from sip:bob@example.test
	// after alice blocks bob: parleytest: MESSAGE: 480 Temporarily Unavailable
}
