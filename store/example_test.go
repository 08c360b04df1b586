package store_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/presence"
	"github.com/parleyuc/parley/store"
)

// Open the embedded database and hand its stores to the packages that
// keep state: what users create is there after a restart.
func Example() {
	dir, err := os.MkdirTemp("", "parley-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "parley.db")

	db, err := store.OpenBolt(path)
	if err != nil {
		log.Fatal(err)
	}
	// Likewise conference.FocusConfig{Meetings: db.Meetings()} and
	// presence.RegistrarConfig{Store: db.Locations()}.
	policy, _ := presence.NewPresencePolicy(presence.PresencePolicyConfig{Store: db.Policies()})
	_ = policy
	ctx := context.Background()
	_ = db.Meetings().Create(ctx, &conference.Meeting{ID: "m1", Organizer: "sip:alice@example.test", Subject: "Planning"})
	_ = db.Close()

	db, err = store.OpenBolt(path) // a restart
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	m, err := db.Meetings().Get(ctx, "m1")
	fmt.Println(m.Subject, err)
	// Output: Planning <nil>
}

// The directory of tenants and users kept in the database: the
// Authenticator looks users up in it, and an admin API changes it; a
// JSON directory file is imported once.
func ExampleBolt_Directory() {
	dir, err := os.MkdirTemp("", "parley-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := store.OpenBolt(filepath.Join(dir, "parley.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	users := db.Directory() // auth.Config{Directory: users, ...}
	file := auth.NewMemoryDirectory()
	_ = file.PutTenant(auth.Tenant{Domain: "example.test", Name: "Example"})
	_ = file.PutUser(auth.User{URI: "sip:alice@example.test", DisplayName: "Alice", Enabled: true})
	if err := auth.Import(ctx, users, file); err != nil {
		log.Fatal(err)
	}
	// The admin disables alice: the next lookup sees it.
	alice, _ := users.User(ctx, "alice@example.test")
	alice.Enabled = false
	if err := users.SaveUser(ctx, *alice); err != nil {
		log.Fatal(err)
	}
	again, _ := users.User(ctx, "sip:alice@example.test")
	fmt.Println(again.DisplayName, "enabled:", again.Enabled)
	_, err = users.User(ctx, "sip:mallory@example.test")
	fmt.Println(errors.Is(err, auth.ErrUnknownUser))
	// Output:
	// Alice enabled: false
	// true
}
