// Package pki is Parley's public key infrastructure: the trust every other
// package stands on.
//
// It provides
//
//   - an enterprise certificate authority ([CA]) that issues server
//     certificates (serverAuth EKU, clientAuth too for servers that dial other
//     servers over mutual TLS, one or more CRL distribution points) and user
//     client certificates (a SIP URI in a URI SAN, clientAuth EKU), revokes
//     certificates by serial with an RFC 5280 reason, and publishes a signed
//     CRL with a CRL number and nextUpdate, served over HTTP by
//     [CA.CRLHandler]. Its revocations and published CRL are kept behind a
//     [RevocationStore]: ca.json in the CA's directory by default, or a
//     store the front ends of a pool share, so that all of them serve one
//     CRL;
//   - a [Verifier] that checks every certificate authentication: chain to the
//     configured roots, validity period, an explicit EKU for the role, the
//     server's DNS name, a distribution point on every leaf, and revocation
//     from the CRL at that distribution point, through a [CRLCache] that
//     fetches, caches until nextUpdate and refreshes in the background. When
//     no valid CRL can be had, verification fails (fail closed) and the error
//     says why;
//   - TLS configuration builders for the three roles of the system:
//     [ServerTLSConfig] (clients reach a server over TLS),
//     [MutualTLSServerConfig] (servers reach a server over mutual TLS) and
//     [ClientTLSConfig] (dialing a server, with a certificate for mutual TLS
//     when the dialer is itself a server). They allow TLS 1.2 and 1.3 only,
//     AEAD cipher suites and FIPS-approved key exchanges only, and pick
//     certificates through a [KeyPair], so certificates rotate without a
//     restart.
//
// Revocation is never optional: a leaf certificate without an HTTP(S) CRL
// distribution point is refused, because its revocation cannot be checked.
package pki
