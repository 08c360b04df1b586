package conference

import (
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

// TestOwnsOnlyItsTenantsMeetings: a request that starts a dialog is the
// focus's only at one of its tenants' domains (a meeting of a partner's
// domain goes out through the edge); within a dialog, the focus's
// Contact is its own whatever its host.
func TestOwnsOnlyItsTenantsMeetings(t *testing.T) {
	authn, err := auth.New(auth.Config{Directory: testDirectory(t), Realm: "example.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = authn.Close() })
	e := newFocusEnv(t, func(c *FocusConfig) { c.Auth, c.Listeners = authn, map[string]string{"TLS": "127.0.0.1:5061"} })
	const id = "abcdefghijklmnopqrstuvwxyz"
	req := func(uri string, toTag bool) *sip.Request {
		var u sip.Uri
		if err := sip.ParseUri(uri, &u); err != nil {
			t.Fatal(err)
		}
		r := sip.NewRequest(sip.INVITE, u)
		to := &sip.ToHeader{Address: u, Params: sip.NewParams()}
		if toTag {
			to.Params.Add("tag", "focus")
		}
		r.AppendHeader(to)
		return r
	}
	for _, c := range []struct {
		uri   string
		toTag bool
		want  bool
	}{
		{"sip:" + id + "@example.test", false, true},
		{"sip:" + id + "@EXAMPLE.test", false, true},
		{"sip:" + id + "@partner.test", false, false},
		{"sip:" + id + "@127.0.0.1:5061", true, true},          // the focus's Contact
		{"sip:" + id + "@edge.partner.test:5061", true, false}, // another server's focus, in a dialog this focus does not have
		{"sip:" + id + "@partner.test", true, false},
		{"sip:alice@example.test", false, false},
	} {
		if got := e.focus.Owns(req(c.uri, c.toTag)); got != c.want {
			t.Errorf("Owns(%s, in a dialog %v) = %v, want %v", c.uri, c.toTag, got, c.want)
		}
	}
}
