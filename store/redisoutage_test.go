package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/internal/testredis"
)

// TestRedisOutageJoinUnavailable: a Focus of a pool on real redis-servers.
// When the server that grants the host leases cannot be reached, a join's
// lease Acquire fails and the join is conference.ErrUnavailable (SIP 503
// with Retry-After), not an internal error; so is it when the meetings'
// server is down too. Nobody is left in the meeting.
func TestRedisOutageJoinUnavailable(t *testing.T) {
	ctx := context.Background()
	open := func() (*testredis.Server, *Redis) {
		srv, err := testredis.Start()
		if err != nil {
			testredis.Unavailable(t, err)
		}
		t.Cleanup(srv.Stop)
		r, err := OpenRedis(ctx, RedisConfig{URL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return srv, r
	}
	meetingsSrv, meetings := open()
	leasesSrv, leases := open()
	dir := auth.NewMemoryDirectory()
	if err := dir.PutTenant(auth.Tenant{Domain: "example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := dir.PutUser(auth.User{URI: "sip:alice@example.test", Tenant: "example.test", Enabled: true, MeetingLicense: true}); err != nil {
		t.Fatal(err)
	}
	tokens, _ := conference.NewTokenIssuer(nil, nil)
	f, err := conference.NewFocus(conference.FocusConfig{Meetings: meetings.Meetings(), Directory: dir, Tokens: tokens,
		JoinURL: "https://meet.example.test", Leases: leases.HostLeases(), Host: "a.example:1", LeaseTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	alice := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal, Method: auth.MethodDigest}
	m, err := f.Schedule(ctx, alice, conference.MeetingOptions{Access: conference.AccessAnyone})
	if err != nil {
		t.Fatal(err)
	}

	leasesSrv.Stop()
	_, err = f.Join(ctx, m.ID, conference.JoinRequest{Identity: alice})
	if !errors.Is(err, conference.ErrUnavailable) || !errors.Is(err, ErrRedis) {
		t.Fatalf("Join with the leases' Redis down: %v; want ErrUnavailable wrapping ErrRedis", err)
	}
	meetingsSrv.Stop()
	_, err = f.Join(ctx, m.ID, conference.JoinRequest{Identity: alice})
	if !errors.Is(err, conference.ErrUnavailable) {
		t.Fatalf("Join with every Redis down: %v; want ErrUnavailable", err)
	}
	if n := len(f.Participants(m.ID)); n != 0 {
		t.Fatalf("%d participants after failed joins", n)
	}
}
