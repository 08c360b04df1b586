package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

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
