package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyuc/parley/presence"
)

// Policies returns the server's presence.PolicyStore.
func (r *Redis) Policies() presence.PolicyStore { return redisPolicies{r} }

type redisPolicies struct{ r *Redis }

// Policy implements presence.PolicyStore.
func (s redisPolicies) Policy(ctx context.Context, aor string) (presence.UserPolicy, error) {
	var p presence.UserPolicy
	raw, err := s.r.c.Get(ctx, s.r.key("policy", aor)).Bytes()
	if errors.Is(err, redis.Nil) {
		return p, nil
	}
	if err != nil {
		return p, redisErr(err)
	}
	return decode[presence.UserPolicy](raw, "policy of "+aor)
}

// SetPolicy implements presence.PolicyStore.
func (s redisPolicies) SetPolicy(ctx context.Context, aor string, p presence.UserPolicy) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return redisErr(s.r.c.Set(ctx, s.r.key("policy", aor), raw, 0).Err())
}

// Locations returns the server's presence.LocationStore: an AOR's
// bindings are one hash, which Redis expires with its last binding.
func (r *Redis) Locations() presence.LocationStore { return redisLocations{r} }

type redisLocations struct{ r *Redis }

func (s redisLocations) aorKey(aor string) string { return s.r.key("bindings", aor) }

func (s redisLocations) flowKey(f presence.Flow) string { return s.r.key("flow", f.String()) }

func decodeBindings(fields map[string]string, aor string) ([]presence.Binding, error) {
	out := make([]presence.Binding, 0, len(fields))
	for _, raw := range fields {
		b, err := decode[presence.Binding]([]byte(raw), "bindings of "+aor)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", presence.ErrStore, err)
		}
		out = append(out, b)
	}
	// A hash has no order; registrations are listed oldest first.
	slices.SortStableFunc(out, func(a, b presence.Binding) int { return a.Expires.Compare(b.Expires) })
	return out, nil
}

// Bindings implements presence.LocationStore.
func (s redisLocations) Bindings(ctx context.Context, aor string, now time.Time) ([]presence.Binding, error) {
	fields, err := s.r.c.HGetAll(ctx, s.aorKey(aor)).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", presence.ErrStore, redisErr(err))
	}
	bs, err := decodeBindings(fields, aor)
	return slices.DeleteFunc(bs, func(b presence.Binding) bool { return !now.Before(b.Expires) }), err
}

// Update implements presence.LocationStore: the AOR's hash is read and
// rewritten in one optimistic transaction, and expires with its last
// binding; each flow's set of AORs expires with its last binding too.
func (s redisLocations) Update(ctx context.Context, aor string, put []presence.Binding, remove []string, removeAll bool) error {
	if err := checkBindings(put); err != nil {
		return fmt.Errorf("%w: %v", presence.ErrStore, err)
	}
	key := s.aorKey(aor)
	err := s.r.optimistic(ctx, func(tx *redis.Tx) error {
		var cur []presence.Binding
		if !removeAll { // all go: what is stored need not even decode
			fields, err := tx.HGetAll(ctx, key).Result()
			if err != nil {
				return redisErr(err)
			}
			if cur, err = decodeBindings(fields, aor); err != nil {
				return err
			}
		}
		cur = presence.ApplyUpdate(cur, put, remove, false)
		values := make([]any, 0, 2*len(cur))
		var last time.Time
		for _, b := range cur {
			raw, err := json.Marshal(b)
			if err != nil {
				return err
			}
			values = append(values, b.Key(), raw)
			if b.Expires.After(last) {
				last = b.Expires
			}
		}
		return multi(ctx, tx, func(p redis.Pipeliner) {
			p.Del(ctx, key)
			if len(cur) == 0 {
				return
			}
			p.HSet(ctx, key, values...)
			p.PExpireAt(ctx, key, last.Add(staleBinding))
			for _, b := range put {
				// A flow's set of AORs lives as long as its longest
				// binding: set when new, extended never shortened.
				fk, life := s.flowKey(b.Flow()), time.Until(b.Expires.Add(staleBinding))
				p.SAdd(ctx, fk, aor)
				p.ExpireNX(ctx, fk, life)
				p.ExpireGT(ctx, fk, life)
				if b.Node != "" { // the front end's flows, for RemoveNode
					nk := s.r.key("node-flows", b.Node)
					p.SAdd(ctx, nk, b.Flow().String())
					p.ExpireNX(ctx, nk, life)
					p.ExpireGT(ctx, nk, life)
					p.SAdd(ctx, s.r.key("nodes"), b.Node)
				}
			}
		})
	}, key)
	if err != nil {
		return fmt.Errorf("%w: %v", presence.ErrStore, err)
	}
	return nil
}

// RemoveFlow implements presence.LocationStore.
func (s redisLocations) RemoveFlow(ctx context.Context, f presence.Flow) ([]string, error) {
	fk := s.flowKey(f)
	aors, err := s.r.c.SMembers(ctx, fk).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", presence.ErrStore, redisErr(err))
	}
	var lost []string
	for _, aor := range aors {
		key := s.aorKey(aor)
		removed := false
		err := s.r.optimistic(ctx, func(tx *redis.Tx) error {
			fields, err := tx.HGetAll(ctx, key).Result()
			if err != nil {
				return redisErr(err)
			}
			var gone []string
			for k, raw := range fields {
				var b presence.Binding
				if json.Unmarshal([]byte(raw), &b) == nil && b.Flow() == f {
					gone = append(gone, k)
				}
			}
			removed = len(gone) > 0
			if !removed {
				return nil
			}
			return multi(ctx, tx, func(p redis.Pipeliner) { p.HDel(ctx, key, gone...) })
		}, key)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", presence.ErrStore, err)
		}
		if removed {
			lost = append(lost, aor)
		}
	}
	// Only the AORs handled leave the flow's set: one that registered
	// over the flow meanwhile stays in it.
	if len(aors) > 0 {
		members := make([]any, len(aors))
		for i, a := range aors {
			members[i] = a
		}
		if err := s.r.c.SRem(ctx, fk, members...).Err(); err != nil {
			return nil, fmt.Errorf("%w: %v", presence.ErrStore, redisErr(err))
		}
	}
	slices.Sort(lost)
	return lost, nil
}

// RemoveNode implements presence.NodeStore: every flow the front end
// node held is removed as RemoveFlow removes one, and the node is
// forgotten.
func (s redisLocations) RemoveNode(ctx context.Context, node string) (map[presence.Flow][]string, error) {
	nk := s.r.key("node-flows", node)
	flows, err := s.r.c.SMembers(ctx, nk).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", presence.ErrStore, redisErr(err))
	}
	out := map[presence.Flow][]string{}
	for _, fs := range flows {
		parts := strings.SplitN(fs, "|", 3)
		if len(parts) != 3 || parts[0] != node {
			continue
		}
		f := presence.Flow{Node: parts[0], Transport: parts[1], Source: parts[2]}
		aors, err := s.RemoveFlow(ctx, f)
		if err != nil {
			return out, err
		}
		if len(aors) > 0 {
			out[f] = aors
		}
	}
	if err := s.r.c.Del(ctx, nk).Err(); err != nil {
		return out, fmt.Errorf("%w: %v", presence.ErrStore, redisErr(err))
	}
	if err := s.r.c.SRem(ctx, s.r.key("nodes"), node).Err(); err != nil {
		return out, fmt.Errorf("%w: %v", presence.ErrStore, redisErr(err))
	}
	return out, nil
}

// Heartbeat says the front end node is alive for ttl: a front end of a
// pool calls it every few seconds, and the others take a node whose
// heartbeat lapsed for dead (DeadNodes).
func (r *Redis) Heartbeat(ctx context.Context, node string, ttl time.Duration) error {
	return redisErr(r.c.Set(ctx, r.key("alive", node), "1", ttl).Err())
}

// Advertise publishes the front end node's addresses (a listener's name,
// such as "sip_tls", to its host:port) for ttl, with its heartbeat: the
// other front ends of the pool redirect to them (NodeAddress).
func (r *Redis) Advertise(ctx context.Context, node string, addrs map[string]string, ttl time.Duration) error {
	key := r.key("node-addr", node)
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, addrs)
		p.PExpire(ctx, key, ttl)
		return nil
	})
	return redisErr(err)
}

// NodeAddress returns the address the live front end node advertised
// for a listener, or "" if it advertised none or is not alive.
func (r *Redis) NodeAddress(ctx context.Context, node, listener string) (string, error) {
	addr, err := r.c.HGet(ctx, r.key("node-addr", node), listener).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return addr, redisErr(err)
}

// DeadNodes returns the front ends that hold flows in the store but whose
// heartbeat has lapsed: their devices are gone with them, and a live
// front end removes their bindings (presence.Registrar.RemoveNode).
func (r *Redis) DeadNodes(ctx context.Context) ([]string, error) {
	nodes, err := r.c.SMembers(ctx, r.key("nodes")).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	var dead []string
	for _, n := range nodes {
		alive, err := r.c.Exists(ctx, r.key("alive", n)).Result()
		if err != nil {
			return nil, redisErr(err)
		}
		if alive == 0 {
			dead = append(dead, n)
		}
	}
	slices.Sort(dead)
	return dead, nil
}
