package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
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

	s = startServer(t, data, "-store", "memory")
	if got := list(s, password); strings.Contains(got, id) {
		t.Fatalf("with -store memory a restart keeps meetings: %s", got)
	}
}
