package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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

// Errors from [CA.Revoke].
var (
	ErrAlreadyRevoked = errors.New("pki: certificate already revoked")
	ErrInvalidReason  = errors.New("pki: invalid revocation reason")
)

// Revocation is one entry of the CA's revocation list.
type Revocation struct {
	Serial    *big.Int
	RevokedAt time.Time
	Reason    RevocationReason
}

// caState is what a CA persists besides its key and certificate.
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
	// RFC 5280 limits CRL numbers and serials to 20 octets.
	if s.CRLNumber == nil || s.CRLNumber.Sign() < 0 || s.CRLNumber.BitLen() > 158 {
		return caState{}, errors.New("crl_number missing, negative or too large")
	}
	seen := make(map[string]bool, len(s.Revoked))
	for i, r := range s.Revoked {
		n, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok || n.Sign() <= 0 || n.BitLen() > 159 {
			return caState{}, fmt.Errorf("bad serial %q", r.Serial)
		}
		s.Revoked[i].Serial = n.Text(16) // canonical, as Revoke compares it
		if seen[s.Revoked[i].Serial] {
			return caState{}, fmt.Errorf("serial %s listed twice", s.Revoked[i].Serial)
		}
		seen[s.Revoked[i].Serial] = true
		if _, ok := reasonNames[r.Reason]; !ok {
			return caState{}, fmt.Errorf("serial %s: bad reason %d", r.Serial, r.Reason)
		}
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

// persist writes s to the CA's directory, if it has one.
func (ca *CA) persist(s caState) error {
	if ca.dir == "" {
		return nil
	}
	return s.write(filepath.Join(ca.dir, CAStateFile))
}

// Revoke adds the certificate with the given serial number to the CA's
// revocation list. The next CRL the CA signs lists it. For a CA with a
// directory the revocation is on disk when Revoke returns nil; if writing
// fails, nothing changes and the error is returned.
func (ca *CA) Revoke(serial *big.Int, reason RevocationReason) error {
	if serial == nil || serial.Sign() <= 0 || serial.BitLen() > 159 {
		return errors.New("pki: Revoke: serial must be positive and at most 20 octets")
	}
	if _, ok := reasonNames[reason]; !ok || reason == ReasonRemoveFromCRL {
		return fmt.Errorf("%w: %d", ErrInvalidReason, reason)
	}
	hex := serial.Text(16)
	ca.mu.Lock()
	defer ca.mu.Unlock()
	for _, r := range ca.state.Revoked {
		if r.Serial == hex {
			return fmt.Errorf("%w: serial %s", ErrAlreadyRevoked, hex)
		}
	}
	next := ca.state
	next.Revoked = append(slices.Clip(ca.state.Revoked), revocationJSON{
		Serial: hex, RevokedAt: ca.cfg.Now().UTC().Truncate(time.Second), Reason: reason,
	})
	if err := ca.persist(next); err != nil {
		return err
	}
	ca.state = next
	ca.crl = nil // the next CRL request signs a new one
	return nil
}

// Revocations returns the CA's revocation list, oldest first.
func (ca *CA) Revocations() []Revocation {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	out := make([]Revocation, 0, len(ca.state.Revoked))
	for _, r := range ca.state.Revoked {
		n, _ := new(big.Int).SetString(r.Serial, 16) // validated on load and on Revoke
		out = append(out, Revocation{Serial: n, RevokedAt: r.RevokedAt, Reason: r.Reason})
	}
	return out
}

type signedCRL struct {
	der        []byte
	thisUpdate time.Time
	nextUpdate time.Time
}

// CRL returns the CA's current CRL, DER encoded. A new CRL, with the next
// CRL number, is signed after a revocation and once half of the current
// one's validity has passed; otherwise the last one is returned.
func (ca *CA) CRL() (der []byte, nextUpdate time.Time, err error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	crl, err := ca.currentCRL()
	if err != nil {
		return nil, time.Time{}, err
	}
	return crl.der, crl.nextUpdate, nil
}

func (ca *CA) currentCRL() (*signedCRL, error) {
	now := ca.cfg.Now()
	if ca.crl != nil && now.Before(ca.crl.thisUpdate.Add(ca.cfg.CRLValidity/2)) {
		return ca.crl, nil
	}
	next := ca.state
	next.CRLNumber = new(big.Int).Add(ca.state.CRLNumber, big.NewInt(1))
	// The number is persisted before the CRL is published, so a restart
	// never signs two different CRLs with one number.
	if err := ca.persist(next); err != nil {
		return nil, err
	}
	ca.state = next
	tmpl := &x509.RevocationList{
		Number:     next.CRLNumber,
		ThisUpdate: now,
		NextUpdate: now.Add(ca.cfg.CRLValidity),
	}
	for _, r := range next.Revoked {
		n, _ := new(big.Int).SetString(r.Serial, 16)
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: n, RevocationTime: r.RevokedAt, ReasonCode: int(r.Reason),
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign CRL: %w", err)
	}
	ca.crl = &signedCRL{der: der, thisUpdate: now, nextUpdate: tmpl.NextUpdate}
	return ca.crl, nil
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
		der, nextUpdate, err := ca.CRL()
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
