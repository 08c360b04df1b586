package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parleyuc/parley/conference"
)

// HostLeases returns the database's conference.HostLeases: one process
// holds a bbolt file, so this serves a single front end, but its tokens
// grow across restarts and fence its Meetings' UpdateFenced as Redis's do.
func (b *Bolt) HostLeases() conference.HostLeases { return boltLeases{b.db} }

type boltLeases struct{ db *bolt.DB }

// boltLease is a meeting's record in bucketMeetingHosts: the newest token
// granted, kept after the lease (Host empty) is released or lapses.
type boltLease struct {
	Host    string    `json:"host,omitempty"`
	Token   uint64    `json:"token"`
	Expires time.Time `json:"expires"`
}

func getLease(tx *bolt.Tx, meeting conference.MeetingID) (boltLease, error) {
	raw := tx.Bucket(bucketMeetingHosts).Get([]byte(meeting))
	if raw == nil {
		return boltLease{}, nil
	}
	return decode[boltLease](raw, "lease of "+string(meeting))
}

func putLease(tx *bolt.Tx, meeting conference.MeetingID, l boltLease) error {
	raw, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMeetingHosts).Put([]byte(meeting), raw)
}

// held reports whether l is a lease in force at now.
func (l boltLease) held(now time.Time) bool { return l.Host != "" && now.Before(l.Expires) }

func (l boltLease) lease(meeting conference.MeetingID) conference.Lease {
	return conference.Lease{Meeting: meeting, Host: l.Host, Token: l.Token, Expires: l.Expires}
}

// Acquire implements conference.HostLeases.
func (s boltLeases) Acquire(_ context.Context, meeting conference.MeetingID, host string, ttl time.Duration) (conference.Lease, error) {
	if err := conference.ValidLease(meeting, host, ttl); err != nil {
		return conference.Lease{}, err
	}
	var out conference.Lease
	err := s.db.Update(func(tx *bolt.Tx) error {
		cur, err := getLease(tx, meeting)
		if err != nil {
			return err
		}
		now := time.Now()
		if cur.held(now) && cur.Host != host {
			return &conference.HostedError{Holder: cur.lease(meeting)}
		}
		next := boltLease{Host: host, Token: cur.Token + 1, Expires: now.Add(ttl)}
		out = next.lease(meeting)
		return putLease(tx, meeting, next)
	})
	return out, err
}

// Renew implements conference.HostLeases.
func (s boltLeases) Renew(_ context.Context, l conference.Lease, ttl time.Duration) (conference.Lease, error) {
	if err := conference.ValidLease(l.Meeting, l.Host, ttl); err != nil {
		return conference.Lease{}, err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		cur, err := getLease(tx, l.Meeting)
		if err != nil {
			return err
		}
		now := time.Now()
		if !cur.held(now) || cur.Token != l.Token || cur.Host != l.Host {
			return fmt.Errorf("%w: %s, token %d", conference.ErrLeaseLost, l.Meeting, l.Token)
		}
		cur.Expires = now.Add(ttl)
		l.Expires = cur.Expires
		return putLease(tx, l.Meeting, cur)
	})
	if err != nil {
		return conference.Lease{}, err
	}
	return l, nil
}

// Release implements conference.HostLeases.
func (s boltLeases) Release(_ context.Context, l conference.Lease) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		cur, err := getLease(tx, l.Meeting)
		if err != nil || cur.Token != l.Token || cur.Host != l.Host {
			return err
		}
		return putLease(tx, l.Meeting, boltLease{Token: cur.Token}) // the token stays
	})
}

// Holder implements conference.HostLeases.
func (s boltLeases) Holder(_ context.Context, meeting conference.MeetingID) (conference.Lease, error) {
	var out conference.Lease
	err := s.db.View(func(tx *bolt.Tx) error {
		cur, err := getLease(tx, meeting)
		if err != nil {
			return err
		}
		if !cur.held(time.Now()) {
			return fmt.Errorf("%w: no host holds %s", conference.ErrNotFound, meeting)
		}
		out = cur.lease(meeting)
		return nil
	})
	return out, err
}

// UpdateFenced implements conference.FencedMeetingStore: Update, refused
// in the same transaction if a lease newer than token was granted.
func (s boltMeetings) UpdateFenced(_ context.Context, id conference.MeetingID, token uint64, fn func(*conference.Meeting) error) (*conference.Meeting, error) {
	return s.update(id, func(tx *bolt.Tx) error {
		cur, err := getLease(tx, id)
		if err != nil {
			return err
		}
		if token < cur.Token {
			return fmt.Errorf("%w: %s, token %d < %d", conference.ErrFenced, id, token, cur.Token)
		}
		return nil
	}, fn)
}
