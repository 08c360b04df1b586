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
//     that carries federated partners' signaling in over mutual TLS,
//     under the tenant's federation policy.
//
// The packages media and store follow, and the TURN relay in edge;
// DESIGN.md in the project's shared folder describes the whole.
package parley
