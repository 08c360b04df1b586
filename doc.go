// Package parley is an embeddable Go SDK for building a secure unified
// communications service: sign-in over TLS, presence and instant messaging,
// meetings with a lobby and roles, an edge for remote, federated and
// anonymous users, a TURN media relay and SRTP media.
//
// The module is a set of packages, one per role of the system, that an
// application imports and wires together itself; examples/server is the
// reference server with everything assembled.
//
//   - [github.com/parleyuc/parley/pki]: the enterprise CA (server and user
//     certificates with explicit EKUs and CRL distribution points,
//     revocation, signed CRLs served over HTTP), verification of every
//     certificate on every handshake with revocation checked and failing
//     closed, and TLS / mutual-TLS configurations restricted to
//     FIPS-approved algorithms, with certificate rotation.
//
//   - [github.com/parleyuc/parley/auth]: the directory of tenants and users
//     and every way a party proves who it is (OAuth 2.0 bearer tokens from
//     OpenID Connect providers, Digest with a password, anonymous Digest with
//     a conference key, client certificates), security associations per
//     TLS connection, and throttling per address, subnet and federated
//     domain.
//
//   - [github.com/parleyuc/parley/presence]: the SIP registrar and location
//     service, with bindings tied to the TLS connection they came on,
//     instant messages routed to every registered device, and presence
//     (PUBLISH, SUBSCRIBE/NOTIFY, PIDF with enhanced presence) filtered by
//     each user's privacy policy.
//
//   - [github.com/parleyuc/parley/conference]: meetings: scheduling by
//     licensed users, unguessable keys and links, the access and presenter
//     policies and participant types of the security model, the lobby,
//     roles, the SIP focus with conference control and RFC 4575
//     conference state, and media tokens for the A/V server.
//
//   - [github.com/parleyuc/parley/edge]: the perimeter: the Access Edge
//     that carries remote users', guests' and federated partners'
//     signaling in (partners over mutual TLS, under the tenant's
//     federation policy), and the A/V Edge, a TURN relay with short-lived
//     credentials, a filter against internal peers and the host itself,
//     quotas and bandwidth limits.
//
//   - [github.com/parleyuc/parley/media]: the A/V conferencing server:
//     WebRTC participants (DTLS-SRTP) and SIP participants (SDES-SRTP)
//     admitted with the focus's media tokens, forwarding, mixing, lobby
//     music, the dial-in IVR, and the browser signaling.
//
//   - [github.com/parleyuc/parley/store]: embedded (bbolt) and Redis
//     implementations of the packages' storage interfaces, and
//     [github.com/parleyuc/parley/store/storetest], the conformance suite
//     for your own.
//
//   - [github.com/parleyuc/parley/parleytest]: the test kit for
//     applications: a whole stack on loopback and SIP clients that sign
//     in, watch, message, join and admit.
//
// # How the types compose
//
// Every type is built from a Config that its constructor validates (an
// error names a missing or inconsistent field); policy plugs in through
// small interfaces whose default is the security model's rule
// (conference.AdmissionRule in a conference.Lobby, presence.VisibilityRule,
// edge.RelayConfig.AuthHandler); hooks between components are taken from
// the Config (a Registrar, PresenceServer or Focus given an
// auth.Authenticator follows its connections by itself) or registered by
// one rule, OnX(fn) returning the function that removes it; servers have
// Shutdown(ctx), which drains, and Close. SIP-facing types expose sipgo
// handlers that an application mounts on its own sipgo server.
//
// examples/server is the reference server with everything assembled,
// examples/embed three small programs using only exported API, and
// parleytest what an application's tests build on.
package parley
