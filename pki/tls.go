package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// The TLS parameters every Parley endpoint uses: TLS 1.2 or 1.3, AEAD
// cipher suites, and FIPS-approved key exchanges (NIST curves and the
// ML-KEM hybrids Go's FIPS 140-3 policy allows).
var (
	approvedTLS12Suites = []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	}
	// Go does not let TLS 1.3 suites be configured. Outside FIPS mode a Go
	// server picks ChaCha20-Poly1305 for a client that prefers it (one
	// without AES hardware); such a connection is refused in
	// VerifyConnection. With GODEBUG=fips140=on Go never negotiates it.
	approvedTLS13Suites = []uint16{
		tls.TLS_AES_128_GCM_SHA256,
		tls.TLS_AES_256_GCM_SHA384,
	}
	approvedCurves = []tls.CurveID{
		tls.X25519MLKEM768,
		tls.SecP256r1MLKEM768,
		tls.SecP384r1MLKEM1024,
		tls.CurveP256,
		tls.CurveP384,
	}
)

// ErrCipherSuite is returned when a handshake negotiated a cipher suite that
// is not FIPS-approved.
var ErrCipherSuite = errors.New("pki: cipher suite not FIPS-approved")

// ErrNoVerifier fails every handshake of a configuration built with a nil
// *Verifier: peer certificates would go unchecked, so nothing is accepted.
var ErrNoVerifier = errors.New("pki: TLS configuration built without a Verifier")

// ErrNoKeyPair fails every handshake of a server configuration built with
// a nil *KeyPair, or one presenting no certificate yet.
var ErrNoKeyPair = errors.New("pki: TLS configuration built without a KeyPair")

// verifyWith is v.Verify, or ErrNoVerifier (naming the builder) when v is
// nil: the builders fail closed instead of panicking in a handshake.
func verifyWith(v *Verifier, builder string, peer []*x509.Certificate, opts VerifyOptions) error {
	if v == nil {
		return fmt.Errorf("%w: %s was given a nil *Verifier", ErrNoVerifier, builder)
	}
	_, err := v.Verify(context.Background(), peer, opts)
	return err
}

// serverCertificate is kp.GetCertificate, or ErrNoKeyPair when kp is nil.
func serverCertificate(kp *KeyPair, builder string) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if kp == nil {
			return nil, fmt.Errorf("%w: %s was given a nil *KeyPair", ErrNoKeyPair, builder)
		}
		return kp.GetCertificate(hello)
	}
}

func baseConfig() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     slices.Clone(approvedTLS12Suites),
		CurvePreferences: slices.Clone(approvedCurves),
	}
}

func checkSuite(cs tls.ConnectionState) error {
	if cs.Version == tls.VersionTLS13 && !slices.Contains(approvedTLS13Suites, cs.CipherSuite) {
		return fmt.Errorf("%w: %s", ErrCipherSuite, tls.CipherSuiteName(cs.CipherSuite))
	}
	return nil
}

// ServerTLSConfig returns the configuration of a server that clients reach
// over TLS (client-to-server). It presents kp's certificate. A client may
// present a certificate (user certificate sign-in); if it does, the
// certificate is verified for [ClientAuth], revocation included, and the
// handshake fails if it is refused. Whether a client that presented none
// may do anything is for the application's authentication to decide.
//
// A nil kp or v is refused, not deferred to a panic: every handshake of
// the configuration fails with [ErrNoKeyPair] or [ErrNoVerifier]. The same
// holds for the other builders.
func ServerTLSConfig(kp *KeyPair, v *Verifier) *tls.Config {
	c := baseConfig()
	c.GetCertificate = serverCertificate(kp, "ServerTLSConfig")
	c.ClientAuth = tls.RequestClientCert
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := checkSuite(cs); err != nil {
			return err
		}
		if v == nil {
			// Fail closed even for clients without a certificate: a
			// misbuilt configuration shows at the first handshake.
			return fmt.Errorf("%w: ServerTLSConfig was given a nil *Verifier", ErrNoVerifier)
		}
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		return verifyWith(v, "ServerTLSConfig", cs.PeerCertificates, VerifyOptions{Purpose: ClientAuth})
	}
	return c
}

// MutualTLSServerConfig returns the configuration of a server that other
// servers reach over mutual TLS (server-to-server). The peer must present a
// certificate, verified for [MutualServerAuth]; if peerNames are given it
// must also carry one of them, matched as a TLS client matches a server
// name (exact DNS name, a wildcard SAN, or an IP). A name is not matched by
// its subdomains: to admit a partner's edge.partner.test, list that name.
func MutualTLSServerConfig(kp *KeyPair, v *Verifier, peerNames ...string) *tls.Config {
	c := baseConfig()
	c.GetCertificate = serverCertificate(kp, "MutualTLSServerConfig")
	c.ClientAuth = tls.RequireAnyClientCert
	names := slices.Clone(peerNames)
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := checkSuite(cs); err != nil {
			return err
		}
		return verifyWith(v, "MutualTLSServerConfig", cs.PeerCertificates, VerifyOptions{Purpose: MutualServerAuth, Names: names})
	}
	return c
}

// ClientTLSConfigByName is [ClientTLSConfig] for a client that dials
// several servers, some by name and some by IP address, as an edge does
// (its internal server by address, partners by the name DNS gave): the
// server is verified for [ServerAuth] against the host name dialed (the
// SNI, which sipgo and net/http set to it), and a server dialed by IP
// address, for which TLS carries no name, must carry one of ipNames. With
// no ipNames, a server dialed by address is refused.
func ClientTLSConfigByName(kp *KeyPair, v *Verifier, ipNames ...string) *tls.Config {
	c := baseConfig()
	if kp != nil {
		c.GetClientCertificate = kp.GetClientCertificate
	}
	byIP := slices.Clone(ipNames)
	c.InsecureSkipVerify = true // verified below, as ClientTLSConfig does
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := checkSuite(cs); err != nil {
			return err
		}
		if cs.ServerName != "" {
			return verifyWith(v, "ClientTLSConfigByName", cs.PeerCertificates, VerifyOptions{Purpose: ServerAuth, Names: []string{cs.ServerName}})
		}
		err := fmt.Errorf("pki: ClientTLSConfigByName: a server dialed by address, and no name to verify it by")
		for _, name := range byIP {
			if err = verifyWith(v, "ClientTLSConfigByName", cs.PeerCertificates, VerifyOptions{Purpose: ServerAuth, Names: []string{name}}); err == nil {
				return nil
			}
		}
		return err
	}
	return c
}

// ClientTLSConfig returns the configuration for dialing a server. The
// server's certificate is verified for [ServerAuth] against serverName (a
// DNS name or IP), or, if serverName is empty, against the name the client
// sent in SNI (sipgo and net/http set it to the host dialed). TLS sends no
// SNI for an IP address, so to dial by IP pass serverName; with neither
// name the handshake fails. If kp is not nil its
// certificate is presented, which is how a server dials another over
// mutual TLS.
//
// The configuration sets InsecureSkipVerify only to move verification from
// crypto/tls into [Verifier.Verify] (chain, validity, name, key strength,
// and more: EKU, revocation), so that roots can be replaced at run time;
// VerifyConnection runs it on every handshake, resumed ones too.
func ClientTLSConfig(kp *KeyPair, v *Verifier, serverName string) *tls.Config {
	c := baseConfig()
	c.ServerName = serverName
	if kp != nil {
		c.GetClientCertificate = kp.GetClientCertificate
	}
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := checkSuite(cs); err != nil {
			return err
		}
		name := serverName
		if name == "" {
			name = cs.ServerName
		}
		return verifyWith(v, "ClientTLSConfig", cs.PeerCertificates, VerifyOptions{Purpose: ServerAuth, Names: []string{name}})
	}
	return c
}
