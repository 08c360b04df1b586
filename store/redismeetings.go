package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/parleyuc/parley/conference"
)

// Meetings returns the server's conference.MeetingStore.
func (r *Redis) Meetings() conference.MeetingStore { return redisMeetings{r} }

type redisMeetings struct{ r *Redis }

// createMeeting stores a meeting unless its ID or dial-in ID is taken,
// atomically: KEYS meeting, dial-in (or ""), owner's set; ARGV JSON, id,
// dial-in ID. Run again with the same meeting (a reply lost, the call
// repeated) it answers 0 again.
var createMeeting = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return 0 end
if cur then return 1 end
if ARGV[3] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[2]) end
redis.call('SADD', KEYS[3], ARGV[2])
return 0`)

func (s redisMeetings) keys(m *conference.Meeting) []string {
	return []string{s.r.key("meeting", string(m.ID)), s.r.key("meeting-dial-in", m.DialInID), s.r.key("meetings-of", m.Organizer)}
}

// Create implements conference.MeetingStore.
func (s redisMeetings) Create(ctx context.Context, m *conference.Meeting) error {
	if m.ID == "" {
		return errors.New("store: a meeting needs an ID")
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	n, err := createMeeting.Run(ctx, s.r.c, s.keys(m), raw, string(m.ID), m.DialInID).Int()
	switch {
	case err != nil:
		return redisErr(err)
	case n == 1:
		return fmt.Errorf("%w: id %s", conference.ErrExists, m.ID)
	case n == 2:
		return fmt.Errorf("%w: dial-in id %s", conference.ErrExists, m.DialInID)
	}
	return nil
}

func decodeMeeting(raw string, id string) (*conference.Meeting, error) {
	m, err := decode[conference.Meeting]([]byte(raw), "meeting "+id)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

func getMeetingWith(ctx context.Context, c redis.Cmdable, key, id string) (*conference.Meeting, error) {
	raw, err := c.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s", conference.ErrNotFound, id)
	}
	if err != nil {
		return nil, redisErr(err)
	}
	return decodeMeeting(raw, id)
}

// Get implements conference.MeetingStore.
func (s redisMeetings) Get(ctx context.Context, id conference.MeetingID) (*conference.Meeting, error) {
	return getMeetingWith(ctx, s.r.c, s.r.key("meeting", string(id)), string(id))
}

// ByDialInID implements conference.MeetingStore.
func (s redisMeetings) ByDialInID(ctx context.Context, dialInID string) (*conference.Meeting, error) {
	id, err := s.r.c.Get(ctx, s.r.key("meeting-dial-in", dialInID)).Result()
	if errors.Is(err, redis.Nil) || dialInID == "" {
		return nil, fmt.Errorf("%w: dial-in id %s", conference.ErrNotFound, dialInID)
	}
	if err != nil {
		return nil, redisErr(err)
	}
	return s.Get(ctx, conference.MeetingID(id))
}

// Update implements conference.MeetingStore: WATCH, read, change, and
// write in MULTI, again if another front end wrote first.
func (s redisMeetings) Update(ctx context.Context, id conference.MeetingID, fn func(*conference.Meeting) error) (*conference.Meeting, error) {
	return s.update(ctx, id, nil, nil, fn)
}

// update is Update, with check run first in the transaction, which also
// WATCHes the keys check reads (UpdateFenced).
func (s redisMeetings) update(ctx context.Context, id conference.MeetingID, watch []string, check func(tx *redis.Tx) error, fn func(*conference.Meeting) error) (*conference.Meeting, error) {
	key := s.r.key("meeting", string(id))
	var out *conference.Meeting
	err := s.r.optimistic(ctx, func(tx *redis.Tx) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		m, err := getMeetingWith(ctx, tx, key, string(id))
		if err != nil {
			return err
		}
		c, err := conference.ApplyUpdate(m, fn)
		if err != nil {
			return err
		}
		raw, err := json.Marshal(c)
		if err != nil {
			return err
		}
		out = c
		return multi(ctx, tx, func(p redis.Pipeliner) {
			p.Set(ctx, key, raw, 0)
			if c.Organizer != m.Organizer {
				p.SRem(ctx, s.r.key("meetings-of", m.Organizer), string(id))
				p.SAdd(ctx, s.r.key("meetings-of", c.Organizer), string(id))
			}
		})
	}, append([]string{key}, watch...)...)
	if err != nil {
		return nil, err
	}
	return out.Clone(), nil
}

// Delete implements conference.MeetingStore.
func (s redisMeetings) Delete(ctx context.Context, id conference.MeetingID) error {
	key := s.r.key("meeting", string(id))
	return s.r.optimistic(ctx, func(tx *redis.Tx) error {
		m, err := getMeetingWith(ctx, tx, key, string(id))
		if err != nil {
			return err
		}
		return multi(ctx, tx, func(p redis.Pipeliner) {
			p.Del(ctx, key)
			if m.DialInID != "" {
				p.Del(ctx, s.r.key("meeting-dial-in", m.DialInID))
			}
			p.SRem(ctx, s.r.key("meetings-of", m.Organizer), string(id))
		})
	}, key)
}

// ByOrganizer implements conference.MeetingStore, oldest first.
func (s redisMeetings) ByOrganizer(ctx context.Context, aor string) ([]*conference.Meeting, error) {
	ids, err := s.r.c.SMembers(ctx, s.r.key("meetings-of", aor)).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.r.key("meeting", id)
	}
	raws, err := s.r.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	var out []*conference.Meeting
	for i, raw := range raws {
		str, ok := raw.(string)
		if !ok {
			continue // deleted since
		}
		m, err := decodeMeeting(str, ids[i])
		if err != nil {
			return nil, err
		}
		if m.Organizer == aor {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *conference.Meeting) int { return a.Created.Compare(b.Created) })
	return out, nil
}
