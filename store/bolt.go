package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the version of the database layout this code writes.
// OpenBolt upgrades older databases with the migrations below and refuses
// newer ones.
const SchemaVersion = 7

// Buckets (schema 7).
var (
	bucketMeta          = []byte("meta")
	bucketMeetings      = []byte("meetings")          // id -> JSON meeting
	bucketMeetingDialIn = []byte("meetings.dial-in")  // dial-in id -> id
	bucketMeetingOrg    = []byte("meetings.by-owner") // ownerKey(organizer, id) -> ""
	bucketPolicies      = []byte("policies")          // aor -> JSON policy
	bucketLocations     = []byte("locations")         // aor -> JSON bindings
	bucketLocationFlows = []byte("locations.flows")   // transport|source NUL aor -> ""
	bucketFederation    = []byte("federation")        // "policy" -> JSON edge.FederationPolicy
	bucketPublications  = []byte("publications")      // aor -> JSON []presence.Publication
	bucketRevocations   = []byte("revocations")       // pki.IssuerID -> JSON pki.RevocationList
	bucketTenants       = []byte("directory.tenants") // domain -> JSON auth.Tenant
	bucketUsers         = []byte("directory.users")   // canonical AOR -> JSON auth.User
	bucketMeetingHosts  = []byte("meetings.hosts")    // id -> JSON boltLease: host lease and newest token
	keySchema           = []byte("schema")
)

// allBuckets are the buckets every current database has.
var allBuckets = [][]byte{bucketMeetings, bucketMeetingDialIn, bucketMeetingOrg, bucketPolicies, bucketLocations, bucketLocationFlows,
	bucketFederation, bucketPublications, bucketRevocations, bucketTenants, bucketUsers, bucketMeetingHosts}

// migrations[v] takes a database from schema v to v+1, inside the opening
// transaction: all of them apply, or none.
var migrations = map[uint64]func(tx *bolt.Tx) error{
	0: func(tx *bolt.Tx) error { // an empty file: the first layout
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	},
	1: func(tx *bolt.Tx) error {
		// Schema 1 keyed the organizer index "organizer NUL id", which an
		// organizer or ID holding a NUL could make ambiguous; schema 2
		// prefixes the organizer with its length. The index is rebuilt
		// from the meetings.
		if err := tx.DeleteBucket(bucketMeetingOrg); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		org, err := tx.CreateBucket(bucketMeetingOrg)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketMeetings).ForEach(func(k, _ []byte) error {
			m, err := getMeeting(tx, string(k))
			if err != nil {
				return err
			}
			return org.Put(ownerKey(m.Organizer, string(m.ID)), nil)
		})
	},
	2: func(tx *bolt.Tx) error { // the federation policy joins the store
		_, err := tx.CreateBucketIfNotExists(bucketFederation)
		return err
	},
	3: func(tx *bolt.Tx) error { // presence publications join the store
		_, err := tx.CreateBucketIfNotExists(bucketPublications)
		return err
	},
	4: func(tx *bolt.Tx) error { // the CA's revocations join the store
		_, err := tx.CreateBucketIfNotExists(bucketRevocations)
		return err
	},
	5: func(tx *bolt.Tx) error { // the directory joins the store
		for _, b := range [][]byte{bucketTenants, bucketUsers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	},
	6: func(tx *bolt.Tx) error { // meetings' host leases join the store
		_, err := tx.CreateBucketIfNotExists(bucketMeetingHosts)
		return err
	},
}

// ErrLocked is returned by OpenBolt when another process has the
// database open.
var ErrLocked = errors.New("store: the database is in use by another process")

// Bolt is the embedded, persistent store: one bbolt file. Every write is
// one transaction, synced to disk before the call returns. It is safe for
// concurrent use; Close releases the file.
type Bolt struct {
	db *bolt.DB
}

// OpenBolt opens (or creates, mode 0600) the database at path and brings
// its schema up to SchemaVersion. It fails with ErrLocked if another
// process holds the file, and refuses a file other users may read or a
// database written by a newer version.
func OpenBolt(path string) (*Bolt, error) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("store: %s is readable by other users (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := db.Update(migrate); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// migrate runs the migrations from the stored schema version up.
func migrate(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	var v uint64
	if raw := meta.Get(keySchema); raw != nil {
		if len(raw) != 8 {
			return errors.New("unreadable schema version")
		}
		v = binary.BigEndian.Uint64(raw)
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this Parley's (%d)", v, SchemaVersion)
	}
	for ; v < SchemaVersion; v++ {
		migrate, ok := migrations[v]
		if !ok {
			return fmt.Errorf("no migration from schema %d", v)
		}
		if err := migrate(tx); err != nil {
			return fmt.Errorf("migrating schema %d to %d: %w", v, v+1, err)
		}
	}
	for _, b := range allBuckets {
		if tx.Bucket(b) == nil {
			return fmt.Errorf("the database is damaged: bucket %q is missing", b)
		}
	}
	var raw [8]byte
	binary.BigEndian.PutUint64(raw[:], v)
	return meta.Put(keySchema, raw[:])
}

// Schema returns the database's schema version.
func (b *Bolt) Schema() (int, error) {
	var v uint64
	err := b.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketMeta).Get(keySchema)
		if len(raw) != 8 {
			return errors.New("store: unreadable schema version")
		}
		v = binary.BigEndian.Uint64(raw)
		return nil
	})
	return int(v), err
}

// Close closes the database.
func (b *Bolt) Close() error { return b.db.Close() }
