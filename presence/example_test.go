package presence_test

import (
	"context"
	"fmt"
	"strings"
	"time"

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
// Authenticator that tracks the connections.
func ExampleRegistrar() {
	s, err := startStack(stackConfig{}, "alice")
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx := context.Background()
	changes := make(chan presence.RegistrationChange, 8)
	remove := s.registrar.OnChange(func(c presence.RegistrationChange) { changes <- c })
	defer remove()
	show := func() {
		select {
		case c := <-changes:
			bs, _ := s.registrar.Lookup(ctx, c.AOR)
			why := "REGISTER"
			if c.Closed != nil {
				why = "connection closed"
			}
			fmt.Printf("%s: %d device(s) after %s\n", c.AOR, len(bs), why)
		case <-time.After(5 * time.Second):
			fmt.Println("no change")
		}
	}
	laptop, _ := s.device("alice")
	defer laptop.hangUp()
	_ = laptop.register(600)
	show()
	_ = laptop.register(0) // Expires: 0 signs the laptop out
	show()
	phone, _ := s.device("alice")
	_ = phone.register(600)
	show()
	phone.hangUp() // no REGISTER: the connection drops
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
	s, err := startStack(stackConfig{}, "alice", "bob")
	if err != nil {
		panic(err)
	}
	defer s.Close()
	alice, _ := s.device("alice")
	defer alice.hangUp()
	bob, _ := s.device("bob")
	defer bob.hangUp()
	if err := alice.publish(presence.Busy, "in a meeting"); err != nil {
		panic(err)
	}
	if err := bob.watch("sip:alice@example.test"); err != nil {
		panic(err)
	}
	doc, state, err := bob.nextDoc()
	if err != nil {
		panic(err)
	}
	fmt.Printf("bob sees alice %s (%q), subscription %s\n", doc.Availability, doc.Note, strings.SplitN(state, ";", 2)[0])

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.presence.Shutdown(ctx); err != nil {
		panic(err)
	}
	_, state, _ = bob.nextDoc()
	fmt.Println("after Shutdown:", state)
	// Output:
	// bob sees alice busy ("in a meeting"), subscription active
	// after Shutdown: terminated;reason=deactivated
}

// A Router delivers a MESSAGE to every device the recipient has
// registered, asserting the sender it verified; a user who blocked the
// sender is shown offline to it (480).
func ExampleRouter() {
	s, err := startStack(stackConfig{}, "alice", "bob")
	if err != nil {
		panic(err)
	}
	defer s.Close()
	laptop, _ := s.device("alice")
	defer laptop.hangUp()
	phone, _ := s.device("alice")
	defer phone.hangUp()
	bob, _ := s.device("bob")
	defer bob.hangUp()
	_ = laptop.register(600)
	_ = phone.register(600)

	if err := bob.message("sip:alice@example.test", "lunch?"); err != nil {
		panic(err)
	}
	for _, d := range []*device{laptop, phone} {
		m := <-d.messages
		fmt.Printf("%q from %s\n", m.Body(), m.GetHeader("P-Asserted-Identity").Value())
	}

	_ = s.policy.SetContact(context.Background(), "sip:alice@example.test", "sip:bob@example.test", presence.Blocked)
	fmt.Println("after alice blocks bob:", bob.message("sip:alice@example.test", "lunch??"))
	// Output:
	// "lunch?" from <sip:bob@example.test>
	// "lunch?" from <sip:bob@example.test>
	// after alice blocks bob: MESSAGE: 480 Temporarily Unavailable
}
