package edge_test

import (
	"fmt"

	"github.com/parleyuc/parley/edge"
)

// The tenant admin's federation settings: open by default, a domain
// blocked, then federation closed to all but one partner.
func ExampleFederation() {
	f := edge.NewFederation()
	fmt.Println("partner.test:", f.Allowed("partner.test"))
	f.Block("spam.test")
	fmt.Println("spam.test:", f.Allowed("spam.test"))
	f.SetOpen(false)
	f.Allow("partner.test")
	fmt.Println("partner.test:", f.Allowed("partner.test"), "other.test:", f.Allowed("other.test"))
	fmt.Printf("%+v\n", f.Policy())
	// Output:
	// partner.test: true
	// spam.test: false
	// partner.test: true other.test: false
	// {Open:false Allowed:[partner.test] Blocked:[spam.test]}
}
