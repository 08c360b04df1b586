package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/presence"
)

// TestBoltKeepsWhatUsersCreatedAcrossReopen: what a user set is there
// after the database is closed and opened again, as after a restart.
func TestBoltKeepsWhatUsersCreatedAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	b, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m := &conference.Meeting{ID: "m1", DialInID: "123456789", Organizer: "sip:alice@example.test", Tenant: "example.test",
		Access: conference.AccessAnyone, Created: time.Now().UTC()}
	if err := b.Meetings().Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := b.Policies().SetPolicy(ctx, "sip:alice@example.test", presence.UserPolicy{PrivacyMode: true,
		Contacts: map[string]presence.Level{"sip:bob@example.test": presence.Personal}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	b = openAt(t, path)
	if got, err := b.Meetings().ByDialInID(ctx, "123456789"); err != nil || got.ID != "m1" || got.Access != conference.AccessAnyone {
		t.Fatalf("after reopening, the meeting: %+v, %v", got, err)
	}
	if p, err := b.Policies().Policy(ctx, "sip:alice@example.test"); err != nil || !p.PrivacyMode || p.Contacts["sip:bob@example.test"] != presence.Personal {
		t.Fatalf("after reopening, alice's policy: %+v, %v", p, err)
	}
	if v, err := b.Schema(); err != nil || v != SchemaVersion {
		t.Fatalf("schema %d, %v", v, err)
	}
}

func openAt(t *testing.T, path string) *Bolt {
	t.Helper()
	b, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestBoltRefusals: a file other users can read, a database another
// process holds, and one from a newer Parley are each refused with the
// reason.
func TestBoltRefusals(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.db")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBolt(loose); err == nil || !strings.Contains(err.Error(), "readable by other users") {
		t.Errorf("a database file readable by others: %v", err)
	}

	held := filepath.Join(dir, "held.db")
	openAt(t, held)
	if _, err := OpenBolt(held); !errors.Is(err, ErrLocked) {
		t.Errorf("a database open elsewhere: %v, want ErrLocked", err)
	}

	newer := filepath.Join(dir, "newer.db")
	db, err := bolt.Open(newer, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucketIfNotExists(bucketMeta)
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], SchemaVersion+1)
		return meta.Put(keySchema, v[:])
	})
	_ = db.Close()
	if _, err := OpenBolt(newer); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("a database from a newer version: %v", err)
	}
}

// TestBoltMigratesAnOlderSchema: a database at schema 0 (the buckets
// missing) is brought up to date at open, and its data kept.
func TestBoltMigratesAnOlderSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucketIfNotExists(bucketPolicies)
		return b.Put([]byte("sip:alice@example.test"), []byte(`{"PrivacyMode":true}`))
	})
	_ = db.Close()
	b := openAt(t, path)
	if v, _ := b.Schema(); v != SchemaVersion {
		t.Fatalf("schema after open: %d", v)
	}
	if p, err := b.Policies().Policy(context.Background(), "sip:alice@example.test"); err != nil || !p.PrivacyMode {
		t.Fatalf("data kept through the migration: %+v, %v", p, err)
	}
	if err := b.Meetings().Create(context.Background(), &conference.Meeting{ID: "m1"}); err != nil {
		t.Fatalf("a bucket the migration made: %v", err)
	}
}

// TestBoltUnreadableRecordIsAnError: a record that does not decode is an
// error, not a zero value or a crash.
func TestBoltUnreadableRecordIsAnError(t *testing.T) {
	b := openBolt(t)
	_ = b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeetings).Put([]byte("bad"), []byte(`{"id":`))
	})
	if _, err := b.Meetings().Get(context.Background(), "bad"); err == nil || errors.Is(err, conference.ErrNotFound) {
		t.Fatalf("a half-written meeting: %v", err)
	}
}

// crashChildEnv makes the test binary a writer that the crash test kills.
const crashChildEnv = "PARLEY_STORE_CRASH_CHILD"

// TestBoltCrashLosesNoAcknowledgedWrite kills a process in the middle of
// a write storm (meetings and policies, each acknowledged on stdout when
// the call returned) with SIGKILL, then opens the database: every
// acknowledged write must be there, whole.
func TestBoltCrashLosesNoAcknowledgedWrite(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		writeStorm(path)
		return
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestBoltCrashLosesNoAcknowledgedWrite$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(20 * time.Second)
	for len(acked) < 400 && time.Now().Before(deadline) && sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked = append(acked, id)
		}
	}
	_ = cmd.Process.Kill() // SIGKILL: no chance to close anything
	_ = cmd.Wait()
	if len(acked) < 50 {
		t.Fatalf("the writer acknowledged only %d writes before it was killed", len(acked))
	}

	b := openAt(t, path)
	ctx := context.Background()
	recovered := 0
	for _, id := range acked {
		if strings.HasPrefix(id, "m") {
			m, err := b.Meetings().Get(ctx, conference.MeetingID(id))
			if err != nil || m.Subject != "subject of "+id {
				t.Fatalf("acknowledged meeting %s after the crash: %+v, %v", id, m, err)
			}
		} else {
			p, err := b.Policies().Policy(ctx, "sip:"+id+"@example.test")
			if err != nil || p.Contacts["sip:bob@example.test"] != presence.Workgroup {
				t.Fatalf("acknowledged policy %s after the crash: %+v, %v", id, p, err)
			}
		}
		recovered++
	}
	// Nothing half-written: every record there decodes.
	stored := 0
	err = b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeetings).ForEach(func(k, _ []byte) error {
			stored++
			_, err := getMeeting(tx, string(k))
			return err
		})
	})
	if err != nil {
		t.Fatalf("a record half-written: %v", err)
	}
	t.Logf("killed after %d acknowledged writes; %d recovered; %d meetings stored (at most one unacknowledged)", len(acked), recovered, stored)
}

// writeStorm writes until killed, acknowledging each write once it
// returned.
func writeStorm(path string) {
	b, err := OpenBolt(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	ctx := context.Background()
	for i := 0; ; i++ {
		if i%2 == 0 {
			id := fmt.Sprintf("m%d", i)
			err = b.Meetings().Create(ctx, &conference.Meeting{ID: conference.MeetingID(id), DialInID: fmt.Sprintf("%09d", i), Organizer: "sip:alice@example.test",
				Subject: "subject of " + id, Created: time.Now()})
			if err == nil {
				fmt.Println("ack", id)
			}
		} else {
			id := fmt.Sprintf("u%d", i)
			err = b.Policies().SetPolicy(ctx, "sip:"+id+"@example.test", presence.UserPolicy{
				Contacts: map[string]presence.Level{"sip:bob@example.test": presence.Workgroup}})
			if err == nil {
				fmt.Println("ack", id)
			}
		}
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
	}
}

// TestBoltMigratesSchema1OrganizerIndex: a schema-1 database, its
// organizer index keyed "organizer NUL id", opens with the index rebuilt
// in schema 2's form: the organizer's meetings are found, nothing is lost.
func TestBoltMigratesSchema1OrganizerIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeetings, bucketMeetingDialIn, bucketMeetingOrg, bucketPolicies, bucketLocations, bucketLocationFlows} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		for _, id := range []string{"m1", "m2"} {
			raw := []byte(`{"id":"` + id + `","organizer":"sip:alice@example.test","dial_in_id":"d` + id + `"}`)
			if err := tx.Bucket(bucketMeetings).Put([]byte(id), raw); err != nil {
				return err
			}
			if err := tx.Bucket(bucketMeetingOrg).Put([]byte("sip:alice@example.test\x00"+id), nil); err != nil {
				return err
			}
		}
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], 1)
		return meta.Put(keySchema, v[:])
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	b := openAt(t, path)
	if v, _ := b.Schema(); v != SchemaVersion {
		t.Fatalf("schema after open: %d", v)
	}
	ms, err := b.Meetings().ByOrganizer(context.Background(), "sip:alice@example.test")
	if err != nil || len(ms) != 2 {
		t.Fatalf("alice's meetings after the migration: %d, %v", len(ms), err)
	}
	if err := b.Meetings().Delete(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	if ms, _ := b.Meetings().ByOrganizer(context.Background(), "sip:alice@example.test"); len(ms) != 1 || ms[0].ID != "m2" {
		t.Fatalf("after deleting m1 (its rebuilt index entry too): %+v", ms)
	}
}
