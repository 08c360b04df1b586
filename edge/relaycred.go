package edge

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

// Relay credentials over SIP: a signed-in client sends, over its TLS
// connection,
//
//	SERVICE sip:<its domain> SIP/2.0
//	Content-Type: application/vnd.parley.relay-request+json
//
//	{"ttl": 28800}
//
// (the body is optional; ttl is in seconds and capped at 8 hours) and gets
//
//	SIP/2.0 200 OK
//	Content-Type: application/vnd.parley.relay-credentials+json
//
//	{"username":"1795480000:1a2b3c4d:sip:alice@example.test","password":"...",
//	 "ttl":28800,"expires":"2026-11-24T05:00:00Z",
//	 "uris":["turn:relay.example.test:3478?transport=udp", ...]}
//
// Web clients get the same JSON from the HTTPS handler with a bearer
// token. Anonymous users get none this way (their conference key opens
// only their meeting).
const (
	RelayRequestType     = "application/vnd.parley.relay-request+json"
	RelayCredentialsType = "application/vnd.parley.relay-credentials+json"
	// MethodService is the SIP method of the request.
	MethodService sip.RequestMethod = "SERVICE"
)

// Authenticator authenticates a SIP request, answering it when it does
// not pass; *auth.Authenticator implements it.
type Authenticator interface {
	Authenticate(req *sip.Request, tx sip.ServerTransaction) *auth.Identity
}

// RelayCredentialsConfig configures RelayCredentials. Secrets, URIs and
// Auth are required.
type RelayCredentialsConfig struct {
	Secrets *Secrets
	// URIs are the relay's TURN URIs (RFC 7065) clients are given, e.g.
	// turn:relay.example.test:3478?transport=udp and
	// turns:relay.example.test:5349?transport=tcp.
	URIs []string
	// TTL is the lifetime given when a client asks for none; at most (and
	// by default) MaxCredentialLifetime.
	TTL time.Duration
	// Auth authenticates the SIP requests (HandleService); without it
	// HandleService answers 500, and only the HTTPS handler serves. That
	// handler takes the identity from the request's context, where the
	// Authenticator's HTTP middleware, or an application's own login
	// (auth.ContextWithIdentity), put it.
	Auth Authenticator
}

// Errors of RelayCredentials.For, for errors.Is.
var (
	// ErrNotSignedIn: relay credentials are for signed-in users of the
	// tenants, not for anonymous guests nor requests without an identity.
	ErrNotSignedIn = errors.New("edge: relay credentials are for signed-in users")
	// ErrSignInExpired: the sign-in that vouches for the user has expired.
	ErrSignInExpired = errors.New("edge: the sign-in has expired")
)

// RelayCredentials issues relay credentials to authenticated users, over
// the SIP signaling channel and over HTTPS.
type RelayCredentials struct {
	cfg RelayCredentialsConfig
}

// NewRelayCredentials returns the service, or an error naming the missing
// field.
func NewRelayCredentials(cfg RelayCredentialsConfig) (*RelayCredentials, error) {
	switch {
	case cfg.Secrets == nil:
		return nil, errors.New("edge: RelayCredentialsConfig.Secrets is required")
	case len(cfg.URIs) == 0:
		return nil, errors.New("edge: RelayCredentialsConfig.URIs is required")
	case slices.Contains(cfg.URIs, ""):
		return nil, errors.New("edge: RelayCredentialsConfig.URIs has an empty URI")
	case cfg.TTL < 0:
		return nil, errors.New("edge: RelayCredentialsConfig.TTL must not be negative")
	}
	if cfg.TTL == 0 || cfg.TTL > MaxCredentialLifetime {
		cfg.TTL = MaxCredentialLifetime
	}
	return &RelayCredentials{cfg: cfg}, nil
}

// relayRequest is the optional body of a request.
type relayRequest struct {
	TTL int `json:"ttl"`
}

// For returns a credential for id, for ttl (0: the default), never
// beyond the sign-in that vouches for the user. It fails with
// ErrNotSignedIn or ErrSignInExpired.
func (rc *RelayCredentials) For(id *auth.Identity, ttl time.Duration) (Credential, error) {
	if id == nil || id.Kind == auth.Anonymous {
		return Credential{}, ErrNotSignedIn
	}
	if ttl <= 0 {
		ttl = rc.cfg.TTL
	}
	if !id.Expires.IsZero() {
		// Not beyond the sign-in that vouches for the user.
		left := time.Until(id.Expires)
		if left < time.Second {
			return Credential{}, ErrSignInExpired
		}
		ttl = min(ttl, left)
	}
	c := rc.cfg.Secrets.Issue(id.URI, ttl)
	c.URIs = append([]string(nil), rc.cfg.URIs...)
	return c, nil
}

// HandleService serves relay credentials over SIP (SERVICE).
func (rc *RelayCredentials) HandleService(req *sip.Request, tx sip.ServerTransaction) {
	if rc.cfg.Auth == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 500, "Relay Credentials Over SIP Not Configured", nil))
		return
	}
	id := rc.cfg.Auth.Authenticate(req, tx)
	if id == nil {
		return
	}
	reply := func(code int, reason string) { _ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil)) }
	if t := strings.ToUpper(req.Transport()); t != "TLS" && t != "WSS" {
		reply(403, "Relay credentials travel over TLS only")
		return
	}
	var r relayRequest
	if body := req.Body(); len(body) > 0 {
		if ct := req.ContentType(); ct == nil || !strings.EqualFold(strings.TrimSpace(strings.SplitN(ct.Value(), ";", 2)[0]), RelayRequestType) {
			reply(415, "Unsupported Media Type")
			return
		}
		if len(body) > 1024 || json.Unmarshal(body, &r) != nil || r.TTL < 0 {
			reply(400, "Bad relay request")
			return
		}
	}
	c, err := rc.For(id, time.Duration(r.TTL)*time.Second)
	switch {
	case errors.Is(err, ErrSignInExpired):
		reply(403, "The sign-in has expired")
		return
	case err != nil:
		reply(403, "Relay credentials are for signed-in users")
		return
	}
	body, _ := json.Marshal(c)
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Content-Type", RelayCredentialsType))
	res.SetBody(body)
	_ = tx.Respond(res)
}

// ServeHTTP serves relay credentials over HTTPS (GET, or POST with a
// relay request) to requests authn's HTTP middleware let through, e.g.
// mux.Handle("/relay/credentials", authn.HTTP(rc)).
func (rc *RelayCredentials) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := auth.IdentityFromContext(r.Context())
	if !ok {
		http.Error(w, "not signed in", http.StatusUnauthorized)
		return
	}
	if r.TLS == nil {
		http.Error(w, "relay credentials travel over TLS only", http.StatusForbidden)
		return
	}
	var req relayRequest
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1024))
		if len(body) > 0 && (err != nil || json.Unmarshal(body, &req) != nil || req.TTL < 0) {
			http.Error(w, "bad relay request", http.StatusBadRequest)
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	c, err := rc.For(id, time.Duration(req.TTL)*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(c)
}
