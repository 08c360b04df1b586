package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/pion/turn/v2"

	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/internal/testredis"
	"github.com/parleyuc/parley/pki"
)

// TestThreeFrontEnds: three front ends, each its own process, on one
// redis-server. A user the admin adds on A signs in on B at once.
// Disabled on C, within a second her SIP connection on B is closed, her
// relay allocation on A ended (its refresh is refused) and her meeting
// socket on B closed. A certificate revoked on A fails a new handshake on
// B and C within a second, and the connection it had open on C is
// closed.
func TestThreeFrontEnds(t *testing.T) {
	rds := testredis.Run(t)
	data := t.TempDir()
	pool := []string{"-store", "redis", "-redis", rds.URL}
	a, _ := startServerProcess(t, data, append(pool, "-pool", "127.0.0.1:0")...)
	b, _ := startServerProcess(t, data, append(pool, "-pool", "127.0.0.2:0", "-sip-tls", "127.0.0.2:0")...)
	c, _ := startServerProcess(t, data, append(pool, "-pool", "127.0.0.3:0", "-sip-tls", "127.0.0.3:0")...)
	b.passwords, c.passwords = a.passwords, a.passwords // printed once, by the first

	const carolPW = "correct horse battery"
	a.admin(t).must("POST", "/users", `{"uri":"sip:carol@example.test","display_name":"Carol","enabled":true,"password":"`+carolPW+`"}`,
		http.StatusCreated, nil)
	added := time.Now()
	signIn(t, b, "carol", carolPW)
	if d := time.Since(added); d > time.Second {
		t.Fatalf("carol, added on A, signed in on B after %v", d)
	}

	// Her relay allocation on A, with A's credentials.
	res := digestDo(t, a.httpsClient(t), "GET", "https://"+a.listeners["https"]+"/relay/credentials", "carol", carolPW, nil)
	var cred edge.Credential
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&cred) != nil {
		t.Fatalf("carol's relay credentials on A: %s", res.Status)
	}
	res.Body.Close()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: a.listeners["turn"], Conn: conn, Username: cred.Username,
		Password: cred.Password, Realm: "example.test", RTO: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := tc.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
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
	var issued struct {
		Serial      string
		Certificate string
		PrivateKey  string `json:"private_key"`
	}
	a.admin(t).must("POST", "/certificates", `{"uri":"sip:bob@example.test","days":30}`, http.StatusCreated, &issued)
	cert, err := tls.X509KeyPair([]byte(issued.Certificate), []byte(issued.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := pki.NewKeyPair(cert)
	if err != nil {
		t.Fatal(err)
	}
	verifier := c.verifier(t)
	open, err := certSignIn(c, kp, verifier, "bob")
	if err != nil {
		t.Fatalf("bob's certificate on C: %v", err)
	}
	defer open.Close()
	a.admin(t).must("POST", "/certificates/"+issued.Serial+"/revoke", `{"reason":"keyCompromise"}`, 200, nil)
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
