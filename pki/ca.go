package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/parleyuc/parley/internal/atomicfile"
)

// Files a CA keeps in its directory.
const (
	CACertFile  = "ca.crt"  // the CA certificate, PEM
	CAKeyFile   = "ca.key"  // the CA private key, PKCS #8 PEM, mode 0600
	CAStateFile = "ca.json" // revocations and the CRL number
)

// Defaults applied to zero [CAConfig] fields.
const (
	DefaultCAValidity     = 10 * 365 * 24 * time.Hour
	DefaultServerValidity = 397 * 24 * time.Hour
	DefaultClientValidity = 365 * 24 * time.Hour
	DefaultCRLValidity    = 24 * time.Hour
	// backdate is how far NotBefore is set in the past, to absorb clock
	// skew between the CA and the parties that verify.
	backdate = 5 * time.Minute
)

// CAConfig configures a new or loaded [CA]. The zero value is usable except
// for CRLDistributionPoints, which issuing needs.
type CAConfig struct {
	// CommonName and Organization name the CA in its subject when it is
	// created. Default "Parley Enterprise CA" and "Parley".
	CommonName   string
	Organization string
	// KeyAlgorithm for the CA key when it is created. Default ECDSAP256.
	KeyAlgorithm KeyAlgorithm
	// Validity of the CA certificate when it is created. Default 10 years.
	Validity time.Duration
	// CRLDistributionPoints are the http(s) URLs at which this CA's CRL is
	// published (see [CA.CRLHandler]). Every certificate the CA issues
	// carries them unless the request names its own. Issuing fails when
	// neither names one: a certificate whose revocation cannot be checked
	// would be refused by every [Verifier].
	CRLDistributionPoints []string
	// CRLValidity is the span from a CRL's thisUpdate to its nextUpdate.
	// A new CRL is signed when half of it has passed. Default 24 hours.
	CRLValidity time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Revocations keeps the CA's revocation list and its published CRL.
	// Default: ca.json in the CA's directory, or memory for a CA without
	// one. Give the CAs of a pool's front ends one shared store. A CA
	// loaded with a store moves the revocations ca.json lists into it;
	// from then on ca.json is not written, so keep using the store.
	Revocations RevocationStore
}

func (c *CAConfig) setDefaults() error {
	if c.CommonName == "" {
		c.CommonName = "Parley Enterprise CA"
	}
	if c.Organization == "" {
		c.Organization = "Parley"
	}
	if c.Validity == 0 {
		c.Validity = DefaultCAValidity
	}
	if c.CRLValidity == 0 {
		c.CRLValidity = DefaultCRLValidity
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Validity < 0 {
		return errors.New("pki: CAConfig.Validity must be positive")
	}
	if c.CRLValidity < time.Minute {
		return errors.New("pki: CAConfig.CRLValidity must be at least one minute")
	}
	if err := checkDistributionPoints(c.CRLDistributionPoints); err != nil {
		return fmt.Errorf("pki: CAConfig.CRLDistributionPoints: %w", err)
	}
	return nil
}

// CA is an enterprise certificate authority. It issues server and client
// certificates, records revocations and signs CRLs. A CA created with a
// directory (see [OpenCA]) persists every revocation and CRL number there,
// or in its [CAConfig.Revocations], before reporting success, so nothing
// acknowledged is lost on restart.
// It is safe for concurrent use.
type CA struct {
	cfg  CAConfig
	cert *x509.Certificate
	key  crypto.Signer
	dir  string // "" for a CA kept only in memory

	revs   RevocationStore
	issuer string   // IssuerID(cert), the CA's key in revs
	floor  *big.Int // CRL numbers start after this one

	mu   sync.Mutex    // one CRL signed at a time
	last *PublishedCRL // the CRL last served, while the store is away
}

// NewCA creates a CA with a fresh key, kept in memory only. Use [OpenCA] for
// one that persists in a directory.
func NewCA(cfg CAConfig) (*CA, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	key, err := GenerateKey(cfg.KeyAlgorithm)
	if err != nil {
		return nil, err
	}
	now := cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: cfg.CommonName, Organization: []string{cfg.Organization}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(cfg.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	revs := cfg.Revocations
	if revs == nil {
		revs = &MemoryRevocations{}
	}
	return &CA{cfg: cfg, cert: cert, key: key, revs: revs, issuer: IssuerID(cert), floor: new(big.Int)}, nil
}

// OpenCA loads the CA kept in dir, or, if dir holds none of a CA's files,
// creates one and saves it there (the directory is created with mode
// 0700). A directory holding some of the files but not all is an error:
// it is never overwritten with a new CA. Loading refuses a key file
// readable by group or others.
func OpenCA(dir string, cfg CAConfig) (*CA, error) {
	var present, missing []string
	for _, name := range []string{CACertFile, CAKeyFile, CAStateFile} {
		_, err := os.Lstat(filepath.Join(dir, name))
		switch {
		case err == nil:
			present = append(present, name)
		case errors.Is(err, os.ErrNotExist):
			missing = append(missing, name)
		default:
			return nil, fmt.Errorf("pki: open CA: %w", err)
		}
	}
	switch {
	case len(missing) == 0:
		return LoadCA(dir, cfg)
	case len(present) > 0:
		return nil, fmt.Errorf("pki: open CA: %s holds %s but not %s; restore the missing files (a new CA would replace the old one)",
			dir, strings.Join(present, ", "), strings.Join(missing, ", "))
	}
	ca, err := NewCA(cfg)
	if err != nil {
		return nil, err
	}
	if err := ca.Save(dir); err != nil {
		return nil, err
	}
	return ca, nil
}

// LoadCA loads a CA saved by [CA.Save] from dir: certificate, key and
// state (revocations and CRL number), all three required. cfg supplies the
// settings that are not stored (distribution points, CRL validity, clock).
func LoadCA(dir string, cfg CAConfig) (*CA, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("pki: load CA: %w", err)
	}
	certs, err := ParseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA %s: %w", CACertFile, err)
	}
	cert := certs[0]
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: load CA: %s is not a CA certificate", CACertFile)
	}
	key, err := ReadKeyFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: load CA: %w", err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("pki: load CA: %s does not match %s", CAKeyFile, CACertFile)
	}
	statePath := filepath.Join(dir, CAStateFile)
	state, err := readCAState(statePath)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA: %w", err)
	}
	ca := &CA{cfg: cfg, cert: cert, key: key, dir: dir, issuer: IssuerID(cert), floor: state.CRLNumber}
	if cfg.Revocations == nil {
		ca.revs = &fileRevocations{path: statePath, state: state}
		return ca, nil
	}
	ca.revs = cfg.Revocations
	if err := ca.importRevocations(state); err != nil {
		return nil, fmt.Errorf("pki: load CA: moving the revocations of %s to the store: %w", CAStateFile, err)
	}
	return ca, nil
}

// importRevocations adds the revocations ca.json lists to the CA's store,
// those it does not hold yet. It is idempotent, so every front end of a
// pool may do it at start.
func (ca *CA) importRevocations(state caState) error {
	if len(state.Revoked) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return ca.revs.UpdateRevocationList(ctx, ca.issuer, func(l *RevocationList) error {
		for _, r := range state.Revoked {
			n, _ := new(big.Int).SetString(r.Serial, 16) // validated by readCAState
			if !l.has(n) {
				l.Revoked = append(l.Revoked, Revocation{Serial: n, RevokedAt: r.RevokedAt, Reason: r.Reason})
			}
		}
		return nil
	})
}

// Save writes the CA's certificate, key (mode 0600) and state to dir, which
// is created with mode 0700 if needed, and, unless the CA has a
// [CAConfig.Revocations] store, keeps its later revocations there too. It
// refuses a directory that already holds a CA key.
func (ca *CA) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: save CA: %w", err)
	}
	keyFile := filepath.Join(dir, CAKeyFile)
	if _, err := os.Lstat(keyFile); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pki: save CA: %s already exists; refusing to overwrite a CA key", keyFile)
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := ca.list(ctx)
	if err != nil {
		return fmt.Errorf("pki: save CA: %w", err)
	}
	state := newCAState()
	if ca.cfg.Revocations == nil { // the list moves to the file
		for _, r := range l.Revoked {
			state.Revoked = append(state.Revoked, revocationJSON{Serial: r.Serial.Text(16), RevokedAt: r.RevokedAt, Reason: r.Reason})
		}
		if l.CRL != nil {
			state.CRLNumber = l.CRL.Number
		}
	}
	// The state first and the key last: a crash in between leaves a
	// directory OpenCA reports as incomplete rather than one it would
	// take for an empty CA.
	statePath := filepath.Join(dir, CAStateFile)
	if err := state.write(statePath); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, CACertFile), EncodeCertPEM(ca.cert), 0o644); err != nil {
		return err
	}
	if err := WriteKeyFile(keyFile, ca.key); err != nil {
		return err
	}
	ca.dir = dir
	if ca.cfg.Revocations == nil {
		ca.revs = &fileRevocations{path: statePath, state: state, crl: l.CRL}
	}
	return nil
}

// Certificate returns the CA certificate, the trust anchor to give to
// verifiers.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPool returns a pool holding only the CA certificate.
func (ca *CA) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// ServerCertRequest asks the CA for a server certificate.
type ServerCertRequest struct {
	// DNSNames and IPAddresses the server answers to; at least one.
	DNSNames    []string
	IPAddresses []net.IP
	// ClientAuth adds the clientAuth EKU, for a server that also dials other
	// servers over mutual TLS. serverAuth is always present.
	ClientAuth bool
	// CRLDistributionPoints override the CA's default distribution points.
	CRLDistributionPoints []string
	// Validity of the certificate. Default 397 days. It never outlives the CA.
	Validity time.Duration
	// PublicKey to certify. If nil, the CA generates a key of KeyAlgorithm
	// (default ECDSAP256) and returns it in [Certificate.Key].
	PublicKey    crypto.PublicKey
	KeyAlgorithm KeyAlgorithm
}

// ClientCertRequest asks the CA for a user's client certificate.
type ClientCertRequest struct {
	// SIPURI identifies the user, e.g. "sip:alice@example.test". It goes in
	// a URI subject alternative name; the subject's common name is its
	// user@host part.
	SIPURI string
	// CRLDistributionPoints override the CA's default distribution points.
	CRLDistributionPoints []string
	// Validity of the certificate. Default 365 days.
	Validity time.Duration
	// PublicKey and KeyAlgorithm as in [ServerCertRequest].
	PublicKey    crypto.PublicKey
	KeyAlgorithm KeyAlgorithm
}

// Certificate is an issued certificate with its issuer and, when the CA
// generated the key, its private key.
type Certificate struct {
	Leaf   *x509.Certificate
	Issuer *x509.Certificate
	Key    crypto.Signer // nil when the request supplied a public key
}

// TLSCertificate returns the certificate and key as a [tls.Certificate] for
// a [KeyPair]. The chain presented is the leaf alone: the CA certificate is
// the trust anchor the peer already holds.
func (c *Certificate) TLSCertificate() (tls.Certificate, error) {
	if c.Key == nil {
		return tls.Certificate{}, errors.New("pki: certificate has no private key")
	}
	return tlsCertificate([]*x509.Certificate{c.Leaf}, c.Key), nil
}

// KeyPair returns the certificate and key as a [KeyPair], for the TLS
// builders ([ServerTLSConfig], [ClientTLSConfig]).
func (c *Certificate) KeyPair() (*KeyPair, error) {
	tc, err := c.TLSCertificate()
	if err != nil {
		return nil, err
	}
	return NewKeyPair(tc)
}

// WriteFiles writes the certificate (PEM) to certFile and its private key
// (PKCS #8 PEM, mode 0600) to keyFile, each atomically.
func (c *Certificate) WriteFiles(certFile, keyFile string) error {
	if c.Key == nil {
		return errors.New("pki: certificate has no private key")
	}
	if err := WriteKeyFile(keyFile, c.Key); err != nil {
		return err
	}
	return atomicfile.Write(certFile, EncodeCertPEM(c.Leaf), 0o644)
}

// IssueServer issues a server certificate with the serverAuth EKU (and
// clientAuth if asked) and the CRL distribution points.
func (ca *CA) IssueServer(req ServerCertRequest) (*Certificate, error) {
	if len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 {
		return nil, errors.New("pki: ServerCertRequest needs at least one DNS name or IP address")
	}
	for _, name := range req.DNSNames {
		if name == "" || strings.ContainsAny(name, " /:@") {
			return nil, fmt.Errorf("pki: ServerCertRequest.DNSNames: invalid name %q", name)
		}
	}
	cn := ""
	if len(req.DNSNames) > 0 {
		cn = req.DNSNames[0]
	} else {
		cn = req.IPAddresses[0].String()
	}
	eku := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if req.ClientAuth {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: ca.cert.Subject.Organization},
		DNSNames:    req.DNSNames,
		IPAddresses: req.IPAddresses,
		ExtKeyUsage: eku,
	}
	return ca.issue(tmpl, req.CRLDistributionPoints, req.Validity, DefaultServerValidity, req.PublicKey, req.KeyAlgorithm)
}

// IssueClient issues a user's client certificate: the SIP URI in a URI SAN
// and the clientAuth EKU.
func (ca *CA) IssueClient(req ClientCertRequest) (*Certificate, error) {
	u, err := url.Parse(req.SIPURI)
	bad := err != nil || (u.Scheme != "sip" && u.Scheme != "sips") || u.RawQuery != "" || u.Fragment != ""
	if !bad {
		user, host, ok := strings.Cut(u.Opaque, "@")
		bad = !ok || user == "" || host == "" || strings.ContainsAny(user, ":;") || strings.ContainsAny(host, "@;:/ ")
	}
	if bad {
		return nil, fmt.Errorf("pki: ClientCertRequest.SIPURI: want sip:user@domain, got %q", req.SIPURI)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: u.Opaque, Organization: ca.cert.Subject.Organization},
		URIs:        []*url.URL{u},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ca.issue(tmpl, req.CRLDistributionPoints, req.Validity, DefaultClientValidity, req.PublicKey, req.KeyAlgorithm)
}

func (ca *CA) issue(tmpl *x509.Certificate, dps []string, validity, defValidity time.Duration,
	pub crypto.PublicKey, alg KeyAlgorithm) (*Certificate, error) {
	if len(dps) == 0 {
		dps = ca.cfg.CRLDistributionPoints
	}
	if len(dps) == 0 {
		return nil, errors.New("pki: no CRL distribution point: set CAConfig.CRLDistributionPoints or the request's")
	}
	if err := checkDistributionPoints(dps); err != nil {
		return nil, fmt.Errorf("pki: CRLDistributionPoints: %w", err)
	}
	if validity == 0 {
		validity = defValidity
	}
	if validity < 0 {
		return nil, errors.New("pki: certificate validity must be positive")
	}
	var key crypto.Signer
	if pub == nil {
		var err error
		if key, err = GenerateKey(alg); err != nil {
			return nil, err
		}
		pub = key.Public()
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	now := ca.cfg.Now()
	tmpl.SerialNumber = newSerial()
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	tmpl.CRLDistributionPoints = dps
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: issue certificate: %w", err)
	}
	return &Certificate{Leaf: leaf, Issuer: ca.cert, Key: key}, nil
}

// newSerial returns a random positive serial number of 127 bits, well within
// RFC 5280's 20 octets and unguessable.
func newSerial() *big.Int {
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		panic("pki: crypto/rand failed: " + err.Error()) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

func checkDistributionPoints(dps []string) error {
	for _, dp := range dps {
		if !isHTTPURL(dp) {
			return fmt.Errorf("%q is not an http(s) URL", dp)
		}
	}
	return nil
}
