package pki

import (
	"context"
	"path/filepath"
	"testing"
)

// FuzzParseCRL feeds arbitrary bytes where a distribution point's body goes.
// Whatever parses must be handled without panicking by the code that reads
// a CRL's fields and checks its signature.
func FuzzParseCRL(f *testing.F) {
	ca, err := NewCA(CAConfig{})
	if err != nil {
		f.Fatal(err)
	}
	_ = ca.Revoke(context.Background(), newSerial(), ReasonKeyCompromise)
	der, _, err := ca.CRL(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(der)
	f.Add(append([]byte("-----BEGIN X509 CRL-----\n"), []byte("MAA=\n-----END X509 CRL-----\n")...))
	f.Add([]byte("this is not a CRL"))
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := ParseCRL(data)
		if err != nil {
			return
		}
		_ = list.CheckSignatureFrom(ca.Certificate())
		for _, e := range list.RevokedCertificateEntries {
			if e.SerialNumber != nil {
				_ = e.SerialNumber.Bytes()
			}
		}
	})
}

// FuzzParseKeyPEM: key files are read from disk and may be damaged.
func FuzzParseKeyPEM(f *testing.F) {
	for _, alg := range []KeyAlgorithm{ECDSAP256, ECDSAP384} {
		k, _ := GenerateKey(alg)
		b, _ := MarshalKeyPEM(k)
		f.Add(b)
	}
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKeyPEM(data)
		if err != nil {
			return
		}
		// A key that parses must survive a write and a read unchanged.
		out, err := MarshalKeyPEM(k)
		if err != nil {
			t.Fatalf("parsed key cannot be written: %v", err)
		}
		back, err := ParseKeyPEM(out)
		if err != nil || !publicKeysEqual(back.Public(), k.Public()) {
			t.Fatalf("key changed in a round trip: %v", err)
		}
	})
}

// FuzzParseCAState: the CA's state file must either load into a state the
// CA can sign a CRL from, or be refused.
func FuzzParseCAState(f *testing.F) {
	f.Add([]byte(`{"version":1,"crl_number":3,"revoked":[{"serial":"2a","revoked_at":"2026-01-02T03:04:05Z","reason":1}]}`))
	f.Add([]byte(`{"version":1,"crl_number":0,"revoked":null}`))
	f.Add([]byte(`{"version":1,"crl_number":-1}`))
	ca, err := NewCA(CAConfig{})
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), CAStateFile)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseCAState(data)
		if err != nil {
			return
		}
		c := &CA{cfg: ca.cfg, cert: ca.cert, key: ca.key, issuer: ca.issuer, floor: s.CRLNumber,
			revs: &fileRevocations{path: path, state: s}}
		if _, _, err := c.CRL(context.Background()); err != nil {
			t.Fatalf("accepted state %q cannot sign a CRL: %v", data, err)
		}
		if _, err := c.Revocations(context.Background()); err != nil {
			t.Fatalf("accepted state %q cannot be listed: %v", data, err)
		}
	})
}
