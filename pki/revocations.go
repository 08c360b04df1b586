package pki

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"
)

// RevocationList is what a [RevocationStore] keeps for one CA: the
// revocations, oldest first, and the CRL last published from them. The
// list only grows: a revocation is never taken back.
type RevocationList struct {
	Revoked []Revocation  `json:"revoked"`
	CRL     *PublishedCRL `json:"crl,omitempty"`
}

// PublishedCRL is a signed CRL as the front ends of a pool share it: all
// of them serve the same CRL, so a verifier never sees CRL numbers go
// back when it fetches from another front end.
type PublishedCRL struct {
	DER        []byte    `json:"der"`
	Number     *big.Int  `json:"number"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	// Covers is how many of the list's revocations (the first ones) the
	// CRL lists. A CRL covering fewer than the list holds is replaced.
	Covers int `json:"covers"`
}

// RevocationStore keeps the revocation lists of CAs, keyed by issuer (the
// hexadecimal SHA-256 of the CA certificate). A CA with a directory and no
// store keeps its list in the directory's ca.json; give the CAs of several
// front ends one shared store (see [CAConfig.Revocations]) so that a
// certificate revoked on one is listed on the CRL every one of them serves.
type RevocationStore interface {
	// RevocationList returns the issuer's list, the zero RevocationList
	// for an issuer it has none of.
	RevocationList(ctx context.Context, issuer string) (RevocationList, error)
	// UpdateRevocationList applies change to the issuer's list and stores
	// the result, atomically: a change made meanwhile by another caller is
	// never lost. If change returns an error nothing is stored and that
	// error is returned. change may be called more than once, each time
	// with the list as it then is.
	UpdateRevocationList(ctx context.Context, issuer string, change func(*RevocationList) error) error
}

// IssuerID returns the key under which a [RevocationStore] keeps the
// revocations of the CA with certificate cert.
func IssuerID(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// Clone returns a copy of l that shares nothing with it that a caller
// could change.
func (l RevocationList) Clone() RevocationList {
	out := RevocationList{Revoked: make([]Revocation, len(l.Revoked))}
	for i, r := range l.Revoked {
		out.Revoked[i] = r
		if r.Serial != nil {
			out.Revoked[i].Serial = new(big.Int).Set(r.Serial)
		}
	}
	out.CRL = l.CRL.clone()
	return out
}

func (c *PublishedCRL) clone() *PublishedCRL {
	if c == nil {
		return nil
	}
	out := *c
	out.DER = slices.Clone(c.DER)
	if c.Number != nil {
		out.Number = new(big.Int).Set(c.Number)
	}
	return &out
}

// has reports whether serial is on the list.
func (l RevocationList) has(serial *big.Int) bool {
	return slices.ContainsFunc(l.Revoked, func(r Revocation) bool { return r.Serial != nil && r.Serial.Cmp(serial) == 0 })
}

// validate checks a list read from a store before the CA signs from it.
func (l RevocationList) validate() error {
	seen := make(map[string]bool, len(l.Revoked))
	for _, r := range l.Revoked {
		if r.Serial == nil || r.Serial.Sign() <= 0 || r.Serial.BitLen() > 159 {
			return fmt.Errorf("bad serial %v", r.Serial)
		}
		s := r.Serial.Text(16)
		if seen[s] {
			return fmt.Errorf("serial %s listed twice", s)
		}
		seen[s] = true
		if _, ok := reasonNames[r.Reason]; !ok {
			return fmt.Errorf("serial %s: bad reason %d", s, r.Reason)
		}
		if r.RevokedAt.IsZero() {
			return fmt.Errorf("serial %s: no revocation time", s)
		}
	}
	if c := l.CRL; c != nil {
		if c.Number == nil || c.Number.Sign() < 0 || c.Number.BitLen() > 158 {
			return errors.New("CRL number missing, negative or too large")
		}
		if c.Covers < 0 || c.Covers > len(l.Revoked) {
			return fmt.Errorf("CRL covers %d revocations of %d", c.Covers, len(l.Revoked))
		}
	}
	return nil
}

// MemoryRevocations is a [RevocationStore] kept in memory, for tests and
// for CAs that need not survive the process. The zero value is ready.
type MemoryRevocations struct {
	mu    sync.Mutex
	lists map[string]RevocationList
}

// RevocationList implements [RevocationStore].
func (m *MemoryRevocations) RevocationList(_ context.Context, issuer string) (RevocationList, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lists[issuer].Clone(), nil
}

// UpdateRevocationList implements [RevocationStore].
func (m *MemoryRevocations) UpdateRevocationList(_ context.Context, issuer string, change func(*RevocationList) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := m.lists[issuer].Clone()
	if err := change(&next); err != nil {
		return err
	}
	if m.lists == nil {
		m.lists = make(map[string]RevocationList)
	}
	m.lists[issuer] = next.Clone()
	return nil
}

// fileRevocations is the store of a CA with a directory and no
// [CAConfig.Revocations]: the revocations and the CRL number in ca.json,
// written before an update returns. The signed CRL is kept in memory
// only; after a restart the next one has the next number.
type fileRevocations struct {
	path string

	mu    sync.Mutex
	state caState
	crl   *PublishedCRL
}

// list returns the file's list, sharing nothing with f.
func (f *fileRevocations) list() RevocationList {
	l := RevocationList{Revoked: make([]Revocation, 0, len(f.state.Revoked))}
	for _, r := range f.state.Revoked {
		n, _ := new(big.Int).SetString(r.Serial, 16) // validated on load and on update
		l.Revoked = append(l.Revoked, Revocation{Serial: n, RevokedAt: r.RevokedAt, Reason: r.Reason})
	}
	l.CRL = f.crl.clone()
	return l
}

// RevocationList implements [RevocationStore] for the CA's own issuer.
func (f *fileRevocations) RevocationList(context.Context, string) (RevocationList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.list(), nil
}

// UpdateRevocationList implements [RevocationStore] for the CA's own
// issuer: the file is written, or nothing changes.
func (f *fileRevocations) UpdateRevocationList(_ context.Context, _ string, change func(*RevocationList) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.list()
	if err := change(&l); err != nil {
		return err
	}
	if err := l.validate(); err != nil {
		return fmt.Errorf("pki: refusing to store a bad revocation list: %w", err)
	}
	next := caState{Version: caStateVersion, CRLNumber: f.state.CRLNumber}
	for _, r := range l.Revoked {
		next.Revoked = append(next.Revoked, revocationJSON{Serial: r.Serial.Text(16), RevokedAt: r.RevokedAt, Reason: r.Reason})
	}
	if l.CRL != nil && l.CRL.Number.Cmp(next.CRLNumber) > 0 {
		next.CRLNumber = l.CRL.Number
	}
	if err := next.write(f.path); err != nil {
		return err
	}
	f.state, f.crl = next, l.CRL
	return nil
}
