package main

import (
	"slices"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/internal/testredis"
)

// TestMeetingHostedByOneFrontEnd: two front ends, each its own process, on
// one redis-server. Alice joins a meeting through A, which hosts it: the
// admin API on A and on B names A. Bob's INVITE through B is passed on
// to A and answered there. A is killed (-9): within
// the lease TTL bound a join through B succeeds and B hosts it, with a
// larger fencing token. The lease key, read throughout, never names two
// hosts: its token never goes backwards, and another host appears only
// after the previous lease expired.
func TestMeetingHostedByOneFrontEnd(t *testing.T) {
	rds, fe, kill := startPool(t, 2)
	a, b := fe[0], fe[1]
	killA := kill[0]

	m := a.schedule(t, "alice", `{"access":"organization"}`)
	stop := testredis.WatchLease(t, rds.URL, m.ID)
	defer stop()
	invite := func(s *server, name string) *sip.Response {
		t.Helper()
		u := s.sipUser(t, name, a.passwords["sip:"+name+"@example.test"], "localhost")
		res, err := u.do(u.request(sip.INVITE, m.Focus, sip.NewHeader("Contact", "<sip:"+name+"-dev@127.0.0.1;transport=tls>")))
		if err != nil {
			t.Fatalf("%s's INVITE through %s: %v", name, s.listeners["pool"], err)
		}
		return res
	}
	if res := invite(a, "alice"); res.StatusCode != 200 {
		t.Fatalf("alice joins through A: %v", res)
	}
	type view struct {
		Host      string `json:"host"`
		HostToken uint64 `json:"host_token"`
	}
	var onA, onB view
	a.admin(t).must("GET", "/meetings/"+m.ID, "", 200, &onA)
	b.admin(t).must("GET", "/meetings/"+m.ID, "", 200, &onB)
	if onA.Host != a.listeners["pool"] || onA.HostToken == 0 || onB != onA {
		t.Fatalf("meeting view: on A %+v, on B %+v; want host %s on both", onA, onB, a.listeners["pool"])
	}
	if h, hb := metric(t, a, "parley_meetings_hosted"), metric(t, b, "parley_meetings_hosted"); h != 1 || hb != 0 {
		t.Fatalf("parley_meetings_hosted: A %v, B %v; want 1, 0", h, hb)
	}

	// Bob's INVITE through B is passed on to A, over the pool's mutual
	// TLS, and answered there.
	if res := invite(b, "bob"); res.StatusCode != 200 {
		t.Fatalf("bob's INVITE through B: %v; want 200 from A through B", res)
	}
	if n := metric(t, b, "parley_meeting_requests_forwarded_total"); n != 1 {
		t.Fatalf("parley_meeting_requests_forwarded_total on B: %v; want 1", n)
	}
	if n := metric(t, a, "parley_meeting_participants"); n != 2 {
		t.Fatalf("parley_meeting_participants on A: %v; want 2 (alice, and bob through B)", n)
	}

	killA()
	killed := time.Now()
	const bound = meetingLeaseTTL + 2*time.Second // the TTL, and a join's round trips
	for {
		res := invite(b, "bob")
		if res.StatusCode == 200 {
			break
		}
		if res.StatusCode != 503 { // the host unreachable, its lease not lapsed yet
			t.Fatalf("bob's INVITE through B after A died: %v", res)
		}
		if time.Since(killed) > bound {
			t.Fatalf("bob cannot join through B %v after A died: %v", bound, res)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("bob joined through B %v after A was killed", time.Since(killed).Round(time.Millisecond))
	b.admin(t).must("GET", "/meetings/"+m.ID, "", 200, &onB)
	if onB.Host != b.listeners["pool"] || onB.HostToken <= onA.HostToken {
		t.Fatalf("meeting view on B after the takeover %+v; want host %s with a token above %d", onB, b.listeners["pool"], onA.HostToken)
	}

	time.Sleep(300 * time.Millisecond) // readings of B's lease, not only of A's
	samples := stop()
	if len(samples) < 10 {
		t.Fatalf("only %d readings of the lease", len(samples))
	}
	if err := testredis.OneHost(samples); err != nil {
		t.Fatal(err)
	}
	seenB := slices.ContainsFunc(samples, func(s testredis.LeaseSample) bool { return s.Host == b.listeners["pool"] })
	if samples[0].Host != a.listeners["pool"] || !seenB {
		t.Fatalf("the lease went from %s to %s; want A then B", samples[0].Host, samples[len(samples)-1].Host)
	}
}
