package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// apiCall sends an HTTPS API request as user (Digest) and returns the
// status and body.
func apiCall(t *testing.T, s *server, user, password, method, path, body string) (int, string) {
	t.Helper()
	var raw []byte
	if body != "" {
		raw = []byte(body)
	}
	res := digestDo(t, s.httpsClient(t), method, "https://"+s.listeners["https"]+path, user, password, raw)
	defer res.Body.Close()
	got, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(got)
}

// TestContactsAPI: a signed-in user keeps contacts with levels and the
// privacy mode over HTTPS; bad input gets 400 naming the field and
// changes nothing; without credentials nothing is shown.
func TestContactsAPI(t *testing.T) {
	s := startServer(t, t.TempDir(), "-store", "memory")
	pw := s.passwords["sip:alice@example.test"]
	call := func(method, path, body string) (int, string) {
		t.Helper()
		return apiCall(t, s, "alice", pw, method, path, body)
	}
	for _, tc := range []struct{ method, path, body, want string }{
		{"PUT", "/api/me/contacts/sip:bob@example.test", `{"level":"boss"}`, "level"},
		{"PUT", "/api/me/contacts/sip:bob@example.test", `{"levle":"personal"}`, "body"},
		{"PUT", "/api/me/contacts/not a uri", `{"level":"personal"}`, "contact"},
		{"PUT", "/api/me/privacy", `{}`, "privacy_mode"},
	} {
		if code, body := call(tc.method, tc.path, tc.body); code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %s; want 400 naming %s", tc.method, tc.path, tc.body, code, body, tc.want)
		}
	}
	if code, body := call("GET", "/api/me/contacts", ""); code != 200 || body != `{"privacy_mode":false,"contacts":[]}`+"\n" {
		t.Fatalf("after refused changes: %d %s", code, body)
	}
	for _, c := range [][3]string{{"PUT", "/api/me/contacts/sip:bob@example.test", `{"level":"personal"}`},
		{"PUT", "/api/me/contacts/sip:spam@partner.test", `{"level":"blocked"}`}, {"PUT", "/api/me/privacy", `{"privacy_mode":true}`}} {
		if code, body := call(c[0], c[1], c[2]); code != 200 {
			t.Fatalf("%s %s: %d %s", c[0], c[1], code, body)
		}
	}
	want := `{"privacy_mode":true,"contacts":[{"uri":"sip:bob@example.test","level":"personal"},{"uri":"sip:spam@partner.test","level":"blocked"}]}` + "\n"
	if code, body := call("GET", "/api/me/contacts", ""); code != 200 || body != want {
		t.Fatalf("contacts: %d %s\nwant %s", code, body, want)
	}
	if code, _ := call("DELETE", "/api/me/contacts/sip:spam@partner.test", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	if _, body := call("GET", "/api/me/contacts", ""); strings.Contains(body, "spam") {
		t.Fatalf("a removed contact is listed: %s", body)
	}
	res, err := s.httpsClient(t).Get("https://" + s.listeners["https"] + "/api/me/contacts")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without credentials: %d", res.StatusCode)
	}
}
