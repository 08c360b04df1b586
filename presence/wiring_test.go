package presence_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/parleytest"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
)

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestPresenceFollowsSignInSignOutAndDroppedConnections: on a stack built
// from the public API only (parleytest's), with no hook wired by hand, a
// watcher sees a user sign in (REGISTER), publish, sign out (REGISTER with
// Expires: 0; what the device published goes with it), and vanish when
// the device's TLS connection drops.
func TestPresenceFollowsSignInSignOutAndDroppedConnections(t *testing.T) {
	s := parleytest.Start(t, parleytest.Config{Users: []string{"alice", "bob"}})
	ctx := waitCtx(t)
	bob := s.Client(t, "bob")
	check(t, "bob watches alice", bob.Watch(ctx, "alice"))
	check(t, "before alice signs in", bob.WaitPresence(ctx, "alice", presence.Offline))

	laptop := s.Client(t, "alice")
	check(t, "alice's laptop signs in", laptop.SignIn(ctx))
	check(t, "after alice's REGISTER", bob.WaitPresence(ctx, "alice", presence.Available))
	check(t, "alice publishes", laptop.Publish(ctx, presence.Busy, "in a call"))
	check(t, "after alice's PUBLISH", bob.WaitPresence(ctx, "alice", presence.Busy))
	check(t, "alice's laptop signs out", laptop.SignOut(ctx))
	check(t, "after alice's REGISTER with Expires: 0", bob.WaitPresence(ctx, "alice", presence.Offline))

	phone := s.Client(t, "alice")
	check(t, "alice's phone signs in", phone.SignIn(ctx))
	check(t, "after the phone's REGISTER", bob.WaitPresence(ctx, "alice", presence.Available))
	phone.HangUp()
	check(t, "after the phone's connection dropped", bob.WaitPresence(ctx, "alice", presence.Offline))
	if bs, err := s.Registrar.Lookup(ctx, s.AOR("alice")); err != nil || len(bs) != 0 {
		t.Fatalf("bindings after the connection dropped: %v (%v), want none", bs, err)
	}
}

// TestUnwrappedListenerIsReported: an application that forgets to wrap its
// SIP listener with Authenticator.Listener is told so in the log at the
// first REGISTER, instead of finding devices that dropped still signed
// in.
func TestUnwrappedListenerIsReported(t *testing.T) {
	for _, unwrapped := range []bool{false, true} {
		var logs lockedBuffer
		n := registerTwice(t, unwrapped, slog.New(slog.NewTextHandler(&logs, nil)), &logs)
		if unwrapped && n != 1 || !unwrapped && n != 0 {
			t.Errorf("unwrapped=%v: the warning logged %d times, want %d\n%s", unwrapped, n, map[bool]int{true: 1}[unwrapped], logs.String())
		}
	}
}

// registerTwice serves a Registrar on a TLS listener, wrapped with
// Authenticator.Listener or not, has alice register twice, and counts the
// log lines naming Authenticator.Listener.
func registerTwice(t *testing.T, unwrapped bool, log *slog.Logger, logs *lockedBuffer) int {
	// The stack lends its PKI and directory; this registrar is the
	// application's own, on a listener of its own.
	s := parleytest.Start(t, parleytest.Config{Users: []string{"alice"}, SkipLeakCheck: true})
	authn, err := auth.New(auth.Config{Directory: s.Directory, Realm: s.Domain, DisableMD5: true})
	check(t, "auth.New", err)
	defer authn.Close()
	registrar, err := presence.NewRegistrar(presence.RegistrarConfig{Auth: authn, Logger: log})
	check(t, "NewRegistrar", err)
	defer registrar.Close()
	ua, _ := sipgo.NewUA()
	defer ua.Close()
	srv, _ := sipgo.NewServer(ua)
	srv.OnRegister(registrar.HandleRegister)
	cert, err := s.CA.IssueServer(pki.ServerCertRequest{DNSNames: []string{parleytest.ServerName}})
	check(t, "IssueServer", err)
	kp, err := cert.KeyPair()
	check(t, "KeyPair", err)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	check(t, "listen", err)
	ln := tls.NewListener(raw, pki.ServerTLSConfig(kp, s.Verifier))
	if !unwrapped {
		ln = authn.Listener(ln)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(ln) }()
	defer func() { _ = raw.Close(); <-done }()

	alice, err := parleytest.Dial(parleytest.ClientConfig{Addr: raw.Addr().String(), ServerName: parleytest.ServerName,
		Verifier: s.Verifier, Domain: s.Domain, User: "alice", Password: s.Password("alice")})
	check(t, "Dial", err)
	defer alice.HangUp()
	ctx := waitCtx(t)
	for range 2 {
		check(t, "REGISTER", alice.SignIn(ctx))
	}
	return strings.Count(logs.String(), "Authenticator.Listener")
}

// lockedBuffer is a bytes.Buffer safe for the logger's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
