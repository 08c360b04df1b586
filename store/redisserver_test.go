package store

import (
	"sync"
	"testing"

	"github.com/parleyuc/parley/internal/testredis"
)

// The store tests share one redis-server per test binary; each test
// writes under a key prefix of its own.
var redisSrv struct {
	once sync.Once
	srv  *testredis.Server
	err  error
}

func sharedRedis() (*testredis.Server, error) {
	redisSrv.once.Do(func() { redisSrv.srv, redisSrv.err = testredis.Start(0) })
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
