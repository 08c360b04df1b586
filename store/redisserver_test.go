package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/parleyuc/parley/internal/testredis"
	"github.com/parleyuc/parley/presence"
)

// The store tests share one redis-server per test binary; each test
// writes under a key prefix of its own.
var redisSrv struct {
	once sync.Once
	srv  *testredis.Server
	err  error
}

func sharedRedis() (*testredis.Server, error) {
	redisSrv.once.Do(func() { redisSrv.srv, redisSrv.err = testredis.Start() })
	return redisSrv.srv, redisSrv.err
}

// redisServer returns the URL of the shared redis-server.
func redisServer(tb testing.TB) string {
	tb.Helper()
	s, err := sharedRedis()
	if err != nil {
		testredis.Unavailable(tb, err)
	}
	return s.URL
}

func stopRedisServer() {
	if redisSrv.srv != nil {
		redisSrv.srv.Stop()
	}
}

// A front end whose heartbeat lapsed is dead; RemoveNode drops the
// bindings of its flows, and only those.
func TestRedisDeadNodes(t *testing.T) {
	r := openRedis(t)
	ctx := context.Background()
	locs := r.Locations().(presence.NodeStore)
	exp := time.Now().Add(time.Hour)
	for _, b := range []presence.Binding{
		{AOR: "sip:alice@example.test", Contact: "sip:a@1", Expires: exp, Transport: "TLS", Source: "192.0.2.1:5000", Node: "10.0.0.1:5070"},
		{AOR: "sip:bob@example.test", Contact: "sip:b@2", Expires: exp, Transport: "TLS", Source: "192.0.2.2:5000", Node: "10.0.0.2:5070"},
	} {
		if err := locs.Update(ctx, b.AOR, []presence.Binding{b}, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Heartbeat(ctx, "10.0.0.2:5070", time.Minute); err != nil {
		t.Fatal(err)
	}
	dead, err := r.DeadNodes(ctx)
	if err != nil || len(dead) != 1 || dead[0] != "10.0.0.1:5070" {
		t.Fatalf("DeadNodes = %v, %v; want the node without a heartbeat", dead, err)
	}
	lost, err := locs.RemoveNode(ctx, "10.0.0.1:5070")
	flow := presence.Flow{Node: "10.0.0.1:5070", Transport: "TLS", Source: "192.0.2.1:5000"}
	if err != nil || len(lost) != 1 || len(lost[flow]) != 1 || lost[flow][0] != "sip:alice@example.test" {
		t.Fatalf("RemoveNode = %v, %v", lost, err)
	}
	if bs, _ := locs.Bindings(ctx, "sip:alice@example.test", time.Now()); len(bs) != 0 {
		t.Fatalf("the dead node's binding stayed: %+v", bs)
	}
	if bs, _ := locs.Bindings(ctx, "sip:bob@example.test", time.Now()); len(bs) != 1 {
		t.Fatalf("the live node's binding: %+v", bs)
	}
	if dead, _ := r.DeadNodes(ctx); len(dead) != 0 {
		t.Fatalf("after RemoveNode, still dead: %v", dead)
	}
}
