package auth

import (
	"context"
	"sync/atomic"
)

// Associations returns how many open connections carry a security
// association.
func (a *Authenticator) Associations() int { return a.conns.associated() }

// AuthMetrics counts what the Authenticator decided, for monitoring: a
// rise in Refused or Throttled is someone guessing passwords.
type AuthMetrics struct {
	Sessions   int    // open connections with a security association
	Accepted   uint64 // requests let through
	Challenged uint64 // challenged (401/407) having sent no credentials, or a stale nonce
	Refused    uint64 // refused: wrong credentials (challenged again), disabled account, forbidden
	Throttled  uint64 // refused for too many failures from the source (503 or 429)
}

type authMetrics struct{ accepted, challenged, refused, throttled atomic.Uint64 }

// Metrics returns the counts so far.
func (a *Authenticator) Metrics() AuthMetrics {
	return AuthMetrics{Sessions: a.conns.associated(), Accepted: a.metrics.accepted.Load(), Challenged: a.metrics.challenged.Load(),
		Refused: a.metrics.refused.Load(), Throttled: a.metrics.throttled.Load()}
}

// decide is check, counted.
func (a *Authenticator) decide(ctx context.Context, at *attempt) verdict {
	v := a.check(ctx, at)
	switch {
	case v.id != nil:
		a.metrics.accepted.Add(1)
	case (v.status == 401 || v.status == 407) && (at.credentials == "" || v.stale):
		a.metrics.challenged.Add(1)
	case v.status == 503:
		a.metrics.throttled.Add(1)
	default:
		a.metrics.refused.Add(1)
	}
	return v
}
