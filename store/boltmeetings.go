package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/parleyuc/parley/conference"
)

// Meetings returns the database's conference.MeetingStore.
func (b *Bolt) Meetings() conference.MeetingStore { return boltMeetings{b.db} }

type boltMeetings struct{ db *bolt.DB }

// ownerKey is the organizer index's key: the organizer's length, the
// organizer and the ID, so no organizer's keys start another's.
func ownerKey(organizer, id string) []byte {
	return append(ownerPrefix(organizer), id...)
}

func ownerPrefix(organizer string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(organizer))), organizer...)
}

// getMeeting reads and decodes the meeting id in tx.
func getMeeting(tx *bolt.Tx, id string) (*conference.Meeting, error) {
	raw := tx.Bucket(bucketMeetings).Get([]byte(id))
	if raw == nil {
		return nil, fmt.Errorf("%w: %s", conference.ErrNotFound, id)
	}
	m, err := decode[conference.Meeting](raw, "meeting "+id)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

func putMeeting(tx *bolt.Tx, m *conference.Meeting) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMeetings).Put([]byte(m.ID), raw)
}

// Create implements conference.MeetingStore.
func (s boltMeetings) Create(_ context.Context, m *conference.Meeting) error {
	if m.ID == "" {
		return errors.New("store: a meeting needs an ID")
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeetings).Get([]byte(m.ID)) != nil {
			return fmt.Errorf("%w: id %s", conference.ErrExists, m.ID)
		}
		dialIn := tx.Bucket(bucketMeetingDialIn)
		if m.DialInID != "" {
			if dialIn.Get([]byte(m.DialInID)) != nil {
				return fmt.Errorf("%w: dial-in id %s", conference.ErrExists, m.DialInID)
			}
			if err := dialIn.Put([]byte(m.DialInID), []byte(m.ID)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketMeetingOrg).Put(ownerKey(m.Organizer, string(m.ID)), nil); err != nil {
			return err
		}
		return putMeeting(tx, m)
	})
}

// Get implements conference.MeetingStore.
func (s boltMeetings) Get(_ context.Context, id conference.MeetingID) (*conference.Meeting, error) {
	var m *conference.Meeting
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		m, err = getMeeting(tx, string(id))
		return err
	})
	return m, err
}

// ByDialInID implements conference.MeetingStore.
func (s boltMeetings) ByDialInID(_ context.Context, dialInID string) (*conference.Meeting, error) {
	var m *conference.Meeting
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		id := tx.Bucket(bucketMeetingDialIn).Get([]byte(dialInID))
		if id == nil || dialInID == "" {
			return fmt.Errorf("%w: dial-in id %s", conference.ErrNotFound, dialInID)
		}
		m, err = getMeeting(tx, string(id))
		return err
	})
	return m, err
}

// Update implements conference.MeetingStore: read, change and write in
// one transaction, so concurrent updates serialize.
func (s boltMeetings) Update(_ context.Context, id conference.MeetingID, fn func(*conference.Meeting) error) (*conference.Meeting, error) {
	return s.update(id, nil, fn)
}

// update is Update, with check run first in the transaction
// (UpdateFenced).
func (s boltMeetings) update(id conference.MeetingID, check func(tx *bolt.Tx) error, fn func(*conference.Meeting) error) (*conference.Meeting, error) {
	var out *conference.Meeting
	err := s.db.Update(func(tx *bolt.Tx) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		m, err := getMeeting(tx, string(id))
		if err != nil {
			return err
		}
		c, err := conference.ApplyUpdate(m, fn)
		if err != nil {
			return err
		}
		if c.Organizer != m.Organizer {
			org := tx.Bucket(bucketMeetingOrg)
			if err := org.Delete(ownerKey(m.Organizer, string(id))); err != nil {
				return err
			}
			if err := org.Put(ownerKey(c.Organizer, string(id)), nil); err != nil {
				return err
			}
		}
		if err := putMeeting(tx, c); err != nil {
			return err
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out.Clone(), nil
}

// Delete implements conference.MeetingStore.
func (s boltMeetings) Delete(_ context.Context, id conference.MeetingID) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		m, err := getMeeting(tx, string(id))
		if err != nil {
			return err
		}
		if m.DialInID != "" {
			if err := tx.Bucket(bucketMeetingDialIn).Delete([]byte(m.DialInID)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketMeetingOrg).Delete(ownerKey(m.Organizer, string(id))); err != nil {
			return err
		}
		return tx.Bucket(bucketMeetings).Delete([]byte(id))
	})
}

// ByOrganizer implements conference.MeetingStore, oldest first.
func (s boltMeetings) ByOrganizer(_ context.Context, aor string) ([]*conference.Meeting, error) {
	var out []*conference.Meeting
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := ownerPrefix(aor)
		c := tx.Bucket(bucketMeetingOrg).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			m, err := getMeeting(tx, string(k[len(prefix):]))
			if errors.Is(err, conference.ErrNotFound) {
				continue // an index entry without its meeting: ignored
			}
			if err != nil {
				return err
			}
			if m.Organizer == aor {
				out = append(out, m)
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b *conference.Meeting) int { return a.Created.Compare(b.Created) })
	return out, err
}
