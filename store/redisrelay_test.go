package store

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestRedisRotateRelaySecrets: the first call makes the pool's secret,
// effective at once, and later calls within the period return it; once
// the period has passed, front ends racing add one secret, effective
// after the lead time, and keep the old one. Bad periods are refused.
func TestRedisRotateRelaySecrets(t *testing.T) {
	r, err := OpenRedis(t.Context(), RedisConfig{URL: redisServer(t), Prefix: fmt.Sprintf("relay-%d:", time.Now().UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const every, lead = 300 * time.Millisecond, 100 * time.Millisecond
	first, err := r.RotateRelaySecrets(t.Context(), every, lead)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || len(first[0].Key) != 32 || first[0].ID == "" || time.Since(first[0].Since) > time.Second || time.Since(first[0].Since) < 0 {
		t.Fatalf("first: %+v; want one secret, effective now", first)
	}
	again, err := r.RotateRelaySecrets(t.Context(), every, lead)
	if err != nil || len(again) != 1 || again[0].ID != first[0].ID || !bytes.Equal(again[0].Key, first[0].Key) {
		t.Fatalf("within the period: %+v %v; want the same secret", again, err)
	}
	time.Sleep(every)
	before := time.Now().Truncate(time.Millisecond) // the store keeps milliseconds
	var wg sync.WaitGroup
	lists := make([][]RelaySecret, 8)
	for i := range lists {
		wg.Go(func() {
			l, err := r.RotateRelaySecrets(t.Context(), every, lead)
			if err != nil {
				t.Error(err)
			}
			lists[i] = l
		})
	}
	wg.Wait()
	after := time.Now()
	for _, l := range lists {
		if len(l) != 2 || l[1].ID != first[0].ID || l[0].ID != lists[0][0].ID || l[0].ID == first[0].ID {
			t.Fatalf("racing rotations: %+v; want one new secret before the first", l)
		}
		// Made by one of the racing calls: it starts the lead after that
		// call began (the calls' own time, not the test's, which a loaded
		// machine stretches).
		if s := l[0].Since; s.Before(before.Add(lead)) || s.After(after.Add(lead)) {
			t.Fatalf("the new secret starts at %v; want the lead %v after a call made between %v and %v", s, lead, before, after)
		}
	}
	for _, bad := range [][2]time.Duration{{0, 0}, {time.Second, time.Second}, {time.Second, -1}} {
		if _, err := r.RotateRelaySecrets(t.Context(), bad[0], bad[1]); err == nil {
			t.Errorf("every %v lead %v accepted", bad[0], bad[1])
		}
	}
}
