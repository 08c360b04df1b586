package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/oauth2"
)

// browserLoginTimeout bounds how long login -browser waits for the user.
const browserLoginTimeout = 5 * time.Minute

// browserLogin runs the authorization code grant for a native app (RFC
// 8252): a redirect to a loopback port this process listens on for the
// one answer, PKCE S256 (RFC 7636) so a code intercepted on the way is
// useless, and a state checked against cross-site request forgery. It
// prints the URL to open ("login-browser <url>").
func browserLogin(ctx context.Context, e *env, conf *oauth2.Config) (*oauth2.Token, error) {
	if conf.Endpoint.AuthURL == "" {
		return nil, errors.New("the provider has no authorization endpoint")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // RFC 8252 section 7.3: the IP literal, any port
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	c := *conf
	c.RedirectURL = "http://" + ln.Addr().String() + "/callback"
	verifier, state := oauth2.GenerateVerifier(), rand.Text()

	type answer struct {
		code string
		err  error
	}
	answers := make(chan answer, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/callback" || q.Get("state") != state {
			http.Error(w, "not the answer this sign-in waits for", http.StatusBadRequest)
			return
		}
		var a answer
		if msg := q.Get("error"); msg != "" {
			a.err = fmt.Errorf("the provider refused: %s %s", msg, q.Get("error_description"))
			http.Error(w, "Sign-in failed: "+msg, http.StatusForbidden)
		} else {
			a.code = q.Get("code")
			_, _ = w.Write([]byte("<!doctype html><title>Signed in</title><p>You are signed in to Parley; return to the terminal."))
		}
		select {
		case answers <- a:
		default: // answered already
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	e.out.line("login-browser", c.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	wait, cancel := context.WithTimeout(ctx, browserLoginTimeout)
	defer cancel()
	var a answer
	select {
	case a = <-answers:
	case <-wait.Done():
		return nil, fmt.Errorf("no sign-in in the browser: %w", wait.Err())
	}
	if a.err != nil {
		return nil, a.err
	}
	tok, err := c.Exchange(ctx, a.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("code exchange: %w", err)
	}
	return tok, nil
}
