package auth

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestThrottleKeysBySubnetAndDomain(t *testing.T) {
	var c clock
	c.set(time.Now())
	th := mustThrottle(t, ThrottleConfig{PerAddress: Limit{1, 5}, PerSubnet: Limit{1, 8}, PerDomain: Limit{1, 3}, Now: c.now})
	allowed := func(addr, domain string, n int) int {
		ok := 0
		for range n {
			if a, _ := th.Allow(netip.MustParseAddr(addr), domain); a {
				ok++
			}
		}
		return ok
	}
	if got := allowed("198.51.100.1", "", 10); got != 5 {
		t.Fatalf("one address: %d allowed, want its burst of 5", got)
	}
	if got := allowed("198.51.100.2", "", 10); got != 3 {
		t.Fatalf("second address of the /24: %d allowed, want the subnet's remaining 3", got)
	}
	if got := allowed("198.51.101.1", "", 10); got != 5 {
		t.Fatalf("address of another /24: %d allowed, want 5", got)
	}
	// IPv6 is grouped by /64; an IPv4-mapped address is its IPv4 self.
	if got := allowed("2001:db8::1", "", 3) + allowed("2001:db8::2", "", 10); got != 8 {
		t.Fatalf("two addresses of one /64: %d allowed, want the subnet's 8", got)
	}
	if got := allowed("::ffff:198.51.100.9", "", 1); got != 0 {
		t.Fatal("IPv4-mapped address escaped its IPv4 subnet's limit")
	}
	// A federated domain is limited as a whole, whatever addresses it uses.
	if got := allowed("203.0.113.1", "partner.test", 2) + allowed("203.0.114.1", "PARTNER.test", 5); got != 3 {
		t.Fatalf("federated domain: %d allowed, want its burst of 3", got)
	}
	// A refused request costs nothing: 203.0.114.1 spent one token on its
	// one allowed request, and none on the four the domain refused.
	if got := allowed("203.0.114.1", "", 10); got != 4 {
		t.Fatalf("address after domain refusals: %d allowed, want 4", got)
	}
	// Buckets refill with time.
	c.set(c.now().Add(2 * time.Second))
	if got := allowed("198.51.100.1", "", 10); got != 2 {
		t.Fatalf("after 2 s at 1/s: %d allowed, want 2", got)
	}
}

func TestThrottleMemoryBounded(t *testing.T) {
	th := mustThrottle(t, ThrottleConfig{MaxKeys: 1000})
	for i := range 20_000 {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		th.Allow(addr, "flood-"+strconv.Itoa(i%50)+".test")
	}
	if n := th.Len(); n > 1000 {
		t.Fatalf("throttle holds %d buckets after a flood from 20,000 addresses, bound is 1000", n)
	}
	if _, err := NewThrottle(ThrottleConfig{PerSubnet: Limit{Rate: -1, Burst: 1}}); err == nil {
		t.Fatal("negative rate accepted")
	}
}

func TestAllowSenderPerSenderAndDomain(t *testing.T) {
	var c clock
	c.set(time.Now())
	th := mustThrottle(t, ThrottleConfig{PerSender: Limit{1, 3}, PerDomain: Limit{1, 5}, Now: c.now})
	count := func(sender, domain string, n int) int {
		ok := 0
		for range n {
			if a, _ := th.AllowSender(sender, domain); a {
				ok++
			}
		}
		return ok
	}
	if got := count("sip:spam@evil.test", "", 10); got != 3 {
		t.Fatalf("one sender: %d allowed, want its burst of 3", got)
	}
	if got := count("sip:other@example.test", "", 10); got != 3 {
		t.Fatalf("another sender: %d allowed, want 3", got)
	}
	// Federated senders of one domain share the domain's bucket.
	if got := count("sip:a@partner.test", "partner.test", 10) + count("sip:b@partner.test", "partner.test", 10); got != 5 {
		t.Fatalf("one federated domain: %d allowed, want the domain's burst of 5", got)
	}
}

func TestThrottleChurnDoesNotResetBuckets(t *testing.T) {
	var c clock
	c.set(time.Now())
	th := mustThrottle(t, ThrottleConfig{PerAddress: Limit{1, 5}, PerSubnet: Limit{1e6, 1e6}, MaxKeys: 10, Now: c.now})
	victim := netip.MustParseAddr("2001:db8::1")
	allowed := 0
	for i := range 1000 {
		if ok, _ := th.Allow(victim, ""); ok {
			allowed++
		}
		// Churn: other sources, each in its own /64, push the table past
		// its size between the victim's requests.
		for j := range 5 {
			th.Allow(netip.MustParseAddr(fmt.Sprintf("2001:db8:%x:%x::1", i+1, j)), "")
		}
	}
	if allowed > 10 {
		t.Fatalf("a throttled source got %d of 1000 requests through by churning the table (burst 5)", allowed)
	}
	if th.Len() > 10 {
		t.Fatalf("%d buckets, bound 10", th.Len())
	}
}
