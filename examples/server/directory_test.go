package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/internal/siptest"
	"github.com/parleyuc/parley/internal/testredis"
	"github.com/parleyuc/parley/pki"
)

// TestAdminDirectoryNotSaved: with -store memory the directory is its
// JSON file; a change that cannot be written there is refused (500) and
// undone, and once the file can be written again changes are kept.
func TestAdminDirectoryNotSaved(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data, "-store", "memory")
	a := s.admin(t)
	dirFile := filepath.Join(data, directoryFile)
	saved, err := os.ReadFile(dirFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dirFile); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dirFile, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	a.must("PATCH", "/users/sip:bob@example.test", `{"enabled":false}`, http.StatusInternalServerError, nil)
	a.must("DELETE", "/users/sip:alice@example.test", "", http.StatusInternalServerError, nil)
	a.must("POST", "/users", `{"uri":"sip:carol@example.test","enabled":true}`, http.StatusInternalServerError, nil)
	var bob, alice adminUser
	a.must("GET", "/users/sip:bob@example.test", "", 200, &bob)
	a.must("GET", "/users/sip:alice@example.test", "", 200, &alice)
	a.must("GET", "/users/sip:carol@example.test", "", http.StatusNotFound, nil)
	if !bob.Enabled || !alice.Enabled {
		t.Fatalf("a change that was not saved stayed: bob %+v alice %+v", bob, alice)
	}
	if err := os.RemoveAll(dirFile); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dirFile, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	a.must("PATCH", "/users/sip:bob@example.test", `{"display_name":"Robert"}`, http.StatusOK, nil)
	if kept, _ := os.ReadFile(dirFile); !containsAll(string(kept), "Robert") {
		t.Fatal("a change once the file could be written was not saved in it")
	}
}

// meetingSocket opens user's web client socket into meeting on s, as a
// browser does (a ticket, then the socket), and returns it once the
// user is in the meeting.
func meetingSocket(t *testing.T, s *server, user, password, meeting string) *websocket.Conn {
	t.Helper()
	c := s.httpsClient(t)
	res := digestDo(t, c, "POST", "https://"+s.listeners["https"]+"/api/meetings/"+meeting+"/ticket", user, password, []byte(`{}`))
	var tk struct{ Ticket string }
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&tk) != nil {
		t.Fatalf("ticket: %s", res.Status)
	}
	res.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+s.listeners["https"]+"/api/signaling/socket?ticket="+tk.Ticket, &websocket.DialOptions{HTTPClient: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("%s's meeting socket: %v", user, err)
		}
		var msg struct{ Type, State string }
		if json.Unmarshal(data, &msg) == nil && msg.Type == "state" && msg.State == "joined" {
			return ws
		}
	}
}

// metric is the value of an unlabeled metric of s.
func metric(t *testing.T, s *server, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + s.listeners["http"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestPoolSharesTheDirectory: two front ends on one Redis share the
// directory. A user the admin adds on A signs in on B at once; disabled
// on A, within a second her connection on B is closed, her relay
// allocation on B ended and her meeting socket on B closed; her relay
// credentials fail and she cannot sign in again on either.
func TestPoolSharesTheDirectory(t *testing.T) {
	rds := testredis.Run(t)
	data := t.TempDir()
	pool := []string{"-store", "redis", "-redis", rds.URL}
	a := startServer(t, data, append(pool, "-pool", "127.0.0.1:0")...)
	b := startServer(t, data, append(pool, "-pool", "127.0.0.2:0", "-sip-tls", "127.0.0.2:0")...)
	admin := a.admin(t)
	admin.must("POST", "/users", `{"uri":"sip:carol@example.test","display_name":"Carol","enabled":true,"password":"correct horse battery"}`, http.StatusCreated, nil)

	signIn(t, b, "carol", "correct horse battery") // at once, on the other front end
	var sessions []sessionJSON
	b.admin(t).must("GET", "/sessions", "", 200, &sessions)
	if len(sessions) != 1 || sessions[0].URI != "sip:carol@example.test" {
		t.Fatalf("B's sessions: %+v", sessions)
	}
	// A relay allocation on B, with credentials from B.
	cred := relayCredentials(t, b, "carol", "correct horse battery")
	allocate := func() error {
		_, _, err := turnAllocate(t, b, cred)
		return err
	}
	if err := allocate(); err != nil {
		t.Fatal(err)
	}
	// A meeting socket on B: carol in alice's meeting from a browser.
	code, body := apiCall(t, a, "alice", a.passwords["sip:alice@example.test"], "POST", "/api/meetings", `{"subject":"Withdrawn","access":"organization"}`)
	var m struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &m) != nil {
		t.Fatalf("schedule: %d %s", code, body)
	}
	socket := meetingSocket(t, b, "carol", "correct horse battery", m.ID)

	start := time.Now()
	admin.must("PATCH", "/users/sip:carol@example.test", `{"enabled":false}`, http.StatusOK, nil)
	for {
		b.admin(t).must("GET", "/sessions", "", 200, &sessions)
		if len(sessions) == 0 {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("carol's connection on B still open a second after A disabled her: %+v", sessions)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("carol's connection on B closed %v after A disabled her", time.Since(start).Round(time.Millisecond))
	for metric(t, b, "parley_relay_allocations") != 0 {
		if time.Since(start) > time.Second {
			t.Fatal("carol's relay allocation on B still there a second after A disabled her")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Until(start.Add(time.Second)))
	defer cancel()
	for {
		if _, _, err := socket.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("carol's meeting socket on B still open a second after A disabled her")
			}
			break
		}
	}
	if err := allocate(); err == nil {
		t.Fatal("carol's relay credentials still allocate after she was disabled")
	}
	for _, s := range []*server{a, b} {
		again := s.sipUser(t, "carol", "correct horse battery", "localhost")
		if res, err := again.do(again.request(sip.OPTIONS, "sip:"+s.listeners["sip-tls"])); err != nil || res.StatusCode != 403 {
			t.Fatalf("disabled carol signs in again: %v %v", res, err)
		}
	}
}

// TestPoolRevocation: a certificate revoked on front end A is refused by
// B's next handshake within a second, not at B's next CRL refresh, and
// the connections it had open on B (SIP, and TURN over TLS with its
// allocation) are closed.
func TestPoolRevocation(t *testing.T) {
	rds := testredis.Run(t)
	data := t.TempDir()
	pool := []string{"-store", "redis", "-redis", rds.URL}
	a := startServer(t, data, append(pool, "-pool", "127.0.0.1:0")...)
	b := startServer(t, data, append(pool, "-pool", "127.0.0.2:0", "-sip-tls", "127.0.0.2:0")...)
	kp, serial := issueCertificate(t, a, "sip:bob@example.test")
	verifier := b.verifier(t)
	open, err := certSignIn(b, kp, verifier, "bob")
	if err != nil {
		t.Fatalf("bob's certificate on B before the revocation: %v", err)
	}
	defer open.Close()
	bobPW := a.passwords["sip:bob@example.test"] // printed once, by A
	turns, err := turnsAllocate(t, b, kp, verifier, relayCredentials(t, b, "bob", bobPW))
	if err != nil {
		t.Fatalf("bob allocates on B's relay over TLS with his certificate: %v", err)
	}
	answer := make([]byte, 2048)

	start := time.Now()
	a.admin(t).must("POST", "/certificates/"+serial+"/revoke", `{"reason":"keyCompromise"}`, 200, nil)
	for what, conn := range map[string]*tls.Conn{"SIP": open, "TURN over TLS": turns} {
		_ = conn.SetReadDeadline(start.Add(time.Second))
		for {
			// TURN's connection may still carry an answer or a refresh.
			if _, err = conn.Read(answer); err != nil {
				break
			}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the %s connection bob's certificate opened on B is still open a second after the revocation", what)
		}
	}
	for {
		conn, err := certSignIn(b, kp, verifier, "bob")
		if err != nil {
			break
		}
		conn.Close()
		if time.Since(start) > time.Second {
			t.Fatal("B still takes the revoked certificate a second after A revoked it")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("B refused the revoked certificate %v after A revoked it", time.Since(start).Round(time.Millisecond))
}

// certSignIn opens a connection to s's SIP TLS listener with kp's client
// certificate and sends user's OPTIONS on it, which the certificate
// authenticates (s then tracks the connection as the user's); with TLS
// 1.3 a refused certificate shows on this first exchange.
func certSignIn(s *server, kp *pki.KeyPair, verifier *pki.Verifier, user string) (*tls.Conn, error) {
	conn, err := tls.Dial("tcp", s.listeners["sip-tls"], pki.ClientTLSConfig(kp, verifier, "localhost"))
	if err != nil {
		return nil, err
	}
	n := certCalls.Add(1)
	req := fmt.Sprintf("OPTIONS sip:%[1]s SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-cs-%[2]d\r\nMax-Forwards: 70\r\n"+
		"To: <sip:%[1]s>\r\nFrom: <sip:%[3]s@example.test>;tag=%[2]d\r\nCall-ID: cs-%[2]d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		s.listeners["sip-tls"], n, user)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		conn.Close()
		return nil, err
	}
	res, err := siptest.ReadMessage(bufio.NewReader(conn))
	if err != nil {
		conn.Close()
		return nil, err
	}
	if !strings.HasPrefix(string(res), "SIP/2.0 200") {
		conn.Close()
		return nil, fmt.Errorf("OPTIONS: %q", res)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

var certCalls atomic.Int64
