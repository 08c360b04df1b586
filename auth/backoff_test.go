package auth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Wrong conference keys make their source wait for that meeting, and
// only their source: the right key from elsewhere is served at once.
func TestWrongConferenceKeysBackOffPerMeetingAndSource(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	s := startSIPServer(t, Config{Conferences: meetings{meetingA: keyA, meetingB: keyB}, Now: clk.now})
	guest := `"Guest" <sip:guest@anonymous.invalid>`
	join := func(from, meeting, key string) (int, string) {
		focus := "sip:" + meeting + "@example.test"
		c := s.dial(t, from, nil)
		res := c.do("INVITE", focus, guest)
		res = c.do("INVITE", focus, guest, digestFor(t, res, algSHA256, "INVITE", focus, AnonymousPrefix+meeting, key, 1))
		retry := ""
		if h := res.GetHeader("Retry-After"); h != nil {
			retry = h.Value()
		}
		return res.StatusCode, retry
	}
	const attacker, guestB = "127.0.0.2", "127.0.0.3"
	for i := range DefaultBackoffFree + 3 {
		if code, _ := join(attacker, meetingA, "guess-"+strconv.Itoa(i)); code != 401 && code != 503 {
			t.Fatalf("wrong key %d: %d, want 401 or 503", i, code)
		}
	}
	// The attacker now waits, even with the right key (a right guess
	// during the wait must tell nothing).
	code, retry := join(attacker, meetingA, keyA)
	if code != 503 || retry == "" {
		t.Fatalf("right key from the guessing source: %d Retry-After %q, want 503 with Retry-After", code, retry)
	}
	if n, _ := strconv.Atoi(retry); n < 1 || n > int(DefaultBackoffMax/time.Second) {
		t.Fatalf("Retry-After %q", retry)
	}
	// Another source is not slowed, nor is the attacker's own other meeting.
	if code, _ := join(guestB, meetingA, keyA); code != 200 {
		t.Fatalf("right key from another source: %d, want 200", code)
	}
	if code, _ := join(attacker, meetingB, keyB); code != 200 {
		t.Fatalf("right key for another meeting from the guessing source: %d, want 200", code)
	}
	// Once the wait has passed, the right key is served.
	clk.set(clk.now().Add(DefaultBackoffMax))
	if code, _ := join(attacker, meetingA, keyA); code != 200 {
		t.Fatalf("right key once the wait has passed: %d, want 200", code)
	}
}

func TestBackoffDoublesAndIsBounded(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	b, err := NewBackoff(BackoffConfig{Free: 2, Base: time.Second, Max: 10 * time.Second, MaxKeys: 3, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	var got []time.Duration
	for range 7 {
		got = append(got, b.Fail("k"))
	}
	want := []time.Duration{0, 0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	if b.Wait("other") != 0 {
		t.Fatal("another key must not wait")
	}
	for i := range 10 {
		b.Fail(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}).String())
	}
	if b.Len() != 3 {
		t.Fatalf("Len %d, want at most MaxKeys 3", b.Len())
	}
	b.Succeed("10.0.0.9")
	if b.Wait("10.0.0.9") != 0 {
		t.Fatal("a success clears its key")
	}
	for _, bad := range []BackoffConfig{{Free: -1}, {Base: -1}, {Base: time.Minute, Max: time.Second}, {MaxKeys: -1}} {
		if _, err := NewBackoff(bad); err == nil {
			t.Fatalf("%+v accepted", bad)
		}
	}
}

// Over HTTP (HTTPForMeeting), a source guessing a meeting's key waits
// with 429 and Retry-After, like the throttle answers.
func TestWrongConferenceKeysBackOffOverHTTP(t *testing.T) {
	a, err := New(Config{Directory: testDirectory(t), Realm: "example.test", Conferences: meetings{meetingA: keyA}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := httptest.NewServer(a.HTTPForMeeting(func(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, "/") },
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	defer srv.Close()
	try := func(key string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+"/"+meetingA, nil)
		req.Header.Set("Authorization", strings.TrimPrefix(digestCredentials("example.test", a.nonces.mint(), algSHA256,
			"POST", "/"+meetingA, AnonymousPrefix+meetingA, key, 1), "Authorization: "))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	for i := range DefaultBackoffFree + 1 {
		try("guess-" + strconv.Itoa(i))
	}
	if res := try(keyA); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("right key while backing off: %d Retry-After %q, want 429 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

func ExampleBackoff() {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	b, _ := NewBackoff(BackoffConfig{Free: 2, Now: func() time.Time { return now }})
	key := "m-1234\x00" + SourceKey(netip.MustParseAddr("203.0.113.7"))
	for range 5 {
		fmt.Println(b.Fail(key))
	}
	fmt.Println(b.Wait("m-1234\x00" + SourceKey(netip.MustParseAddr("198.51.100.1"))))
	// Output:
	// 0s
	// 0s
	// 1s
	// 2s
	// 4s
	// 0s
}
