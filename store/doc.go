// Package store is Parley's storage seam in one place: the small
// interfaces the other packages keep their state behind, and the
// implementations of them.
//
// The interfaces, each declared by the package that uses it:
//
//   - conference.MeetingStore: scheduled meetings and their policies;
//   - conference.HostLeases: which front end of a pool hosts each live
//     meeting, with fencing tokens that the meetings' UpdateFenced
//     (conference.FencedMeetingStore) checks ([Redis.HostLeases],
//     [Bolt.HostLeases]);
//   - presence.PolicyStore: each user's contacts, privacy mode and blocks;
//   - presence.LocationStore: registrations (bindings with an expiry);
//   - presence.PublicationStore: what users' devices published (PUBLISH);
//   - edge.FederationStore: the tenant admin's federation policy;
//   - pki.RevocationStore: a CA's revocations and its published CRL;
//   - auth.DirectoryStore: the tenants and users, as an admin API changes
//     them (read on every lookup, so a change is seen at the next sign-in).
//
// A pool of front ends on Redis shares two more things, on Redis pub/sub:
// presence.Feed ([Redis.Feed]): a presentity's change on one front end
// reaches the watchers connected to the others; and [Redis.Withdrawals]:
// a user disabled, deleted or signed out on one front end is signed out
// of the others' connections at once. Presence subscriptions are
// not stored: a subscription's NOTIFYs go over the watcher's own
// connection, which only the front end holding it can use; a watcher whose
// front end fails subscribes again over its new connection.
//
// Each has an implementation in memory in its own package (for tests and
// throwaway use) and one here on an embedded, persistent bbolt database
// ([Bolt]), the default of examples/server: a write is on disk (fsync)
// when the call returns, a crash at any point leaves the database as it
// was after the last write that returned, and the schema is versioned
// with migrations run at open. [Redis] implements them on a Redis server
// shared by a pool of front ends: registrations expire natively, and
// every read-modify-write is atomic (a Lua script, or WATCH and MULTI
// retried on conflict), so front ends racing on one record serialize; a
// server that cannot be reached gives errors wrapping [ErrRedis] (and
// presence.ErrStore from the location store, which the Registrar answers
// 503 with Retry-After), and the store works again once it is back. The
// conformance tests in [github.com/parleyuc/parley/store/storetest] are
// what every implementation must pass.
package store
