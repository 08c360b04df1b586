// Package presence is where users sign in and find each other: the SIP
// registrar and location service, and the routing of requests (instant
// messages first) to every device a user has registered.
//
// A [Registrar] handles REGISTER (RFC 3261 section 10) over TLS, every
// request authenticated through package auth: several bindings per address
// of record, expiry between a minimum (423 Interval Too Brief) and a
// maximum, refresh, removal (Expires: 0 and "*"), Path (RFC 3327), and
// bindings tied to the connection they came on (RFC 5626 flows), so that
// requests reach a client behind NAT over its own TLS connection. Its
// state is behind the small [LocationStore] interface.
//
// A [Router] forwards requests for registered users to their bindings:
// MESSAGE (RFC 3428) forks to all of them; an unknown user gets 404, a
// known one with no binding 480.
package presence
