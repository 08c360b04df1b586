package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/parleyuc/parley/internal/atomicfile"
)

// KeyAlgorithm names a FIPS-approved key type and size for keys the CA
// generates.
type KeyAlgorithm string

// The key algorithms the CA can generate. ECDSAP256 is the default.
const (
	ECDSAP256 KeyAlgorithm = "ecdsa-p256"
	ECDSAP384 KeyAlgorithm = "ecdsa-p384"
	RSA3072   KeyAlgorithm = "rsa-3072"
	RSA4096   KeyAlgorithm = "rsa-4096"
)

// ErrUnsupportedKey is returned for a key type or size that is not
// FIPS-approved or too weak: RSA under 2048 bits (3072 for keys the CA
// generates), curves other than P-256/P-384/P-521, or unknown key types.
var ErrUnsupportedKey = errors.New("pki: unsupported or weak key")

// GenerateKey creates a private key of the given algorithm from crypto/rand.
// The empty algorithm means ECDSAP256.
func GenerateKey(alg KeyAlgorithm) (crypto.Signer, error) {
	switch alg {
	case ECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	default:
		return nil, fmt.Errorf("%w: key algorithm %q (want %s, %s, %s or %s)",
			ErrUnsupportedKey, alg, ECDSAP256, ECDSAP384, RSA3072, RSA4096)
	}
}

// checkPublicKey refuses public keys that are not FIPS-approved or are too
// weak to be trusted in a handshake.
func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key of %d bits (minimum 2048)", ErrUnsupportedKey, k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("%w: ECDSA curve %s", ErrUnsupportedKey, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: key type %T", ErrUnsupportedKey, pub)
	}
	return nil
}

// MarshalKeyPEM encodes a private key as a PKCS #8 PEM block.
func MarshalKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKeyPEM decodes the first private key PEM block (PKCS #8, PKCS #1 or
// SEC 1) in data.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("pki: no private key PEM block found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pki: parse %s: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%w: private key type %T", ErrUnsupportedKey, key)
		}
		if err := checkPublicKey(signer.Public()); err != nil {
			return nil, err
		}
		return signer, nil
	}
}

// EncodeCertPEM encodes certificates as consecutive CERTIFICATE PEM blocks.
func EncodeCertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// ParseCertsPEM decodes every CERTIFICATE PEM block in data. It fails if
// there is none.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("pki: no CERTIFICATE PEM block found")
	}
	return certs, nil
}

// ReadKeyFile reads a PEM private key from path. It refuses a key file that
// group or others can read or write (the mode must be 0600 or stricter), as
// OpenSSH does, because such a key must be assumed disclosed.
func ReadKeyFile(path string) (crypto.Signer, error) {
	// Check the mode of the file that is read, not of a name that could
	// be swapped between a check and a read.
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pki: key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pki: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("pki: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("pki: key file %s has mode %#o: it must not be accessible by group or others (chmod 600 %s)",
			path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("pki: key file: %w", err)
	}
	key, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// WriteKeyFile writes a private key to path as PKCS #8 PEM with mode 0600,
// atomically: a reader sees the old file or the new one, never a torn one.
func WriteKeyFile(path string, key crypto.Signer) error {
	data, err := MarshalKeyPEM(key)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

// KeyPair holds the certificate and key a TLS endpoint presents, and lets it
// be replaced while connections are being served: handshakes that start
// after Set or Reload use the new certificate. It is safe for concurrent use.
type KeyPair struct {
	cur      atomic.Pointer[tls.Certificate]
	certFile string
	keyFile  string
}

// NewKeyPair returns a KeyPair presenting cert. cert.Leaf is filled in if
// it is nil.
func NewKeyPair(cert tls.Certificate) (*KeyPair, error) {
	kp := &KeyPair{}
	if err := kp.Set(cert); err != nil {
		return nil, err
	}
	return kp, nil
}

// LoadKeyPair reads a PEM certificate chain and key from files (the key
// file must have mode 0600 or stricter). Reload reads them again.
func LoadKeyPair(certFile, keyFile string) (*KeyPair, error) {
	kp := &KeyPair{certFile: certFile, keyFile: keyFile}
	if err := kp.Reload(); err != nil {
		return nil, err
	}
	return kp, nil
}

// Reload reads the KeyPair's files again and, if they hold a valid matching
// certificate and key, presents them from the next handshake on. On error
// the current certificate stays in use.
func (k *KeyPair) Reload() error {
	if k.certFile == "" {
		return ErrNotFromFiles
	}
	key, err := ReadKeyFile(k.keyFile)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(k.certFile)
	if err != nil {
		return fmt.Errorf("pki: certificate file: %w", err)
	}
	certs, err := ParseCertsPEM(data)
	if err != nil {
		return fmt.Errorf("%s: %w", k.certFile, err)
	}
	return k.Set(tlsCertificate(certs, key))
}

// Set presents cert from the next handshake on. It fails, keeping the
// current certificate, if cert has no certificate, a weak key, or a private
// key that does not match the leaf.
func (k *KeyPair) Set(cert tls.Certificate) error {
	if len(cert.Certificate) == 0 {
		return errors.New("pki: KeyPair: no certificate")
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return fmt.Errorf("pki: KeyPair: %w", err)
		}
		cert.Leaf = leaf
	}
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return errors.New("pki: KeyPair: private key is not a crypto.Signer")
	}
	if err := checkPublicKey(cert.Leaf.PublicKey); err != nil {
		return err
	}
	if !publicKeysEqual(signer.Public(), cert.Leaf.PublicKey) {
		return errors.New("pki: KeyPair: private key does not match certificate")
	}
	k.cur.Store(&cert)
	return nil
}

// Certificate returns the certificate currently presented.
func (k *KeyPair) Certificate() *tls.Certificate { return k.cur.Load() }

// GetCertificate is a [tls.Config.GetCertificate] hook. A KeyPair holding
// no certificate (the zero value) fails the handshake with [ErrNoKeyPair].
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := k.cur.Load(); c != nil {
		return c, nil
	}
	return nil, ErrNoKeyPair
}

// GetClientCertificate is a [tls.Config.GetClientCertificate] hook. A
// KeyPair holding no certificate (the zero value) presents none.
func (k *KeyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := k.cur.Load(); c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil
}

func tlsCertificate(chain []*x509.Certificate, key crypto.Signer) tls.Certificate {
	c := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, cert := range chain {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	return c
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}
