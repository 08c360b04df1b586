package presence

import "github.com/parleyuc/parley/auth"

// EndSubscriptions ends every subscription whose watcher match reports
// true, and returns how many it ended. Each watcher is sent a final
// NOTIFY with Subscription-State: terminated;reason=rejected (RFC 6665
// section 4.2.2: its authorization was withdrawn, and it should not
// subscribe again at once) and no presence document. An application
// calls it when its policy withdraws watchers' rights after they
// subscribed: a federated domain blocked, a user disabled or moved out
// of the presentity's reach. match runs under the server's lock: it must
// be quick and must not call the server.
func (s *PresenceServer) EndSubscriptions(match func(watcher *auth.Identity) bool) int {
	if match == nil {
		return 0 // nothing matches
	}
	return s.EndSubscriptionsTo(func(w *auth.Identity, _ string) bool { return match(w) })
}

// EndSubscriptionsTo is EndSubscriptions with the presentity watched
// (its canonical address of record) given to match too: a tenant's
// policy withdraws a federated domain's rights to that tenant's users
// alone.
func (s *PresenceServer) EndSubscriptionsTo(match func(watcher *auth.Identity, presentity string) bool) int {
	if match == nil {
		return 0 // nothing matches
	}
	s.mu.Lock()
	var ended []*subscription
	for _, sub := range s.subs {
		if sub.terminated == "" && match(sub.watcher, sub.presentity) {
			sub.terminated = "rejected"
			ended = append(ended, sub)
		}
	}
	s.mu.Unlock()
	for _, sub := range ended {
		s.kick(sub)
	}
	return len(ended)
}
