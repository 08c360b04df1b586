package presence_test

import (
	"context"
	"fmt"
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
