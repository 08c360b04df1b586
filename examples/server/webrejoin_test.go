//go:build opus

package main

import (
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"
)

// TestWebClientRejoinsWhenTheHostDies: two front ends, each its own
// process, on one redis-server; bob (pion) joins a meeting through A,
// which hosts it, and alice's page (Chromium) joins it through B, which
// relays her signaling to A. A is killed (-9): the page says
// "Reconnecting…" and, once A's lease has lapsed, is back in the meeting
// by itself, hosted by B, with its media connected (e2e/client.mjs
// rejoin-host-dies).
func TestWebClientRejoinsWhenTheHostDies(t *testing.T) {
	browserTools(t)
	_, fe, kill := startPool(t, 2)
	a, b := fe[0], fe[1]
	killA := kill[0]

	m := a.schedule(t, "alice", `{"subject":"Rejoin","access":"organization"}`)
	joinWebPeer(t, a, m.ID, "bob", a.passwords["sip:bob@example.test"], 700)
	url := "https://" + b.listeners["https"] + "/meet/" + m.ID
	page, err := b.httpsClient(t).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	spki := sha256.Sum256(page.TLS.PeerCertificates[0].RawSubjectPublicKeyInfo)
	bm := &browserMeeting{s: b, m: m, url: url, spki: base64.StdEncoding.EncodeToString(spki[:])}
	var killed time.Time
	bm.run(t, "rejoin-host-dies", map[string]func(){"kill the host": func() {
		killA()
		killed = time.Now()
	}})
	t.Logf("the page rejoined within %v of A being killed", time.Since(killed).Round(time.Second))
}
