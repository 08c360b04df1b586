package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestThreeFrontEnds: three front ends, each its own process, on one
// redis-server. A user the admin adds on A signs in on B at once.
// Disabled on C, within a second her SIP connection on B is closed, her
// relay allocation on A ended (its refresh is refused) and her meeting
// socket on B closed. A certificate revoked on A fails a new handshake on
// B and C within a second, and the connection it had open on C is
// closed.
func TestThreeFrontEnds(t *testing.T) {
	_, fe, _ := startPool(t, 3)
	a, b, c := fe[0], fe[1], fe[2]

	const carolPW = "correct horse battery"
	a.admin(t).must("POST", "/users", `{"uri":"sip:carol@example.test","display_name":"Carol","enabled":true,"password":"`+carolPW+`"}`,
		http.StatusCreated, nil)
	added := time.Now()
	signIn(t, b, "carol", carolPW)
	if d := time.Since(added); d > time.Second {
		t.Fatalf("carol, added on A, signed in on B after %v", d)
	}

	// Her relay allocation on A, with A's credentials.
	tc, _, err := turnAllocate(t, a, relayCredentials(t, a, "carol", carolPW))
	if err != nil {
		t.Fatal(err)
	}
	// Her meeting socket on B, in alice's meeting.
	code, body := apiCall(t, a, "alice", a.passwords["sip:alice@example.test"], "POST", "/api/meetings", `{"subject":"Three","access":"organization"}`)
	var m struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &m) != nil {
		t.Fatalf("schedule: %d %s", code, body)
	}
	socket := meetingSocket(t, b, "carol", carolPW, m.ID)

	c.admin(t).must("PATCH", "/users/sip:carol@example.test", `{"enabled":false}`, http.StatusOK, nil)
	disabled := time.Now()
	within := func(what string, done func() bool) {
		t.Helper()
		for !done() {
			if time.Since(disabled) > time.Second {
				t.Fatalf("%s: not within a second of carol being disabled on C", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	within("her SIP connection on B closed", func() bool {
		var sessions []sessionJSON
		b.admin(t).must("GET", "/sessions", "", 200, &sessions)
		return len(sessions) == 0
	})
	within("her relay allocation on A ended", func() bool { return metric(t, a, "parley_relay_allocations") == 0 })
	ctx, cancel := context.WithDeadline(context.Background(), disabled.Add(time.Second))
	defer cancel()
	for {
		if _, _, err := socket.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("her meeting socket on B: not closed within a second of carol being disabled on C")
			}
			break
		}
	}
	// The TURN client's refresh of the ended allocation is refused.
	if err := tc.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); err == nil {
		t.Fatal("a permission on carol's ended allocation was granted")
	}

	// A certificate revoked on A.
	kp, serial := issueCertificate(t, a, "sip:bob@example.test")
	verifier := c.verifier(t)
	open, err := certSignIn(c, kp, verifier, "bob")
	if err != nil {
		t.Fatalf("bob's certificate on C: %v", err)
	}
	defer open.Close()
	a.admin(t).must("POST", "/certificates/"+serial+"/revoke", `{"reason":"keyCompromise"}`, 200, nil)
	revoked := time.Now()
	_ = open.SetReadDeadline(revoked.Add(time.Second))
	if _, err := open.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection bob's revoked certificate opened on C is open a second later: %v", err)
	}
	for _, s := range []*server{b, c} {
		for {
			conn, err := certSignIn(s, kp, verifier, "bob")
			if err != nil {
				break
			}
			conn.Close()
			if time.Since(revoked) > time.Second {
				t.Fatalf("%s still takes the revoked certificate a second after A revoked it", s.listeners["sip-tls"])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
