package presence

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Publication is one device's presence as it published it (RFC 3903).
type Publication struct {
	ETag    string
	Doc     *Presence
	Expires time.Time
	// At is when the document was published or last modified; a refresh
	// keeps it. The latest document's note and calendar win.
	At time.Time
	// Flow is the connection it was published over (Flow.String); a new
	// publication over the same connection replaces it.
	Flow string `json:",omitempty"`
}

// PublicationStore keeps presentities' publications. The front ends of a
// pool share one, so that a watcher on any of them sees what a device
// published on another. Implementations must be safe for concurrent use;
// a failed write leaves the publications as they were. Failures wrap
// ErrStore.
type PublicationStore interface {
	// Publications returns aor's publications unexpired at now, oldest At
	// first.
	Publications(ctx context.Context, aor string, now time.Time) ([]Publication, error)
	// Update replaces aor's publications (expired ones included) by what
	// change returns for them, atomically. A store may call change more
	// than once, so it must depend on its argument alone; if it returns
	// an error, nothing is stored and Update returns that error.
	Update(ctx context.Context, aor string, change func([]Publication) ([]Publication, error)) error
	// Expire removes the publications expired at now and returns the AORs
	// that lost one. When front ends sweep one store together, each AOR
	// is returned to one of them.
	Expire(ctx context.Context, now time.Time) ([]string, error)
}

// Feed carries presence changes between the front ends of a pool: a
// change one makes (a publication, a privacy setting, a device signing
// out) reaches the watchers connected to the others. The PresenceServer
// announces every change it makes and listens for the others'.
type Feed interface {
	// Announce tells the other front ends that aor's presence may have
	// changed.
	Announce(ctx context.Context, aor string) error
	// Listen calls changed with each AOR another front end announces, and
	// with "" whenever announcements may have been missed (when it starts
	// and after a reconnect): then every view must be checked. It returns
	// when ctx is done, or with an error when the feed fails.
	Listen(ctx context.Context, changed func(aor string)) error
}

// MemoryPublications is a PublicationStore in memory, for a server of its
// own.
type MemoryPublications struct {
	mu   sync.Mutex
	pubs map[string][]Publication
}

// NewMemoryPublications returns an empty MemoryPublications.
func NewMemoryPublications() *MemoryPublications {
	return &MemoryPublications{pubs: map[string][]Publication{}}
}

// LivePublications returns the publications of pubs unexpired at now,
// oldest At first, as PublicationStore.Publications does; pubs is not
// changed.
func LivePublications(pubs []Publication, now time.Time) []Publication {
	live := slices.DeleteFunc(slices.Clone(pubs), func(p Publication) bool { return !now.Before(p.Expires) })
	slices.SortStableFunc(live, func(a, b Publication) int { return a.At.Compare(b.At) })
	return live
}

// Publications implements PublicationStore.
func (m *MemoryPublications) Publications(_ context.Context, aor string, now time.Time) ([]Publication, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return LivePublications(m.pubs[aor], now), nil
}

// Update implements PublicationStore.
func (m *MemoryPublications) Update(_ context.Context, aor string, change func([]Publication) ([]Publication, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next, err := change(slices.Clone(m.pubs[aor]))
	if err != nil {
		return err
	}
	if len(next) == 0 {
		delete(m.pubs, aor)
	} else {
		m.pubs[aor] = slices.Clone(next)
	}
	return nil
}

// Expire implements PublicationStore.
func (m *MemoryPublications) Expire(_ context.Context, now time.Time) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var changed []string
	for aor, pubs := range m.pubs {
		live := LivePublications(pubs, now)
		if len(live) == len(pubs) {
			continue
		}
		changed = append(changed, aor)
		if len(live) == 0 {
			delete(m.pubs, aor)
		} else {
			m.pubs[aor] = live
		}
	}
	slices.Sort(changed)
	return changed, nil
}
