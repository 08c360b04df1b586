//go:build opus

package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	srtpphone "github.com/parleyuc/parley/internal/phone"
	"github.com/parleyuc/parley/media/audio"
)

// TestWebJoinThroughAnotherFrontEnd: two front ends, each its own process,
// on one redis-server. Alice joins a meeting with WebRTC through A, which
// hosts it. Bob joins it with WebRTC through B, which does not: B relays
// his signaling to A over the pool's mutual TLS, so he is in A's roster
// (both see one roster of two, A counts two participants and B none) and
// the two hear each other's tones through A's media bridge. B counts one
// forwarded join. A browser cannot use the pool's ticket route itself.
func TestWebJoinThroughAnotherFrontEnd(t *testing.T) {
	_, fe, _ := startPool(t, 2)
	a, b := fe[0], fe[1]

	m := a.schedule(t, "alice", `{"subject":"Across","access":"organization"}`)
	alice := joinWebPeer(t, a, m.ID, "alice", a.passwords["sip:alice@example.test"], 440)
	var onA struct {
		Host string `json:"host"`
	}
	for deadline := time.Now().Add(5 * time.Second); onA.Host != a.listeners["pool"]; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("A does not host the meeting alice joined through it: host %q", onA.Host)
		}
		a.admin(t).must("GET", "/meetings/"+m.ID, "", 200, &onA)
	}
	bob := joinWebPeer(t, b, m.ID, "bob", b.passwords["sip:bob@example.test"], 700)

	want := []string{"Alice Liddell", "Bob Builder"}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(alice.names(), want) || !slices.Equal(bob.names(), want) {
		if time.Now().After(deadline) {
			bob.mu.Lock()
			why, ended := bob.closed, bob.endedBy
			bob.mu.Unlock()
			t.Fatalf("rosters: alice (through A) sees %v, bob (through B) sees %v; want %v on both (bob's socket: ended %q, closed %v)",
				alice.names(), bob.names(), want, ended, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pa, pb := metric(t, a, "parley_meeting_participants"), metric(t, b, "parley_meeting_participants"); pa != 2 || pb != 0 {
		t.Fatalf("parley_meeting_participants: A %v, B %v; want 2 on the host, 0 on B", pa, pb)
	}
	if fa, fb := metric(t, a, "parley_web_joins_forwarded_total"), metric(t, b, "parley_web_joins_forwarded_total"); fa != 0 || fb != 1 {
		t.Fatalf("parley_web_joins_forwarded_total: A %v, B %v; want 0, 1", fa, fb)
	}

	// Media between bob's pion and A's bridge, and through it to alice.
	hears := func(who string, p *webPeer, freq, other float64) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			pcm := p.heard()
			if audio.RMS(pcm) > 1000 && srtpphone.Power(pcm, freq) > 20*srtpphone.Power(pcm, other) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not hear the %v Hz tone (rms %.0f)", who, freq, audio.RMS(pcm))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	hears("bob, through B", bob, 440, 700)
	hears("alice, through A", alice, 700, 440)

	// The pool's ticket route takes no browser's word for an identity.
	res, err := b.httpsClient(t).Post("https://"+a.listeners["https"]+"/pool/meetings/"+m.ID+"/ticket", "application/json",
		strings.NewReader(`{"identity":{"URI":"sip:alice@example.test","Tenant":"example.test","Kind":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("a ticket asked of the pool route without a pool certificate: %s; want 403", res.Status)
	}
}

// TestWebJoinRelayedWhenTheHostDies: bob's web join through B is relayed
// to A, the host. A is killed (-9): B closes bob's socket as "going away"
// with no "ended" message, which is the web client's cue to rejoin, and
// within the host lease's TTL a new ticket through B joins the meeting
// again, now hosted by B.
func TestWebJoinRelayedWhenTheHostDies(t *testing.T) {
	_, fe, kill := startPool(t, 2)
	a, b := fe[0], fe[1]
	killA := kill[0]

	m := a.schedule(t, "alice", `{"access":"organization"}`)
	joinWebPeer(t, a, m.ID, "alice", a.passwords["sip:alice@example.test"], 440)
	bobPW := b.passwords["sip:bob@example.test"]
	bob := joinWebPeer(t, b, m.ID, "bob", bobPW, 700)
	for deadline := time.Now().Add(10 * time.Second); len(bob.names()) != 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("bob, through B, sees %v", bob.names())
		}
	}

	killA()
	killed := time.Now()
	for {
		bob.mu.Lock()
		closed, ended := bob.closed, bob.endedBy
		bob.mu.Unlock()
		if closed != nil {
			if code := websocket.CloseStatus(closed); code != websocket.StatusGoingAway || ended != "" {
				t.Fatalf("bob's socket closed with %v (%v), ended %q; want going away and no ended message", code, closed, ended)
			}
			break
		}
		if time.Since(killed) > 3*time.Second {
			t.Fatal("bob's relayed socket is open 3 s after its host was killed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The web client's rejoin: a new ticket through B, until B may host.
	c := b.httpsClient(t)
	for {
		res := digestDo(t, c, "POST", "https://"+b.listeners["https"]+"/api/meetings/"+m.ID+"/ticket", "bob", bobPW, []byte(`{}`))
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			break
		}
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Fatalf("bob's ticket through B while A's lease lapses: %s; want 503 with Retry-After", res.Status)
		}
		if time.Since(killed) > meetingLeaseTTL+5*time.Second {
			t.Fatalf("no ticket through B %v after A was killed", time.Since(killed))
		}
		time.Sleep(500 * time.Millisecond)
	}
	again := joinWebPeer(t, b, m.ID, "bob", bobPW, 700)
	for deadline := time.Now().Add(10 * time.Second); !slices.Equal(again.names(), []string{"Bob Builder"}); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("bob rejoined through B sees %v; want himself, B hosting", again.names())
		}
	}
	t.Logf("bob rejoined %v after A was killed", time.Since(killed))
}
