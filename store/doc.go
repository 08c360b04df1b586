// Package store is Parley's storage seam in one place: the small
// interfaces the other packages keep their state behind, and the
// implementations of them.
//
// The interfaces, each declared by the package that uses it:
//
//   - conference.MeetingStore: scheduled meetings and their policies;
//   - presence.PolicyStore: each user's contacts, privacy mode and blocks;
//   - presence.LocationStore: registrations (bindings with an expiry);
//   - edge.FederationStore: the tenant admin's federation policy.
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
