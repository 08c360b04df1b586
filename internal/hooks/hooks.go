// Package hooks holds the callbacks a component calls when something
// happens, registered by the one rule of Parley's API: OnX(fn) adds fn
// and returns a function that removes it.
package hooks

import (
	"maps"
	"slices"
	"sync"
)

// List is a set of callbacks of type F. The zero value is empty and ready;
// it is safe for concurrent use.
type List[F any] struct {
	mu   sync.Mutex
	next uint64
	fns  map[uint64]F
}

// Add registers f and returns the function that removes it; calling that
// more than once does nothing more.
func (l *List[F]) Add(f F) (remove func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fns == nil {
		l.fns = map[uint64]F{}
	}
	id := l.next
	l.next++
	l.fns[id] = f
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.fns, id)
	}
}

// All returns the registered callbacks in the order they were added, to
// be called without holding any lock.
func (l *List[F]) All() []F {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]F, 0, len(l.fns))
	for _, id := range slices.Sorted(maps.Keys(l.fns)) {
		out = append(out, l.fns[id])
	}
	return out
}
