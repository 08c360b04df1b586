package pki

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/parleyuc/parley/internal/atomicfile"
)

// RevocationReason is an RFC 5280 CRLReason code.
type RevocationReason int

// RFC 5280 section 5.3.1 reason codes (7 is not used).
const (
	ReasonUnspecified          RevocationReason = 0
	ReasonKeyCompromise        RevocationReason = 1
	ReasonCACompromise         RevocationReason = 2
	ReasonAffiliationChanged   RevocationReason = 3
	ReasonSuperseded           RevocationReason = 4
	ReasonCessationOfOperation RevocationReason = 5
	ReasonCertificateHold      RevocationReason = 6
	ReasonRemoveFromCRL        RevocationReason = 8
	ReasonPrivilegeWithdrawn   RevocationReason = 9
	ReasonAACompromise         RevocationReason = 10
)

var reasonNames = map[RevocationReason]string{
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonCACompromise:         "cACompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonCertificateHold:      "certificateHold",
	ReasonRemoveFromCRL:        "removeFromCRL",
	ReasonPrivilegeWithdrawn:   "privilegeWithdrawn",
	ReasonAACompromise:         "aACompromise",
}

// String returns the RFC 5280 name of the reason.
func (r RevocationReason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// ParseRevocationReason returns the reason RFC 5280 names name
// ("keyCompromise", "superseded", ...), or an error wrapping
// ErrInvalidReason.
func ParseRevocationReason(name string) (RevocationReason, error) {
	for r, n := range reasonNames {
		if n == name {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrInvalidReason, name)
}

// Errors from [CA.Revoke].
var (
	ErrAlreadyRevoked = errors.New("pki: certificate already revoked")
	ErrInvalidReason  = errors.New("pki: invalid revocation reason")
)

// Revocation is one entry of the CA's revocation list.
type Revocation struct {
	Serial    *big.Int         `json:"serial"`
	RevokedAt time.Time        `json:"revoked_at"`
	Reason    RevocationReason `json:"reason"`
}

// caState is the ca.json file of a CA with a directory: the revocations
// and the last CRL number, or, for a CA whose revocations are in a
// [RevocationStore], what they were before they moved there.
type caState struct {
	Version   int              `json:"version"`
	CRLNumber *big.Int         `json:"crl_number"`
	Revoked   []revocationJSON `json:"revoked"`
}

type revocationJSON struct {
	Serial    string           `json:"serial"` // hexadecimal
	RevokedAt time.Time        `json:"revoked_at"`
	Reason    RevocationReason `json:"reason"`
}

const caStateVersion = 1

func newCAState() caState {
	return caState{Version: caStateVersion, CRLNumber: new(big.Int)}
}

func readCAState(path string) (caState, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return caState{}, err
	}
	s, err := parseCAState(data)
	if err != nil {
		return caState{}, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return s, nil
}

func parseCAState(data []byte) (caState, error) {
	var s caState
	if err := json.Unmarshal(data, &s); err != nil {
		return caState{}, err
	}
	if s.Version != caStateVersion {
		return caState{}, fmt.Errorf("unsupported version %d", s.Version)
	}
	if s.CRLNumber == nil {
		return caState{}, errors.New("crl_number missing")
	}
	// The checks are the store's: read as a revocation list, it must
	// validate. Serials are kept canonical, as Revoke compares them.
	l := RevocationList{Revoked: make([]Revocation, len(s.Revoked)), CRL: &PublishedCRL{Number: s.CRLNumber}}
	for i, r := range s.Revoked {
		n, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return caState{}, fmt.Errorf("bad serial %q", r.Serial)
		}
		s.Revoked[i].Serial = n.Text(16)
		l.Revoked[i] = Revocation{Serial: n, RevokedAt: r.RevokedAt, Reason: r.Reason}
	}
	if err := l.validate(); err != nil {
		return caState{}, err
	}
	return s, nil
}

func (s caState) write(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

// Errors from [CA.CRL].
var (
	// ErrRevocationStore wraps a failure to read or update the CA's
	// revocation list.
	ErrRevocationStore = errors.New("pki: revocation list unavailable")
	errCRLSuperseded   = errors.New("pki: a newer CRL was published meanwhile")
)

// list reads the CA's revocation list and checks it.
func (ca *CA) list(ctx context.Context) (RevocationList, error) {
	l, err := ca.revs.RevocationList(ctx, ca.issuer)
	if err != nil {
		return RevocationList{}, fmt.Errorf("%w: %v", ErrRevocationStore, err)
	}
	if err := l.validate(); err != nil {
		return RevocationList{}, fmt.Errorf("%w: the stored list is unreadable: %v", ErrRevocationStore, err)
	}
	return l, nil
}

// Revoke adds the certificate with the given serial number to the CA's
// revocation list. The next CRL the CA (or any CA sharing its
// [RevocationStore]) serves lists it. The revocation is stored when
// Revoke returns nil; if storing fails, nothing changes and the error is
// returned.
func (ca *CA) Revoke(ctx context.Context, serial *big.Int, reason RevocationReason) error {
	if serial == nil || serial.Sign() <= 0 || serial.BitLen() > 159 {
		return errors.New("pki: Revoke: serial must be positive and at most 20 octets")
	}
	if _, ok := reasonNames[reason]; !ok || reason == ReasonRemoveFromCRL {
		return fmt.Errorf("%w: %d", ErrInvalidReason, reason)
	}
	r := Revocation{Serial: new(big.Int).Set(serial), RevokedAt: ca.cfg.Now().UTC().Truncate(time.Second), Reason: reason}
	err := ca.revs.UpdateRevocationList(ctx, ca.issuer, func(l *RevocationList) error {
		if l.has(serial) {
			return fmt.Errorf("%w: serial %s", ErrAlreadyRevoked, serial.Text(16))
		}
		l.Revoked = append(l.Revoked, r)
		return nil
	})
	if err != nil && !errors.Is(err, ErrAlreadyRevoked) {
		return fmt.Errorf("%w: %v", ErrRevocationStore, err)
	}
	return err
}

// Revocations returns the CA's revocation list, oldest first.
func (ca *CA) Revocations(ctx context.Context) ([]Revocation, error) {
	l, err := ca.list(ctx)
	return l.Revoked, err
}

// CRL returns the CA's current CRL, DER encoded. The CRL published in the
// CA's [RevocationStore] is current until half of its validity has
// passed or a revocation it does not list is added; then a new one is
// signed, with the next CRL number, and published there first, so that
// every CA sharing the store serves the same CRL and its number only
// grows. While the store cannot be reached, the CRL last served goes on
// being served until its nextUpdate, as a verifier's cache would keep it;
// after that CRL fails with [ErrRevocationStore].
func (ca *CA) CRL(ctx context.Context) (der []byte, nextUpdate time.Time, err error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	crl, err := ca.currentCRL(ctx)
	if err != nil {
		if last := ca.last; last != nil && ca.cfg.Now().Before(last.NextUpdate) {
			return last.DER, last.NextUpdate, nil
		}
		return nil, time.Time{}, err
	}
	ca.last = crl
	return crl.DER, crl.NextUpdate, nil
}

// currentCRL returns the published CRL, signing and publishing a new one
// when it is missing, stale or incomplete.
func (ca *CA) currentCRL(ctx context.Context) (*PublishedCRL, error) {
	for range 3 {
		l, err := ca.list(ctx)
		if err != nil {
			return nil, err
		}
		now := ca.cfg.Now()
		if c := l.CRL; c != nil && c.Covers == len(l.Revoked) && now.Before(c.ThisUpdate.Add(ca.cfg.CRLValidity/2)) {
			return c, nil
		}
		crl, err := ca.sign(l, now)
		if err != nil {
			return nil, err
		}
		// The number is stored before the CRL is served, so no two
		// different CRLs ever carry one number.
		err = ca.revs.UpdateRevocationList(ctx, ca.issuer, func(cur *RevocationList) error {
			if cur.CRL != nil && cur.CRL.Number != nil && cur.CRL.Number.Cmp(crl.Number) >= 0 {
				return errCRLSuperseded
			}
			cur.CRL = crl
			return nil
		})
		switch {
		case err == nil:
			return crl, nil
		case !errors.Is(err, errCRLSuperseded):
			return nil, fmt.Errorf("%w: %v", ErrRevocationStore, err)
		}
		// Another CA sharing the store published first: serve its CRL.
	}
	return nil, fmt.Errorf("%w: CRLs kept being published by others", ErrRevocationStore)
}

// sign signs a CRL listing l's revocations, numbered after both l's last
// CRL and the number the CA started from.
func (ca *CA) sign(l RevocationList, now time.Time) (*PublishedCRL, error) {
	number := new(big.Int).Set(ca.floor)
	if l.CRL != nil && l.CRL.Number.Cmp(number) > 0 {
		number.Set(l.CRL.Number)
	}
	number.Add(number, big.NewInt(1))
	tmpl := &x509.RevocationList{
		Number:     number,
		ThisUpdate: now,
		NextUpdate: now.Add(ca.cfg.CRLValidity),
	}
	for _, r := range l.Revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: r.Serial, RevocationTime: r.RevokedAt, ReasonCode: int(r.Reason),
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign CRL: %w", err)
	}
	return &PublishedCRL{DER: der, Number: number, ThisUpdate: now, NextUpdate: tmpl.NextUpdate, Covers: len(l.Revoked)}, nil
}

// CRLHandler serves the CA's current CRL (DER, application/pkix-crl) for GET
// and HEAD, at whatever path it is mounted on. Serve it over plain HTTP at
// the distribution point: the CRL is signed, and TLS verification depends
// on it, so it must be reachable without TLS.
func (ca *CA) CRLHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		der, nextUpdate, err := ca.CRL(r.Context())
		if err != nil {
			http.Error(w, "CRL unavailable", http.StatusServiceUnavailable)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/pkix-crl")
		h.Set("Content-Length", strconv.Itoa(len(der)))
		// A cache in front must not serve a CRL from before a revocation.
		h.Set("Cache-Control", "no-cache")
		h.Set("Expires", nextUpdate.UTC().Format(http.TimeFormat))
		if r.Method == http.MethodGet {
			_, _ = w.Write(der)
		}
	})
}
