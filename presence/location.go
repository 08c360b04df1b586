package presence

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Binding maps an address of record to one registered contact.
type Binding struct {
	AOR     string // sip:alice@example.test
	Contact string // the Contact URI the device registered
	// Instance and RegID identify a device's flow under RFC 5626
	// (+sip.instance, reg-id); empty when the device does not use outbound.
	Instance string
	RegID    int
	CallID   string
	CSeq     uint32
	Expires  time.Time
	// Path is the RFC 3327 Path the REGISTER came through (edges), in
	// order; requests to the binding are routed along it.
	Path []string
	// Transport and Source are the flow: the transport ("TLS") and remote
	// address of the connection the REGISTER arrived on. Requests to the
	// binding are sent back over that connection.
	Transport string
	Source    string
	// Node is the front end of a pool that holds the flow (the address
	// of its pool listener, RegistrarConfig.Node); empty on a server of
	// its own. Other front ends pass requests for the binding to it.
	Node      string
	UserAgent string
}

// Flow identifies a connection devices registered over.
type Flow struct {
	Node      string // the front end holding it; empty on a server of its own
	Transport string // "TLS", "WSS"
	Source    string // the device's address, as the front end sees it
}

// String is the flow's key: "TLS|192.0.2.1:5061", with the node first in
// a pool ("10.0.0.2:5070|TLS|192.0.2.1:5061"), since two front ends may
// see devices at the same address.
func (f Flow) String() string {
	if f.Node == "" {
		return f.Transport + "|" + f.Source
	}
	return f.Node + "|" + f.Transport + "|" + f.Source
}

// Flow returns the flow b was registered over.
func (b *Binding) Flow() Flow { return Flow{Node: b.Node, Transport: b.Transport, Source: b.Source} }

// Key identifies a binding within its AOR: the instance and reg-id for an
// RFC 5626 device, else the contact URI.
func (b *Binding) Key() string {
	if b.Instance != "" {
		return "instance:" + b.Instance + ";reg-id=" + strconv.Itoa(b.RegID)
	}
	return "contact:" + b.Contact
}

// LocationStore keeps bindings. Implementations must be safe for
// concurrent use; a failed write must leave the stored bindings as they
// were. Bindings past their expiry are never returned.
type LocationStore interface {
	// Bindings returns the unexpired bindings of aor at now.
	Bindings(ctx context.Context, aor string, now time.Time) ([]Binding, error)
	// Update applies one REGISTER to aor atomically: bindings in put are
	// added or replaced (by Key), those whose keys are in remove are
	// dropped, all if removeAll.
	Update(ctx context.Context, aor string, put []Binding, remove []string, removeAll bool) error
	// RemoveFlow drops every binding registered over the flow, which has
	// closed, and returns the AORs that lost one.
	RemoveFlow(ctx context.Context, f Flow) ([]string, error)
}

// NodeStore is a LocationStore shared by the front ends of a pool that
// knows which front end holds each flow (Binding.Node), so that a live
// front end can drop the bindings of one that died
// (Registrar.RemoveNode). store.Redis's implements it.
type NodeStore interface {
	LocationStore
	// RemoveNode drops every binding registered over a flow of node and
	// returns, per flow, the AORs that lost one.
	RemoveNode(ctx context.Context, node string) (map[Flow][]string, error)
}

// ApplyUpdate returns the bindings current as LocationStore.Update leaves
// them: all dropped if removeAll, else those whose keys are in remove;
// then each of put replaces the binding with its key, or is added. Every
// LocationStore applies it; current is not changed.
func ApplyUpdate(current, put []Binding, remove []string, removeAll bool) []Binding {
	var out []Binding
	if !removeAll {
		out = slices.DeleteFunc(slices.Clone(current), func(b Binding) bool { return slices.Contains(remove, b.Key()) })
	}
	for _, b := range put {
		if i := slices.IndexFunc(out, func(c Binding) bool { return c.Key() == b.Key() }); i >= 0 {
			out[i] = b
		} else {
			out = append(out, b)
		}
	}
	return out
}

// ErrStore wraps failures of a LocationStore, a PublicationStore or a
// PolicyStore, as the Registrar's and the PresencePolicy's methods return
// them: the service is unavailable for now (SIP 503, HTTP 503), the
// request was not wrong.
var ErrStore = errors.New("presence: store failed")

// MemoryLocation is a LocationStore in memory. Expired bindings are
// dropped whenever their AOR is read or written.
type MemoryLocation struct {
	mu    sync.Mutex
	aor   map[string][]Binding
	flows map[string]map[string]bool // flow -> AORs with a binding over it
}

// NewMemoryLocation returns an empty MemoryLocation.
func NewMemoryLocation() *MemoryLocation {
	return &MemoryLocation{aor: make(map[string][]Binding), flows: make(map[string]map[string]bool)}
}

// RemoveFlow implements LocationStore.
func (m *MemoryLocation) RemoveFlow(_ context.Context, f Flow) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fk := f.String()
	var aors []string
	for aor := range m.flows[fk] {
		bs := slices.DeleteFunc(m.aor[aor], func(b Binding) bool { return b.Flow() == f })
		if len(bs) == 0 {
			delete(m.aor, aor)
		} else {
			m.aor[aor] = bs
		}
		aors = append(aors, aor)
	}
	delete(m.flows, fk)
	slices.Sort(aors)
	return aors, nil
}

// Bindings implements LocationStore.
func (m *MemoryLocation) Bindings(_ context.Context, aor string, now time.Time) ([]Binding, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	live := m.pruneLocked(aor, now)
	out := make([]Binding, len(live))
	for i, b := range live {
		b.Path = slices.Clone(b.Path)
		out[i] = b
	}
	return out, nil
}

// Update implements LocationStore.
func (m *MemoryLocation) Update(_ context.Context, aor string, put []Binding, remove []string, removeAll bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := ApplyUpdate(m.aor[aor], put, remove, removeAll)
	for i := range cur {
		cur[i].Path = slices.Clone(cur[i].Path) // the caller's slices stay the caller's
	}
	if len(cur) == 0 {
		delete(m.aor, aor)
	} else {
		m.aor[aor] = cur
	}
	for _, b := range put {
		fk := b.Flow().String()
		if m.flows[fk] == nil {
			m.flows[fk] = map[string]bool{}
		}
		m.flows[fk][aor] = true // stale entries are harmless: RemoveFlow filters by flow
	}
	return nil
}

// pruneLocked drops aor's expired bindings and returns the rest.
func (m *MemoryLocation) pruneLocked(aor string, now time.Time) []Binding {
	live := slices.DeleteFunc(m.aor[aor], func(b Binding) bool { return !now.Before(b.Expires) })
	if len(live) == 0 {
		delete(m.aor, aor)
		return nil
	}
	m.aor[aor] = live
	return live
}
