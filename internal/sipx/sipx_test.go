package sipx

import (
	"context"
	"testing"
)

func TestResolve(t *testing.T) {
	ctx := context.Background()
	for in, want := range map[string]string{
		"127.0.0.1:5061":       "127.0.0.1:5061", // an address already
		"[::1]:5061":           "[::1]:5061",
		"localhost:5061":       "127.0.0.1:5061", // the first IPv4 address, as sipgo dials
		"nowhere.invalid:5061": "nowhere.invalid:5061",
		"no port":              "no port",
	} {
		if got := Resolve(ctx, nil, in); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}
}
