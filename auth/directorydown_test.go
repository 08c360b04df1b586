package auth

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// downDirectory is a Directory whose store can be made unreachable.
type downDirectory struct {
	Directory
	down atomic.Bool
}

var errStoreDown = errors.New("store: connection refused")

func (d *downDirectory) User(ctx context.Context, aor string) (*User, error) {
	if d.down.Load() {
		return nil, errStoreDown
	}
	return d.Directory.User(ctx, aor)
}

// TestDirectoryStoreDown: while the directory's store cannot be read, a
// sign-in and a request over a signed-in connection are answered 503
// with Retry-After, not 403, and the connection's association stays: when
// the store is back, the connection goes on without authenticating again.
func TestDirectoryStoreDown(t *testing.T) {
	dir := &downDirectory{Directory: testDirectory(t)}
	s := startSIPServer(t, Config{Directory: dir})
	alice := s.dial(t, "", nil)
	if res := alice.register("alice", alicePassword); res.StatusCode != 200 {
		t.Fatalf("alice signs in: %d", res.StatusCode)
	}

	dir.down.Store(true)
	res := alice.do("MESSAGE", "sip:bob@example.test", "<sip:alice@example.test>")
	if res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("a signed-in request while the directory is down: %d (Retry-After %v), want 503 with Retry-After", res.StatusCode, res.GetHeader("Retry-After"))
	}
	bob := s.dial(t, "", nil)
	if res := bob.register("bob", bobPassword); res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("a sign-in while the directory is down: %d, want 503 with Retry-After", res.StatusCode)
	}

	dir.down.Store(false)
	if res := alice.do("MESSAGE", "sip:bob@example.test", "<sip:alice@example.test>"); res.StatusCode != 200 {
		t.Fatalf("alice's connection once the directory is back: %d, want 200 without signing in again", res.StatusCode)
	}
}
