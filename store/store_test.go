package store

import (
	"context"
	"fmt"
	"github.com/parleyuc/parley/auth"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
	"github.com/parleyuc/parley/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopRedisServer()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// openRedis connects to the tests' redis-server with a key prefix of the
// test's own, closed when the test ends.
func openRedis(t *testing.T) *Redis {
	t.Helper()
	r, err := OpenRedis(context.Background(), RedisConfig{URL: redisServer(t), Prefix: t.Name() + ":"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// openBolt opens a new database in a temporary directory, closed when
// the test ends.
func openBolt(t *testing.T) *Bolt {
	t.Helper()
	b, err := OpenBolt(filepath.Join(t.TempDir(), "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// The conformance suite, on memory and on bbolt.

func TestMemoryMeetings(t *testing.T) {
	storetest.MeetingStore(t, func(*testing.T) conference.MeetingStore { return conference.NewMemoryMeetings() })
}

func TestBoltMeetings(t *testing.T) {
	storetest.MeetingStore(t, func(t *testing.T) conference.MeetingStore { return openBolt(t).Meetings() })
}

func TestMemoryPolicies(t *testing.T) {
	storetest.PolicyStore(t, func(*testing.T) presence.PolicyStore { return presence.NewMemoryPolicies() })
}

func TestBoltPolicies(t *testing.T) {
	storetest.PolicyStore(t, func(t *testing.T) presence.PolicyStore { return openBolt(t).Policies() })
}

func TestMemoryLocations(t *testing.T) {
	storetest.LocationStore(t, func(*testing.T) presence.LocationStore { return presence.NewMemoryLocation() })
}

func TestBoltLocations(t *testing.T) {
	storetest.LocationStore(t, func(t *testing.T) presence.LocationStore { return openBolt(t).Locations() })
}

func TestRedisMeetings(t *testing.T) {
	storetest.MeetingStore(t, func(t *testing.T) conference.MeetingStore { return openRedis(t).Meetings() })
}

func TestRedisPolicies(t *testing.T) {
	storetest.PolicyStore(t, func(t *testing.T) presence.PolicyStore { return openRedis(t).Policies() })
}

func TestRedisLocations(t *testing.T) {
	storetest.LocationStore(t, func(t *testing.T) presence.LocationStore { return openRedis(t).Locations() })
}

func TestMemoryPublications(t *testing.T) {
	storetest.PublicationStore(t, func(*testing.T) presence.PublicationStore { return presence.NewMemoryPublications() })
}

func TestBoltPublications(t *testing.T) {
	storetest.PublicationStore(t, func(t *testing.T) presence.PublicationStore { return openBolt(t).Publications() })
}

func TestRedisPublications(t *testing.T) {
	storetest.PublicationStore(t, func(t *testing.T) presence.PublicationStore { return openRedis(t).Publications() })
}

// A pool's front ends share one Redis; each has a Feed of its own.
func TestRedisFeed(t *testing.T) {
	r := openRedis(t)
	storetest.Feed(t, func(*testing.T) presence.Feed { return r.Feed() })
}

// The withdrawals are a feed of their own: what one says, the other does
// not hear.
func TestRedisWithdrawals(t *testing.T) {
	r := openRedis(t)
	storetest.Feed(t, func(*testing.T) presence.Feed { return r.Withdrawals() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	heard, subscribed := make(chan string, 4), make(chan struct{}, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Withdrawals().Listen(ctx, func(aor string) {
			if aor == "" {
				subscribed <- struct{}{}
				return
			}
			heard <- aor
		})
	}()
	<-subscribed
	if err := r.Feed().Announce(ctx, "sip:presence@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := r.Withdrawals().Announce(ctx, "sip:withdrawn@example.test"); err != nil {
		t.Fatal(err)
	}
	select {
	case aor := <-heard:
		if aor != "sip:withdrawn@example.test" {
			t.Fatalf("the withdrawals feed heard %s", aor)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the withdrawal was not heard")
	}
	cancel()
	<-done
}

func TestMemoryRevocations(t *testing.T) {
	storetest.RevocationStore(t, func(*testing.T) pki.RevocationStore { return &pki.MemoryRevocations{} })
}

func TestBoltRevocations(t *testing.T) {
	storetest.RevocationStore(t, func(t *testing.T) pki.RevocationStore { return openBolt(t).Revocations() })
}

func TestRedisRevocations(t *testing.T) {
	storetest.RevocationStore(t, func(t *testing.T) pki.RevocationStore { return openRedis(t).Revocations() })
}

func TestMemoryFederation(t *testing.T) {
	storetest.FederationStore(t, func(*testing.T) edge.FederationStore { return &edge.MemoryFederationStore{} })
}

func TestBoltFederation(t *testing.T) {
	storetest.FederationStore(t, func(t *testing.T) edge.FederationStore { return openBolt(t).Federation() })
}

func TestRedisFederation(t *testing.T) {
	storetest.FederationStore(t, func(t *testing.T) edge.FederationStore { return openRedis(t).Federation() })
}

func TestMemoryDirectory(t *testing.T) {
	storetest.DirectoryStore(t, func(*testing.T) auth.DirectoryStore { return auth.NewMemoryDirectory() })
}

func TestBoltDirectory(t *testing.T) {
	storetest.DirectoryStore(t, func(t *testing.T) auth.DirectoryStore { return openBolt(t).Directory() })
}

func TestRedisDirectory(t *testing.T) {
	storetest.DirectoryStore(t, func(t *testing.T) auth.DirectoryStore { return openRedis(t).Directory() })
}

func TestMemoryPartners(t *testing.T) {
	storetest.PartnerStore(t, func(*testing.T) edge.PartnerStore { return &edge.MemoryPartnerStore{} })
}

// TestBoltPartners: the partners share the federation bucket with the
// policy, which is never read as a partner.
func TestBoltPartners(t *testing.T) {
	storetest.PartnerStore(t, func(t *testing.T) edge.PartnerStore {
		b := openBolt(t)
		if err := b.Federation().SaveFederation(context.Background(), edge.FederationPolicy{Open: true}); err != nil {
			t.Fatal(err)
		}
		return b.Partners()
	})
}

func TestRedisPartners(t *testing.T) {
	storetest.PartnerStore(t, func(t *testing.T) edge.PartnerStore { return openRedis(t).Partners() })
}

// TestTenantFederationStores: each tenant's policy is a store of its
// own, apart from the service's and the other tenants'.
func TestTenantFederationStores(t *testing.T) {
	b, r := openBolt(t), openRedis(t)
	for name, st := range map[string]struct {
		service        edge.FederationStore
		tenant, beside func(string) edge.FederationStore
	}{"bolt": {b.Federation(), b.TenantFederation, b.TenantFederation}, "redis": {r.Federation(), r.TenantFederation, r.TenantFederation}} {
		storetest.FederationStore(t, func(*testing.T) edge.FederationStore { return st.tenant("Acme.test") })
		ctx := context.Background()
		for _, other := range []edge.FederationStore{st.service, st.beside("beta.test")} {
			if _, found, err := other.LoadFederation(ctx); found || err != nil {
				t.Fatalf("%s: acme.test's policy found beside it: %v %v", name, found, err)
			}
		}
		if _, found, err := st.tenant("acme.test").LoadFederation(ctx); !found || err != nil {
			t.Fatalf("%s: acme.test's policy not found by its lower-case name: %v %v", name, found, err)
		}
	}
}

func TestMemoryHostLeases(t *testing.T) {
	storetest.HostLeases(t, func(*testing.T) (conference.HostLeases, conference.FencedMeetingStore) {
		ms := conference.NewMemoryMeetings()
		return ms.HostLeases(), ms
	})
}

func TestRedisHostLeases(t *testing.T) {
	storetest.HostLeases(t, func(t *testing.T) (conference.HostLeases, conference.FencedMeetingStore) {
		r := openRedis(t)
		return r.HostLeases(), r.Meetings().(conference.FencedMeetingStore)
	})
}

func TestBoltHostLeases(t *testing.T) {
	storetest.HostLeases(t, func(t *testing.T) (conference.HostLeases, conference.FencedMeetingStore) {
		b := openBolt(t)
		return b.HostLeases(), b.Meetings().(conference.FencedMeetingStore)
	})
}
