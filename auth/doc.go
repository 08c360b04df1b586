// Package auth decides who a request comes from and whether it may be
// served.
//
// A [Directory] holds tenants (one SIP domain each) and their users. An
// [Authenticator] checks SIP requests (and, through [Authenticator.HTTP],
// HTTP requests) and turns valid credentials into an [Identity]:
//
//   - OAuth 2.0 bearer tokens (Modern Authentication, RFC 8898 for SIP)
//     from any OpenID Connect provider, validated with go-oidc: issuer,
//     audience, expiry with a bounded clock skew, signature against the
//     provider's JWKS, which is refreshed so rotated-out keys stop working;
//     A provider names the tenants it signs in (OIDCProvider.Domains),
//     the claim that names the user, the scopes a token needs, and the
//     claims granting the meeting license and tenant admin, carried on the
//     Identity. A connection signed in with a token stays signed in while
//     the token is valid; a request with a newer token renews it, and
//     at expiry the connection is closed (the registrar then signs the
//     device out). With CheckUserInfo the provider is asked about new
//     tokens and, periodically, about signed-in connections' tokens, so a
//     user it disabled is signed out. Refused tokens get RFC 6750 errors
//     (invalid_token, insufficient_scope) in the Bearer challenge;
//     [Authenticator.VerifyBearer] checks a token for an application's
//     own API;
//   - Digest (RFC 7616, SHA-256 and, outside FIPS mode, MD5 for old
//     clients) against a directory password (the "Org ID" fallback), with
//     stateless HMAC-signed nonces that expire (stale=true) and a
//     nonce-count that must grow, so replayed credentials are refused;
//   - Digest for anonymous users whose password is a meeting's conference
//     key: the identity is anonymous and scoped to that one meeting;
//   - client certificates verified by package pki during the TLS handshake,
//     mapped to a user by their SIP URI subject alternative name.
//
// Sign-in methods are per tenant: the users of a tenant an OIDCProvider
// signs in are challenged with Bearer only and their passwords refused,
// as the security model has it, unless the Tenant or the User (a legacy
// phone's or a gateway's account) has PasswordSignIn; meeting guests keep
// Digest with their conference key.
//
// Authentication happens in two phases, as the security model asks: once a
// TLS connection has authenticated, it carries a security association, and
// later requests on it are accepted without a new challenge, but only for
// that identity (a different From is refused with 403); a request on
// another connection must authenticate again. Connections are tracked by
// wrapping the SIP listener with [Authenticator.Listener].
//
// A [Throttle] limits requests per source address, per subnet (/24, /64)
// and per federated domain with token buckets in bounded memory; requests
// over the limit get 503 with Retry-After (HTTP 429). Throttling is on by
// default. A [Backoff] makes wrong conference keys wait, per meeting and
// source, answered the same way.
//
// The edges of a server are bounded too: the listeners Listener and
// WSSListener wrap apply [ConnLimits] (handshake, message and idle
// timeouts, caps per address and in all, message and WebSocket frame
// size, WebSocket origins), [LimitListener] and [LimitWebSocketListener]
// apply them to any other listener (each makes a connection's TLS
// handshake, and reads its WebSocket upgrade, on a goroutine of its own
// before Accept returns the connection, so one slow client holds no
// accept loop and the connection's long-lived reader keeps a small
// stack), [LimitWebSocketFrames] to a WebSocket
// served by net/http, and a [LogLimiter] keeps what peers can make the
// server log short, rare and at WARN.
package auth
