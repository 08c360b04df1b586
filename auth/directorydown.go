package auth

import (
	"errors"
	"time"
)

// unavailable reports whether a directory lookup failed for another
// reason than the user or tenant not existing: its store cannot be read.
func unavailable(err error) bool {
	return err != nil && !errors.Is(err, ErrUnknownUser) && !errors.Is(err, ErrUnknownTenant)
}

// directoryRetryAfter is what a request is told to wait when the
// directory's store cannot be read.
const directoryRetryAfter = 5 * time.Second

// directoryDown is the answer to a request that needs the directory while
// its store cannot be read: 503 with Retry-After.
func (a *Authenticator) directoryDown(err error) verdict {
	a.cfg.Logger.Warn("directory unavailable", "err", err)
	return verdict{status: 503, reason: "Service Unavailable", retryAfter: directoryRetryAfter, storeDown: true}
}
