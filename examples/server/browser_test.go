package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBrowserMeeting is the web client end to end, in Debian's headless
// Chromium driven by playwright-core (e2e/meeting.mjs): alice, the
// organizer, and an anonymous guest open the meeting's link; the guest
// waits in the lobby hearing the music, alice admits her, and each decodes
// the other's video through the media bridge. The meeting view's
// screenshots are kept in $PARLEY_ARTIFACTS (default: artifacts/ at the
// repository's root) for CI to publish.
func TestBrowserMeeting(t *testing.T) {
	browserTools(t)
	s := startServer(t, t.TempDir())
	b := browserMeetingOn(t, s, `{"subject":"Browser demo","access":"organization"}`)
	b.runScript(t, 3*time.Minute, nil, nil, "meeting.mjs")
	for _, f := range []string{"lobby.png", "meeting.png"} {
		if st, err := os.Stat(filepath.Join(artifactsDir(), f)); err != nil || st.Size() < 10_000 {
			t.Fatalf("screenshot %s: %v", f, err)
		}
	}
}
