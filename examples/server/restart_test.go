package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleyuc/parley/internal/testredis"
)

// TestMeetingsSurviveARestart: a meeting alice schedules is in the
// store (bbolt, the default) and there again, with its policy, after the
// server restarts on the same data directory; with -store memory it is
// not.
func TestMeetingsSurviveARestart(t *testing.T) {
	data := t.TempDir()
	schedule := func(s *server) string {
		t.Helper()
		res := digestDo(t, s.httpsClient(t), "POST", "https://"+s.listeners["https"]+"/api/meetings", "alice",
			s.passwords["sip:alice@example.test"], []byte(`{"subject":"Kept","access":"anyone"}`))
		defer res.Body.Close()
		var m struct{ ID string }
		if res.StatusCode != http.StatusCreated || json.NewDecoder(res.Body).Decode(&m) != nil {
			t.Fatalf("schedule: %s", res.Status)
		}
		return m.ID
	}
	list := func(s *server, password string) string {
		t.Helper()
		res := digestDo(t, s.httpsClient(t), "GET", "https://"+s.listeners["https"]+"/api/meetings", "alice", password, nil)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("list: %s %s", res.Status, b)
		}
		return string(b)
	}

	s := startServer(t, data)
	password := s.passwords["sip:alice@example.test"]
	id := schedule(s)
	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, data) // the passwords were printed once, on the first run
	if got := list(s, password); !strings.Contains(got, id) || !strings.Contains(got, `"access":"anyone"`) {
		t.Fatalf("after a restart alice's meetings are %s, want %s with its policy", got, id)
	}
	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}

	s = startServer(t, data, "-store", "memory") // a directory of its own: the demo tenant again
	if got := list(s, s.passwords["sip:alice@example.test"]); strings.Contains(got, id) {
		t.Fatalf("with -store memory a restart keeps meetings: %s", got)
	}
}

// TestRedisStoreKeepsMeetings: with -store redis the server keeps
// meetings in Redis (registrations and policies too), not in the data
// directory, and a front end started again finds them there; a Redis that
// does not answer stops the start with the address named.
func TestRedisStoreKeepsMeetings(t *testing.T) {
	srv := testredis.Run(t)
	data := t.TempDir()
	s := startServer(t, data, "-store", "redis", "-redis", srv.URL)
	password := s.passwords["sip:alice@example.test"]
	res := digestDo(t, s.httpsClient(t), "POST", "https://"+s.listeners["https"]+"/api/meetings", "alice", password,
		[]byte(`{"subject":"Pooled","access":"anyone"}`))
	var m struct{ ID string }
	if res.StatusCode != http.StatusCreated || json.NewDecoder(res.Body).Decode(&m) != nil {
		t.Fatalf("schedule: %s", res.Status)
	}
	res.Body.Close()
	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}
	// Nothing of it is in the data directory: a front end started again
	// finds the meeting in Redis.
	if _, err := os.Stat(filepath.Join(data, "parley.db")); err == nil {
		t.Fatal("-store redis wrote parley.db")
	}
	s = startServer(t, data, "-store", "redis", "-redis", srv.URL)
	res = digestDo(t, s.httpsClient(t), "GET", "https://"+s.listeners["https"]+"/api/meetings", "alice", password, nil)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), m.ID) {
		t.Fatalf("after a restart on Redis, alice's meetings: %s", body)
	}

	dead := "redis://" + freeAddr(t)
	err := run(context.Background(), append(allOnPortZero(t.TempDir()), "-store", "redis", "-redis", dead), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-redis "+dead) {
		t.Fatalf("a Redis that does not answer: %v", err)
	}
}
