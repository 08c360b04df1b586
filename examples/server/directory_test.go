package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/internal/testredis"
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
// on A, her connection on B is closed within a second and she cannot
// sign in again on either.
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
	for _, s := range []*server{a, b} {
		again := s.sipUser(t, "carol", "correct horse battery", "localhost")
		if res, err := again.do(again.request(sip.OPTIONS, "sip:"+s.listeners["sip-tls"])); err != nil || res.StatusCode != 403 {
			t.Fatalf("disabled carol signs in again: %v %v", res, err)
		}
	}
}
