package testredis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// LeaseSample is one reading of a meeting's host lease in Redis (the key
// store.Redis's HostLeases keeps: "token host", with a TTL).
type LeaseSample struct {
	At    time.Time
	Host  string
	Token uint64
	TTL   time.Duration // left at the reading
}

// WatchLease reads the host lease of meeting every 10 ms until stop is
// called, which returns the readings in which a lease was held.
func WatchLease(t testing.TB, url, meeting string) (stop func() []LeaseSample) {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	key := "parley:meeting-host:" + meeting
	ctx, cancel := context.WithCancel(context.Background())
	var samples []LeaseSample
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			var get *redis.StringCmd
			var pttl *redis.DurationCmd
			_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				get, pttl = p.Get(ctx, key), p.PTTL(ctx, key)
				return nil
			})
			if err == nil {
				tok, host, _ := strings.Cut(get.Val(), " ")
				n, _ := strconv.ParseUint(tok, 10, 64)
				samples = append(samples, LeaseSample{At: time.Now(), Host: host, Token: n, TTL: pttl.Val()})
			} else if !errors.Is(err, redis.Nil) && ctx.Err() == nil {
				t.Errorf("reading the lease: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return func() []LeaseSample {
		cancel()
		wg.Wait()
		_ = c.Close()
		return samples
	}
}

// OneHost checks that readings of a lease never name two hosts: its token
// never goes back, one token names one host, and another host appears
// only once the previous lease expired (as its last reading said, give
// or take 20 ms of reading error).
func OneHost(samples []LeaseSample) error {
	for i := 1; i < len(samples); i++ {
		prev, cur := samples[i-1], samples[i]
		switch {
		case cur.Token < prev.Token:
			return fmt.Errorf("the lease's token went back from %d to %d", prev.Token, cur.Token)
		case cur.Token == prev.Token && cur.Host != prev.Host:
			return fmt.Errorf("token %d names %s then %s", cur.Token, prev.Host, cur.Host)
		case cur.Host != prev.Host:
			if expired := prev.At.Add(prev.TTL); cur.At.Before(expired.Add(-20 * time.Millisecond)) {
				return fmt.Errorf("%s holds the lease at %v, before %s's expired at %v", cur.Host, cur.At, prev.Host, expired)
			}
		}
	}
	return nil
}
