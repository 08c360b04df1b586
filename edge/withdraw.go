package edge

import (
	"strconv"
	"strings"
	"time"
)

// What a user whose rights are withdrawn loses on the relay: their
// allocations, and those made with a credential that has expired.

// CloseUser ends every allocation, over UDP, TCP or TLS, made with a
// credential of user (the user part of its user name: for credentials
// from RelayCredentials, the user's address of record), and returns how
// many it ended: a user whose rights are withdrawn keeps no relayed
// media. Secrets.Revoke makes their outstanding credentials fail too.
func (r *EdgeRelay) CloseUser(user string) int {
	r.mu.Lock()
	var udp []*relayConn
	for rc := range r.all {
		if userOf(rc.a.user) == user {
			udp = append(udp, rc)
		}
	}
	r.mu.Unlock()
	for _, rc := range udp {
		_ = rc.Close()
	}
	return len(udp) + r.tcp.closeUser(user)
}

// credentialLeft is how long the credential username is still valid:
// an allocation made with it ends then, whatever refreshes it had (a
// refresh after the expiry is refused already). Known for the
// credentials of Secrets only; an AuthHandler's are the application's.
func (r *EdgeRelay) credentialLeft(username string) (time.Duration, bool) {
	if r.cfg.AuthHandler != nil {
		return 0, false
	}
	exp, _, ok := strings.Cut(username, ":")
	unix, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil {
		return 0, false
	}
	return time.Until(time.Unix(unix, 0)), true
}

// closeUser deletes the TCP allocations made with user's credentials
// and returns how many.
func (t *tcpRelays) closeUser(user string) int {
	t.mu.Lock()
	var mine []*tcpAllocation
	for _, a := range t.allocs {
		if userOf(a.claim.user) == user {
			mine = append(mine, a)
		}
	}
	t.mu.Unlock()
	for _, a := range mine {
		a.close()
	}
	return len(mine)
}
