package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// Purpose says what a peer's certificate is being verified for, which
// decides the extended key usages it must carry and the checks that apply.
type Purpose int

const (
	// ServerAuth verifies a server that we dialed: serverAuth EKU and the
	// DNS name (or IP) we dialed.
	ServerAuth Purpose = iota + 1
	// ClientAuth verifies a user's client certificate: clientAuth EKU.
	ClientAuth
	// MutualServerAuth verifies a server that dialed us over mutual TLS:
	// serverAuth EKU (every server certificate carries it) and clientAuth
	// EKU (it acts as the TLS client), and, if given, one of the expected
	// DNS names.
	MutualServerAuth
)

// String names the role the certificate was verified for.
func (p Purpose) String() string {
	switch p {
	case ServerAuth:
		return "server"
	case ClientAuth:
		return "client"
	case MutualServerAuth:
		return "mutual-TLS server"
	}
	return fmt.Sprintf("Purpose(%d)", int(p))
}

func (p Purpose) extKeyUsages() []x509.ExtKeyUsage {
	switch p {
	case ServerAuth:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case ClientAuth:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case MutualServerAuth:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	return nil
}

// ErrExtKeyUsage is returned for a certificate that does not explicitly
// carry the extended key usage its role needs. A certificate with no EKU
// extension, or with anyExtendedKeyUsage only, is refused: Go's x509 would
// let it pass for any usage.
var ErrExtKeyUsage = errors.New("pki: certificate lacks the required extended key usage")

// ErrNoCertificate is returned when the peer presented no certificate.
var ErrNoCertificate = errors.New("pki: no certificate presented")

// VerifyOptions are the per-connection inputs of [Verifier.Verify].
type VerifyOptions struct {
	Purpose Purpose
	// Names: for ServerAuth, the DNS name or IP dialed (exactly one,
	// required); for MutualServerAuth, the names one of which the peer
	// must carry (none means any verified server); unused for ClientAuth.
	Names []string
}

// VerifyError is a refused certificate: who presented it, for what, and why.
// errors.Is and errors.As see through it to the cause (for example
// [ErrRevoked], [ErrRevocationUnknown], [x509.HostnameError]).
type VerifyError struct {
	Subject string
	Purpose Purpose
	Err     error
}

// Error says whose certificate was refused, for what, and why.
func (e *VerifyError) Error() string {
	return fmt.Sprintf("pki: %s certificate %q refused: %v", e.Purpose, e.Subject, e.Err)
}

// Unwrap returns the reason, for errors.Is and errors.As.
func (e *VerifyError) Unwrap() error { return e.Err }

// VerifierConfig configures a [Verifier].
type VerifierConfig struct {
	// Roots are the trusted CA certificates. Required.
	Roots *x509.CertPool
	// Intermediates are extra intermediate CA certificates, besides those
	// the peer sends. Optional.
	Intermediates *x509.CertPool
	// CRLs checks revocation. Required: revocation is never skipped.
	CRLs *CRLCache
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Verifier checks peer certificates on every handshake: chain to the
// roots, validity, key strength of every certificate in the chain, explicit
// EKU for the purpose (allowed by every issuer in the chain), the name for
// servers, a CRL distribution point on the leaf, and revocation of the leaf
// and of every intermediate that names a distribution point. A leaf that is
// itself a trusted root is refused: nothing can vouch for its revocation. It is safe for
// concurrent use; SetRoots replaces the roots for later handshakes.
type Verifier struct {
	roots         atomic.Pointer[x509.CertPool]
	intermediates *x509.CertPool
	crls          *CRLCache
	now           func() time.Time
}

// NewVerifier returns a Verifier, or an error naming the missing field.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Roots == nil {
		return nil, errors.New("pki: VerifierConfig.Roots is required")
	}
	if cfg.CRLs == nil {
		return nil, errors.New("pki: VerifierConfig.CRLs is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{intermediates: cfg.Intermediates, crls: cfg.CRLs, now: cfg.Now}
	v.roots.Store(cfg.Roots)
	return v, nil
}

// SetRoots replaces the trusted roots from the next verification on.
func (v *Verifier) SetRoots(roots *x509.CertPool) {
	if roots != nil {
		v.roots.Store(roots)
	}
}

// Verify checks the peer's certificates (leaf first) for the purpose and
// returns the verified chain, leaf first and root last. Every refusal is a
// [*VerifyError].
func (v *Verifier) Verify(ctx context.Context, peer []*x509.Certificate, opts VerifyOptions) ([]*x509.Certificate, error) {
	if len(peer) == 0 {
		return nil, &VerifyError{Purpose: opts.Purpose, Err: ErrNoCertificate}
	}
	chain, err := v.verify(ctx, peer, opts)
	if err != nil {
		return nil, &VerifyError{Subject: peer[0].Subject.String(), Purpose: opts.Purpose, Err: err}
	}
	return chain, nil
}

func (v *Verifier) verify(ctx context.Context, peer []*x509.Certificate, opts VerifyOptions) ([]*x509.Certificate, error) {
	leaf := peer[0]
	ekus := opts.Purpose.extKeyUsages()
	if ekus == nil {
		return nil, fmt.Errorf("pki: unknown purpose %d", opts.Purpose)
	}
	if err := checkPublicKey(leaf.PublicKey); err != nil {
		return nil, err
	}
	for _, want := range ekus {
		if !slices.Contains(leaf.ExtKeyUsage, want) {
			return nil, fmt.Errorf("%w: %s", ErrExtKeyUsage, ekuName(want))
		}
	}
	if len(leaf.CRLDistributionPoints) == 0 {
		return nil, ErrNoDistributionPoint
	}

	xopts := x509.VerifyOptions{
		Roots:       v.roots.Load(),
		CurrentTime: v.now(),
		KeyUsages:   ekus[:1],
	}
	if len(peer) > 1 || v.intermediates != nil {
		xopts.Intermediates = x509.NewCertPool()
		if v.intermediates != nil {
			xopts.Intermediates = v.intermediates.Clone()
		}
		for _, c := range peer[1:] {
			xopts.Intermediates.AddCert(c)
		}
	}
	switch opts.Purpose {
	case ServerAuth:
		if len(opts.Names) != 1 || opts.Names[0] == "" {
			return nil, errors.New("pki: no server name to verify the server certificate against")
		}
		xopts.DNSName = opts.Names[0]
	}
	chains, err := leaf.Verify(xopts)
	if err != nil {
		return nil, err
	}
	if opts.Purpose == MutualServerAuth && len(opts.Names) > 0 {
		if err := verifyAnyName(leaf, opts.Names); err != nil {
			return nil, err
		}
	}
	chain := chains[0]
	if len(chain) < 2 {
		// A certificate trusted directly as a root has no issuer to vouch
		// for its revocation status.
		return nil, errors.New("pki: certificate is itself a trusted root, not issued by a CA")
	}
	for _, c := range chain[1:] {
		if err := checkPublicKey(c.PublicKey); err != nil {
			return nil, fmt.Errorf("issuer %s: %w", c.Subject, err)
		}
	}
	// x509 checked that the chain allows the first usage; a CA restricted
	// by EKU must allow the others too.
	for _, c := range chain[1 : len(chain)-1] {
		if len(c.ExtKeyUsage) == 0 || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) {
			continue
		}
		for _, want := range ekus[1:] {
			if !slices.Contains(c.ExtKeyUsage, want) {
				return nil, fmt.Errorf("%w: issuer %s does not allow %s", ErrExtKeyUsage, c.Subject, ekuName(want))
			}
		}
	}
	for i := 0; i < len(chain)-1; i++ {
		c := chain[i]
		if i > 0 && len(c.CRLDistributionPoints) == 0 {
			continue // an intermediate with no distribution point
		}
		if err := v.crls.Check(ctx, c, chain[i+1]); err != nil {
			return nil, err
		}
	}
	return chain, nil
}

func verifyAnyName(leaf *x509.Certificate, names []string) error {
	var first error
	for _, n := range names {
		err := leaf.VerifyHostname(n)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

func ekuName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	}
	return fmt.Sprintf("EKU(%d)", int(u))
}
