package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/internal/testredis"
	"github.com/parleyuc/parley/presence"
)

var rctx = context.Background()

// 1. A stored schema version >= 2^63 becomes a negative int, passes the
// "newer" check, and migrations[-1] (nil) is called: OpenBolt panics on
// bad stored data instead of returning an error.
func TestBoltRefusesAHugeSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucketIfNotExists(bucketMeta)
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], 1<<63)
		return meta.Put(keySchema, v[:])
	})
	_ = db.Close()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("OpenBolt panicked on a corrupt schema version: %v", p)
		}
	}()
	b, err := OpenBolt(path)
	if err == nil {
		_ = b.Close()
		t.Fatal("OpenBolt accepted schema version 2^63")
	}
}

// 2. bbolt's organizer index is organizer NUL id, and ByOrganizer scans
// the prefix aor NUL without checking the meeting's Organizer: an
// organizer that has aor NUL as a prefix breaks (or leaks into) aor's
// list. Memory and Redis are unaffected.
func TestBoltOrganizerPrefixCollision(t *testing.T) {
	for name, s := range map[string]conference.MeetingStore{
		"memory": conference.NewMemoryMeetings(), "bolt": openBolt(t).Meetings(), "redis": openRedis(t).Meetings(),
	} {
		t.Run(name, func(t *testing.T) {
			// Meeting "m1" of organizer "sip:a\x00x": index key sip:a\0x\0m1.
			if err := s.Create(rctx, &conference.Meeting{ID: "m1", Organizer: "sip:a\x00x"}); err != nil {
				t.Fatal(err)
			}
			ms, err := s.ByOrganizer(rctx, "sip:a")
			if err != nil || len(ms) != 0 {
				t.Fatalf("ByOrganizer(sip:a) = %d meetings, %v; want none, nil", len(ms), err)
			}
			// And a meeting whose ID is "x\x00m1" of another organizer is
			// returned as sip:a's.
			if err := s.Create(rctx, &conference.Meeting{ID: "x\x00m1", Organizer: "sip:b"}); err != nil {
				t.Fatal(err)
			}
			ms, err = s.ByOrganizer(rctx, "sip:a")
			if err != nil || len(ms) != 0 {
				t.Fatalf("ByOrganizer(sip:a) = %d meetings (first organizer %q), %v; want none", len(ms), orgOf(ms), err)
			}
		})
	}
}

func orgOf(ms []*conference.Meeting) string {
	if len(ms) == 0 {
		return ""
	}
	return ms[0].Organizer
}

// 3. Stored as JSON, a Contact (or Instance) with invalid UTF-8 comes back
// altered (U+FFFD), so its Key no longer matches: each refresh appends a
// duplicate and Expires: 0 cannot remove it. Memory keeps one binding and
// removes it.
func TestInvalidUTF8ContactDuplicatesAndSticks(t *testing.T) {
	now := time.Now()
	for name, s := range map[string]presence.LocationStore{
		"memory": presence.NewMemoryLocation(), "bolt": openBolt(t).Locations(), "redis": openRedis(t).Locations(),
	} {
		t.Run(name, func(t *testing.T) {
			const aor = "sip:alice@example.test"
			b := presence.Binding{AOR: aor, Contact: "sip:a\xff@192.0.2.1", Expires: now.Add(time.Hour), Transport: "TLS", Source: "192.0.2.1:5061"}
			for i := range 3 { // three refreshes of one device
				b.CSeq = uint32(i + 1)
				if err := s.Update(rctx, aor, []presence.Binding{b}, nil, false); err != nil {
					// Refusing what it cannot store as it is will do
					// (the Registrar refuses such a Contact first).
					if bs, _ := s.Bindings(rctx, aor, now); len(bs) != 0 {
						t.Fatalf("a refused write stored %d bindings", len(bs))
					}
					return
				}
			}
			if bs, _ := s.Bindings(rctx, aor, now); len(bs) != 1 {
				t.Errorf("after 3 refreshes of one contact: %d bindings, want 1", len(bs))
			}
			if err := s.Update(rctx, aor, nil, []string{b.Key()}, false); err != nil {
				t.Fatal(err)
			}
			if bs, _ := s.Bindings(rctx, aor, now); len(bs) != 0 {
				t.Errorf("after removing its key: %d bindings left", len(bs))
			}
		})
	}
}

// 4. RemoveFlow on Redis is SMEMBERS, per-AOR transactions, then DEL of
// the flow set: a binding put over the flow in between is left in the
// store and its index entry deleted, so no later RemoveFlow of that flow
// finds it. (Memory and bbolt are atomic: the binding is either removed
// or still indexed.)
func TestRedisRemoveFlowLosesConcurrentIndexEntry(t *testing.T) {
	r := openRedis(t)
	s := r.Locations()
	now := time.Now()
	const flow = "192.0.2.9:5061"
	for i := range 300 {
		aor := fmt.Sprintf("sip:u%03d@example.test", i)
		if err := s.Update(rctx, aor, []presence.Binding{{AOR: aor, Contact: "sip:x@" + aor[4:], Expires: now.Add(time.Hour),
			Transport: "TLS", Source: flow}}, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := s.RemoveFlow(rctx, presence.Flow{Transport: "TLS", Source: flow}); err != nil {
			t.Error(err)
		}
	}()
	// Wait until RemoveFlow is under way (the first AOR has lost its binding).
	for {
		if bs, _ := s.Bindings(rctx, "sip:u000@example.test", now); len(bs) == 0 {
			break
		}
	}
	const late = "sip:late@example.test"
	if err := s.Update(rctx, late, []presence.Binding{{AOR: late, Contact: "sip:late@x", Expires: now.Add(time.Hour),
		Transport: "TLS", Source: flow}}, nil, false); err != nil {
		t.Fatal(err)
	}
	<-done
	bs, _ := s.Bindings(rctx, late, now)
	if len(bs) == 0 {
		t.Skip("the late binding was removed: the race was not hit")
	}
	aors, err := s.RemoveFlow(rctx, presence.Flow{Transport: "TLS", Source: flow})
	if err != nil || len(aors) != 1 || aors[0] != late {
		t.Fatalf("a binding over the flow survives, and RemoveFlow of the flow again = %v, %v; want [%s]", aors, err, late)
	}
}

// 5. On Redis, Update decodes the stored hash before looking at
// removeAll: one unreadable field makes even "Contact: *" fail, so the
// AOR cannot be cleaned up. bbolt skips the read for removeAll.
func TestRedisRemoveAllWithUnreadableField(t *testing.T) {
	const aor = "sip:alice@example.test"
	r := openRedis(t)
	if err := r.c.HSet(rctx, r.key("bindings", aor), "contact:x", "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Locations().Update(rctx, aor, nil, nil, true); err != nil {
		t.Errorf("redis: removing all of an AOR with a bad record: %v", err)
	}
	b := openBolt(t)
	_ = b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketLocations).Put([]byte(aor), []byte("{not json")) })
	if err := b.Locations().Update(rctx, aor, nil, nil, true); err != nil {
		t.Errorf("bolt: removing all of an AOR with a bad record: %v", err)
	}
}

// 6. go-redis retries a command whose reply timed out (MaxRetries 1,
// ReadTimeout 2 s). The createMeeting script is not idempotent: if the
// server stalls past the read timeout, the first EVALSHA stores the
// meeting and the retry answers "exists", so Create returns ErrExists
// for a meeting it created itself (conference.Focus then retries with a
// new ID: an orphan meeting holding a dial-in ID).
func TestRedisCreateRetriedAfterTimeoutSaysExists(t *testing.T) {
	srv := testredis.Run(t)
	r, err := OpenRedis(rctx, RedisConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	other := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.Port), ReadTimeout: 10 * time.Second})
	defer other.Close()
	// Warm the script cache, so the first attempt is one EVALSHA.
	if err := r.Meetings().Create(rctx, &conference.Meeting{ID: "warm"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		// Block the server for 2.5 s (a slow command, a fork, a stall).
		_ = other.Eval(rctx, `local s = redis.call('TIME')
repeat local t = redis.call('TIME') until (t[1]-s[1])*1000000 + (t[2]-s[2]) > 2500000
return 0`, nil).Err()
	})
	time.Sleep(100 * time.Millisecond)
	err = r.Meetings().Create(rctx, &conference.Meeting{ID: "m1", DialInID: "123456789", Organizer: "sip:alice@example.test"})
	wg.Wait()
	_, getErr := r.Meetings().Get(rctx, "m1")
	if errors.Is(err, conference.ErrExists) {
		t.Fatalf("Create = %v, but no one else created m1 (stored: %v)", err, getErr == nil)
	}
	t.Logf("Create = %v; Get: %v", err, getErr)
}

// 7. Optimistic transactions give up after 32 conflicts: heavy contention
// on one meeting makes some Updates fail (memory and bbolt never do).
func TestRedisUpdateGivesUpUnderContention(t *testing.T) {
	r := openRedis(t)
	s := r.Meetings()
	if err := s.Create(rctx, &conference.Meeting{ID: "m1"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	var firstErr error
	for range 40 {
		wg.Go(func() {
			for range 5 {
				if _, err := s.Update(rctx, "m1", func(m *conference.Meeting) error { m.Subject += "x"; return nil }); err != nil {
					mu.Lock()
					failed++
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d of 200 concurrent Updates failed, first: %v", failed, firstErr)
	}
	m, err := s.Get(rctx, "m1")
	if err != nil || len(m.Subject) != 200 {
		t.Fatalf("after 200 Updates the subject has %d of 200 appends (err %v)", len(m.Subject), err)
	}
}

// 2b. The leak half of 2: bbolt's ByOrganizer does not check
// m.Organizer == aor (Redis does), so an index key sip:a\0x\0y of
// organizer "sip:a\0x" lists the meeting with ID "x\0y" — sip:b's — as
// sip:a's.
func TestBoltOrganizerPrefixLeak(t *testing.T) {
	s := openBolt(t).Meetings()
	if err := s.Create(rctx, &conference.Meeting{ID: "x\x00y", Organizer: "sip:b", Subject: "b's meeting"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(rctx, &conference.Meeting{ID: "y", Organizer: "sip:a\x00x"}); err != nil {
		t.Fatal(err)
	}
	ms, err := s.ByOrganizer(rctx, "sip:a")
	for _, m := range ms {
		t.Errorf("ByOrganizer(sip:a) returns %q of organizer %q", m.ID, m.Organizer)
	}
	if err != nil {
		t.Error(err)
	}
}

// Held-up checks: two Redis clients racing.
func TestRedisRacesHold(t *testing.T) {
	url := redisServer(t)
	open := func() *Redis {
		r, err := OpenRedis(rctx, RedisConfig{URL: url, Prefix: t.Name() + ":"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	a, b := open(), open()
	// Create with one dial-in ID from two clients: exactly one wins.
	for i := range 50 {
		var wg sync.WaitGroup
		var errs [2]error
		d := fmt.Sprintf("d%d", i)
		for j, r := range []*Redis{a, b} {
			wg.Go(func() {
				errs[j] = r.Meetings().Create(rctx, &conference.Meeting{ID: conference.MeetingID(fmt.Sprintf("m%d-%d", i, j)), DialInID: d, Organizer: "sip:o"})
			})
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("dial-in race %d: %v / %v", i, errs[0], errs[1])
		}
	}
	// Update vs Delete: never resurrected, index consistent.
	for i := range 50 {
		id := fmt.Sprintf("u%d", i)
		if err := a.Meetings().Create(rctx, &conference.Meeting{ID: conference.MeetingID(id), Organizer: "sip:p"}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 5 {
				_, _ = a.Meetings().Update(rctx, conference.MeetingID(id), func(m *conference.Meeting) error { m.Organizer = "sip:q"; return nil })
			}
		})
		wg.Go(func() { _ = b.Meetings().Delete(rctx, conference.MeetingID(id)) })
		wg.Wait()
		if _, err := a.Meetings().Get(rctx, conference.MeetingID(id)); !errors.Is(err, conference.ErrNotFound) {
			t.Fatalf("%s resurrected: %v", id, err)
		}
		for _, o := range []string{"sip:p", "sip:q"} {
			if n, _ := a.c.SIsMember(rctx, a.key("meetings-of", o), id).Result(); n {
				t.Fatalf("%s still indexed under %s", id, o)
			}
		}
	}
	// Location Update vs RemoveFlow on one AOR.
	now := time.Now()
	for i := range 50 {
		aor := fmt.Sprintf("sip:r%d", i)
		src := fmt.Sprintf("192.0.2.1:%d", i)
		if err := a.Locations().Update(rctx, aor, []presence.Binding{{Contact: "sip:1", Expires: now.Add(time.Hour), Transport: "TLS", Source: src}}, nil, false); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			_ = a.Locations().Update(rctx, aor, []presence.Binding{{Contact: "sip:2", Expires: now.Add(time.Hour), Transport: "TLS", Source: "other"}}, nil, false)
		})
		wg.Go(func() { _, _ = b.Locations().RemoveFlow(rctx, presence.Flow{Transport: "TLS", Source: src}) })
		wg.Wait()
		bs, _ := a.Locations().Bindings(rctx, aor, now)
		if len(bs) != 1 || bs[0].Contact != "sip:2" {
			t.Fatalf("Update vs RemoveFlow: %+v", bs)
		}
	}
}

// 8. A bbolt file whose schema says 1 but lacks a bucket (bad stored
// data) opens, then every call panics on a nil *bolt.Bucket.
func TestBoltRefusesMissingBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nobuckets.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucketIfNotExists(bucketMeta)
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], SchemaVersion)
		return meta.Put(keySchema, v[:])
	})
	_ = db.Close()
	b, err := OpenBolt(path)
	if err != nil {
		return // refusing it is fine
	}
	defer b.Close()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Get panicked: %v", p)
		}
	}()
	_, err = b.Meetings().Get(rctx, "m1")
	t.Logf("Get: %v", err)
}

// 9. bbolt's flow index is never pruned except by RemoveFlow of that
// exact flow: after a crash (no connection-close events) or a
// de-registration, entries stay for ever.
func TestBoltFlowIndexNeverShrinks(t *testing.T) {
	b := openBolt(t)
	s := b.Locations()
	now := time.Now()
	for i := range 100 {
		bd := presence.Binding{Contact: "sip:a@x", Expires: now.Add(time.Hour), Transport: "TLS", Source: fmt.Sprintf("192.0.2.1:%d", 1000+i)}
		if err := s.Update(rctx, "sip:alice@example.test", []presence.Binding{bd}, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(rctx, "sip:alice@example.test", nil, nil, true); err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = b.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketLocationFlows).Stats().KeyN; return nil })
	if n != 0 {
		t.Fatalf("alice has no bindings, yet %d flow index entries remain", n)
	}
}

// Held-up check: every call errors clearly with Redis down.
func TestRedisDownAllCalls(t *testing.T) {
	srv := testredis.Run(t)
	r, err := OpenRedis(rctx, RedisConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	srv.Stop()
	m, l, p := r.Meetings(), r.Locations(), r.Policies()
	for name, err := range map[string]error{
		"ByDialInID": second(m.ByDialInID(rctx, "1")), "Delete": m.Delete(rctx, "m1"), "ByOrganizer": second(m.ByOrganizer(rctx, "sip:a")),
		"Policy": second(p.Policy(rctx, "sip:a")),
	} {
		if !errors.Is(err, ErrRedis) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, err := range map[string]error{"Bindings": second(l.Bindings(rctx, "sip:a", time.Now())), "RemoveFlow": second(l.RemoveFlow(rctx, presence.Flow{Transport: "TLS", Source: "x"}))} {
		if !errors.Is(err, presence.ErrStore) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// TestOpenRefusesAMissingPlace: a zero RedisConfig and an empty path are
// errors naming what is missing, before anything is dialed or created.
func TestOpenRefusesAMissingPlace(t *testing.T) {
	if _, err := OpenRedis(t.Context(), RedisConfig{}); err == nil || !strings.Contains(err.Error(), "RedisConfig.URL") {
		t.Errorf("OpenRedis(RedisConfig{}) = %v, want an error naming RedisConfig.URL", err)
	}
	if db, err := OpenBolt(""); err == nil {
		_ = db.Close()
		t.Error("OpenBolt(\"\") opened a database")
	}
}
