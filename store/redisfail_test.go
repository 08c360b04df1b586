package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/internal/testredis"
	"github.com/parleyuc/parley/presence"
)

// TestRedisStoppedAndBack: with its Redis server stopped mid-run the
// store answers every call with an error that says so (ErrRedis,
// presence.ErrStore for the location store), promptly and without a
// panic; when the server is back, the same store works again.
func TestRedisStoppedAndBack(t *testing.T) {
	dir := t.TempDir()
	srv, err := testredis.StartPersistent(dir) // started again at the same address below
	if err != nil {
		testredis.Unavailable(t, err)
	}
	defer srv.Stop()
	r, err := OpenRedis(context.Background(), RedisConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	m := &conference.Meeting{ID: "m1", Organizer: "sip:alice@example.test"}
	if err := r.Meetings().Create(ctx, m); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	start := time.Now()
	if _, err := r.Meetings().Get(ctx, "m1"); !errors.Is(err, ErrRedis) {
		t.Errorf("Get with Redis down: %v, want ErrRedis", err)
	}
	if err := r.Meetings().Create(ctx, &conference.Meeting{ID: "m2"}); !errors.Is(err, ErrRedis) {
		t.Errorf("Create with Redis down: %v, want ErrRedis", err)
	}
	if _, err := r.Meetings().Update(ctx, "m1", func(*conference.Meeting) error { return nil }); !errors.Is(err, ErrRedis) {
		t.Errorf("Update with Redis down: %v, want ErrRedis", err)
	}
	if err := r.Policies().SetPolicy(ctx, "sip:alice@example.test", presence.UserPolicy{PrivacyMode: true}); !errors.Is(err, ErrRedis) {
		t.Errorf("SetPolicy with Redis down: %v, want ErrRedis", err)
	}
	if err := r.Locations().Update(ctx, "sip:alice@example.test", []presence.Binding{{Contact: "sip:a@x", Expires: time.Now().Add(time.Hour)}}, nil, false); !errors.Is(err, presence.ErrStore) {
		t.Errorf("a binding with Redis down: %v, want presence.ErrStore", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the failures took %v", d)
	}

	back, err := testredis.StartPersistent(dir)
	if err != nil {
		t.Fatalf("redis-server again: %v", err)
	}
	defer back.Stop()
	// go-redis holds its last dial error for a moment before dialing
	// again: the store is back within seconds, not at once.
	var createErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if createErr = r.Meetings().Create(ctx, &conference.Meeting{ID: "m3", Organizer: "sip:alice@example.test"}); createErr == nil {
			break
		}
	}
	if createErr != nil {
		t.Fatalf("Create once Redis is back: %v", createErr)
	}
	if got, err := r.Meetings().Get(ctx, "m3"); err != nil || got.ID != "m3" {
		t.Fatalf("Get once Redis is back: %v %v", got, err)
	}
}

// TestRedisKilledLosesNothingAcknowledged: writers keep creating meetings
// and directory users while the Redis server is killed (SIGKILL) and
// started again on its append-only file, as a pool's Redis runs; every
// write the store acknowledged is there afterwards, and those refused
// while it was down were refused with ErrRedis.
func TestRedisKilledLosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	srv, err := testredis.StartPersistent(dir)
	if err != nil {
		testredis.Unavailable(t, err)
	}
	r, err := OpenRedis(context.Background(), RedisConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	users := r.Directory()
	if err := users.SaveTenant(ctx, auth.Tenant{Domain: "example.test"}); err != nil {
		t.Fatal(err)
	}

	var acked []int
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := conference.MeetingID(fmt.Sprintf("m%04d", i))
			errM := r.Meetings().Create(ctx, &conference.Meeting{ID: id, Organizer: "sip:alice@example.test"})
			errU := users.SaveUser(ctx, auth.User{URI: fmt.Sprintf("sip:u%04d@example.test", i), Enabled: true})
			switch {
			case errM == nil && errU == nil:
				acked = append(acked, i)
			case errM != nil && !errors.Is(errM, ErrRedis), errU != nil && !errors.Is(errU, ErrRedis):
				t.Errorf("write %d refused with %v / %v, want ErrRedis", i, errM, errU)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	srv.Stop() // SIGKILL
	time.Sleep(300 * time.Millisecond)
	back, err := testredis.StartPersistent(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Stop()
	time.Sleep(2 * time.Second) // the store reconnects; writes go on
	close(stop)
	<-done
	if len(acked) < 50 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	for _, i := range acked {
		if _, err := r.Meetings().Get(ctx, conference.MeetingID(fmt.Sprintf("m%04d", i))); err != nil {
			t.Fatalf("meeting %d, acknowledged, after the restart: %v", i, err)
		}
		if _, err := users.User(ctx, fmt.Sprintf("sip:u%04d@example.test", i)); err != nil {
			t.Fatalf("user %d, acknowledged, after the restart: %v", i, err)
		}
	}
	t.Logf("%d writes acknowledged across the kill and restart, all there", len(acked))
}
