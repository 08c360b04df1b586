package auth

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
)

type identityKey struct{}

// IdentityFromContext returns the identity stored in a request's context
// by the HTTP middleware ([Authenticator.HTTP]) or by
// [ContextWithIdentity]; ok is false when there is none.
func IdentityFromContext(ctx context.Context) (id *Identity, ok bool) {
	id, ok = ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}

// ContextWithIdentity returns a copy of ctx carrying id, as
// [Authenticator.HTTP] does after it has authenticated a request. An
// application with its own login puts the identity it established there
// and serves Parley's HTTP handlers (relay credentials, meeting tickets)
// behind its own middleware, with no Authenticator:
//
//	func (app *App) login(next http.Handler) http.Handler {
//		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//			user, ok := app.session(r) // the app's own sign-in
//			if !ok {
//				http.Error(w, "sign in first", http.StatusUnauthorized)
//				return
//			}
//			id := &auth.Identity{URI: user.SIPURI, Tenant: user.Domain, Kind: auth.Remote}
//			next.ServeHTTP(w, r.WithContext(auth.ContextWithIdentity(r.Context(), id)))
//		})
//	}
//
// The handlers trust what is stored: only the application's middleware
// may set it. id is copied, so later changes to it are not seen; a nil id
// leaves ctx as it is.
func ContextWithIdentity(ctx context.Context, id *Identity) context.Context {
	if id == nil {
		return ctx
	}
	return context.WithValue(ctx, identityKey{}, id.clone())
}

// HTTP is middleware applying the same checks to HTTP requests: throttling
// (429 with Retry-After), bearer tokens and Digest in Authorization, or a
// client certificate verified by the TLS handshake (serve with
// pki.ServerTLSConfig: a certificate is taken as proof of identity);
// otherwise 401 with the challenges. HTTP has no security association:
// every request carries its credentials. The identity is in the request's
// context ([IdentityFromContext]). Anonymous identities are refused here:
// their conference key opens a meeting's SIP signaling only.
//
// Throttling and the internal/remote decision use the connection's
// address: behind a reverse proxy every client would share the proxy's.
func (a *Authenticator) HTTP(next http.Handler) http.Handler {
	return a.httpFor(nil, next)
}

// HTTPForMeeting is [Authenticator.HTTP] that also takes a meeting's
// guests (Digest with "meeting:<id>" and the conference key, as over
// SIP), for requests about that meeting only: meeting returns the ID of
// the meeting a request is about (a path value, say), and a guest whose
// key opens another meeting is refused with 403. It is the browser's way
// into a meeting's signaling.
func (a *Authenticator) HTTPForMeeting(meeting func(*http.Request) string, next http.Handler) http.Handler {
	return a.httpFor(meeting, next)
}

func (a *Authenticator) httpFor(meeting func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		target := r.URL.RequestURI()
		at := &attempt{method: r.Method, uri: target, host: host, credentials: r.Header.Get("Authorization"),
			uriMatches: func(u string) bool { return u == target }}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			at.source = ap.Addr()
		}
		if r.TLS != nil {
			at.peerCerts = r.TLS.PeerCertificates
		}
		if meeting != nil {
			at.ruriUser = meeting(r)
		}
		v := a.decide(r.Context(), at)
		if v.id == nil {
			switch v.status {
			case 401, 407:
				for _, c := range a.challenges(v, r.UserAgent()) {
					w.Header().Add("WWW-Authenticate", c)
				}
				v.status = http.StatusUnauthorized
			case 403:
				if v.bearer != nil && v.bearerErr != "" {
					w.Header().Set("WWW-Authenticate", v.bearer.challenge(v.realm, v.bearerErr))
				}
			case 503:
				w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(v.retryAfter)))
				if !v.storeDown {
					v.status = http.StatusTooManyRequests // the throttle
				}
			}
			msg := v.reason
			if msg == "" {
				msg = http.StatusText(v.status)
			}
			http.Error(w, msg, v.status)
			return
		}
		next.ServeHTTP(w, r.WithContext(ContextWithIdentity(r.Context(), v.id)))
	})
}
