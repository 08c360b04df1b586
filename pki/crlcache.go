package pki

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied to zero [CRLCacheConfig] fields.
const (
	DefaultCRLFetchTimeout   = 5 * time.Second
	DefaultMaxCRLBytes       = 10 << 20
	DefaultMaxCRLEntries     = 1024
	DefaultCRLRefresh        = 5 * time.Minute
	DefaultCRLRetryAfterFail = 10 * time.Second
	DefaultCRLIdleTimeout    = 24 * time.Hour
	// crlClockSkew is how far in the future a CRL's thisUpdate may be.
	crlClockSkew = 5 * time.Minute
	// maxDPsPerCheck bounds how many distribution points one check tries.
	maxDPsPerCheck = 4
	// refreshWorkers is how many CRLs the background refresh fetches at once.
	refreshWorkers = 4
)

// ErrCRLCacheClosed is returned by Check after Close.
var ErrCRLCacheClosed = errors.New("pki: CRL cache closed")

// ErrRevocationUnknown is returned when no valid CRL could be had for a
// certificate: the distribution point did not answer, answered with an
// error, with garbage, with an oversized body, with a CRL not signed by the
// certificate's issuer, or with an expired CRL. Verification fails closed.
var ErrRevocationUnknown = errors.New("pki: revocation status unknown")

// ErrNoDistributionPoint is returned for a certificate that names no
// http(s) CRL distribution point, so that its revocation cannot be checked.
var ErrNoDistributionPoint = errors.New("pki: certificate has no http(s) CRL distribution point")

// ErrRevoked matches (with errors.Is) every [*RevokedError].
var ErrRevoked = errors.New("pki: certificate revoked")

// RevokedError reports a certificate listed on its issuer's CRL.
type RevokedError struct {
	Serial    string // hexadecimal
	RevokedAt time.Time
	Reason    RevocationReason
	CRL       string // the distribution point it was listed at
}

// Error says which certificate was revoked, when, why, and per which CRL.
func (e *RevokedError) Error() string {
	return fmt.Sprintf("pki: certificate serial %s revoked at %s (%s), per CRL %s",
		e.Serial, e.RevokedAt.UTC().Format(time.RFC3339), e.Reason, e.CRL)
}

// Is makes errors.Is(err, ErrRevoked) true.
func (e *RevokedError) Is(target error) bool { return target == ErrRevoked }

// CRLCacheConfig configures a [CRLCache].
type CRLCacheConfig struct {
	// HTTPClient fetches CRLs. Default: a client with no proxy from the
	// environment, FetchTimeout as its timeout, and no redirects followed.
	HTTPClient *http.Client
	// FetchTimeout bounds one fetch. Default 5 s.
	FetchTimeout time.Duration
	// MaxCRLBytes is the largest CRL accepted. Default 10 MiB.
	MaxCRLBytes int64
	// MaxEntries bounds how many (distribution point, issuer) pairs are
	// cached. Default 1024.
	MaxEntries int
	// RefreshInterval is how often cached CRLs are fetched again in the
	// background, so a revocation takes effect before the cached CRL's
	// nextUpdate. Default 5 minutes.
	RefreshInterval time.Duration
	// RetryAfterFailure is how long a failed fetch is remembered: handshakes
	// during that time fail at once instead of each fetching again.
	// Default 10 s.
	RetryAfterFailure time.Duration
	// IdleTimeout drops a cached CRL that no verification has used for
	// this long, so the background refresh does not fetch it forever.
	// Default 24 hours.
	IdleTimeout time.Duration
	// Logger receives refresh failures. Default slog.Default().
	Logger *slog.Logger
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// CRLCache fetches CRLs from certificates' distribution points, checks them
// against the certificate's issuer (signature, issuer name, key identifier,
// no unsupported critical extension, no delta or partitioned CRL), and
// keeps each until its nextUpdate, fetching it again every RefreshInterval
// in the background. Concurrent checks needing the same CRL share one
// fetch. A CRL whose number is lower than the highest seen from its issuer
// is refused, so a replayed old CRL cannot undo a revocation the cache has
// seen; a process that has seen none accepts any CRL still within its
// validity, so a CA's CRLValidity bounds that window. It is safe for
// concurrent use; Close stops the background refresh and cancels fetches.
type CRLCache struct {
	cfg          CRLCacheConfig
	ownTransport *http.Transport // closed on Close; nil for a caller's client

	mu      sync.Mutex
	entries map[string]*crlEntry
	highest map[[32]byte]*big.Int // highest CRL number seen per issuer

	ctx    context.Context // canceled by Close; bounds background fetches
	cancel context.CancelFunc
	done   chan struct{}
}

// crlEntry is the cache slot of one distribution point for one issuer.
type crlEntry struct {
	key    string
	url    string
	issuer *x509.Certificate

	fetchMu  sync.Mutex // held while fetching, so fetches are not duplicated
	state    atomic.Pointer[crlState]
	failure  atomic.Pointer[crlFailure]
	lastUsed atomic.Int64 // unix nanoseconds, for eviction
}

// crlState is what is kept of a validated CRL: no raw bytes, no copies.
type crlState struct {
	number     *big.Int
	nextUpdate time.Time
	revoked    map[string]revokedEntry // by serial, hexadecimal
}

type revokedEntry struct {
	at     time.Time
	reason RevocationReason
}

type crlFailure struct {
	err error
	at  time.Time
}

// NewCRLCache returns a CRLCache and starts its background refresh.
func NewCRLCache(cfg CRLCacheConfig) (*CRLCache, error) {
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = DefaultCRLFetchTimeout
	}
	if cfg.MaxCRLBytes == 0 {
		cfg.MaxCRLBytes = DefaultMaxCRLBytes
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultMaxCRLEntries
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = DefaultCRLRefresh
	}
	if cfg.RetryAfterFailure == 0 {
		cfg.RetryAfterFailure = DefaultCRLRetryAfterFail
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultCRLIdleTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.FetchTimeout < 0:
		return nil, errors.New("pki: CRLCacheConfig.FetchTimeout must be positive")
	case cfg.MaxCRLBytes < 0:
		return nil, errors.New("pki: CRLCacheConfig.MaxCRLBytes must be positive")
	case cfg.MaxEntries < 0:
		return nil, errors.New("pki: CRLCacheConfig.MaxEntries must be positive")
	case cfg.RefreshInterval < 0:
		return nil, errors.New("pki: CRLCacheConfig.RefreshInterval must be positive")
	case cfg.RetryAfterFailure < 0:
		return nil, errors.New("pki: CRLCacheConfig.RetryAfterFailure must be positive")
	case cfg.IdleTimeout < 0:
		return nil, errors.New("pki: CRLCacheConfig.IdleTimeout must be positive")
	}
	var own *http.Transport
	if cfg.HTTPClient == nil {
		own = http.DefaultTransport.(*http.Transport).Clone()
		own.Proxy = nil
		cfg.HTTPClient = &http.Client{
			Transport: own,
			Timeout:   cfg.FetchTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a 3xx is an error, not a hop
			},
		}
	}
	c := &CRLCache{
		cfg:          cfg,
		ownTransport: own,
		entries:      make(map[string]*crlEntry),
		highest:      make(map[[32]byte]*big.Int),
		done:         make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.refreshLoop()
	return c, nil
}

// Close stops the background refresh and waits for it to end.
func (c *CRLCache) Close() error {
	c.cancel()
	<-c.done
	if c.ownTransport != nil {
		c.ownTransport.CloseIdleConnections()
	}
	return nil
}

// Check reports whether cert, issued by issuer, is revoked according to
// the CRL at one of its http(s) distribution points. It returns nil when a
// valid CRL signed by issuer does not list cert, a [*RevokedError] when it
// does, and an error wrapping [ErrRevocationUnknown] or
// [ErrNoDistributionPoint] when no valid CRL can be had. The caller must
// have verified that issuer signed cert.
func (c *CRLCache) Check(ctx context.Context, cert, issuer *x509.Certificate) error {
	if c.ctx.Err() != nil {
		return ErrCRLCacheClosed
	}
	if cert.SerialNumber == nil || cert.SerialNumber.Sign() <= 0 {
		return errors.New("pki: certificate serial number is not positive")
	}
	// One deadline for the whole check, however many distribution points
	// it tries, and canceled by Close.
	ctx, cancel := context.WithTimeout(ctx, c.cfg.FetchTimeout)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()

	var errs []error
	tried := 0
	for _, dp := range cert.CRLDistributionPoints {
		if !isHTTPURL(dp) {
			continue
		}
		if tried == maxDPsPerCheck {
			break
		}
		tried++
		st, err := c.current(ctx, dp, issuer)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if e, ok := st.revoked[cert.SerialNumber.Text(16)]; ok {
			return &RevokedError{Serial: cert.SerialNumber.Text(16), RevokedAt: e.at, Reason: e.reason, CRL: dp}
		}
		return nil
	}
	if tried == 0 {
		return ErrNoDistributionPoint
	}
	return fmt.Errorf("%w: %w", ErrRevocationUnknown, errors.Join(errs...))
}

// Refresh fetches every cached CRL again now, a few at a time, and forgets
// those no verification has used for IdleTimeout. A CRL that fails to
// refresh stays in use until its nextUpdate. It returns the failures,
// joined.
func (c *CRLCache) Refresh(ctx context.Context) error {
	idleBefore := c.cfg.Now().Add(-c.cfg.IdleTimeout).UnixNano()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, refreshWorkers)
	)
	for _, e := range c.snapshot() {
		if e.lastUsed.Load() < idleBefore {
			c.forget(e)
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.fetch(ctx, e); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *CRLCache) refreshLoop() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			if err := c.Refresh(c.ctx); err != nil && c.ctx.Err() == nil {
				c.cfg.Logger.Warn("CRL refresh failed", "err", err)
			}
		}
	}
}

func (c *CRLCache) snapshot() []*crlEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*crlEntry, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, e)
	}
	return out
}

// forget drops e from the cache.
func (c *CRLCache) forget(e *crlEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[e.key] == e {
		delete(c.entries, e.key)
	}
}

// entry returns the cache slot for (dp, issuer), creating it if needed and
// evicting the least recently used slot that is not being fetched when the
// cache is full.
func (c *CRLCache) entry(dp string, issuer *x509.Certificate) *crlEntry {
	sum := sha256.Sum256(issuer.Raw)
	key := dp + "\x00" + string(sum[:])
	now := c.cfg.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		if len(c.entries) >= c.cfg.MaxEntries {
			var victim *crlEntry
			for _, v := range c.entries {
				if (victim == nil || v.lastUsed.Load() < victim.lastUsed.Load()) && v.fetchMu.TryLock() {
					if victim != nil {
						victim.fetchMu.Unlock()
					}
					victim = v
				}
			}
			if victim != nil {
				delete(c.entries, victim.key)
				victim.fetchMu.Unlock()
			}
		}
		e = &crlEntry{key: key, url: dp, issuer: issuer}
		c.entries[key] = e
	}
	e.lastUsed.Store(now)
	return e
}

// current returns a CRL for (dp, issuer) that is valid now, fetching it if
// the cache has none.
func (c *CRLCache) current(ctx context.Context, dp string, issuer *x509.Certificate) (*crlState, error) {
	e := c.entry(dp, issuer)
	if st := e.state.Load(); st != nil && c.fresh(st) {
		return st, nil
	}
	e.fetchMu.Lock()
	defer e.fetchMu.Unlock()
	if st := e.state.Load(); st != nil && c.fresh(st) {
		return st, nil // fetched while we waited
	}
	if f := e.failure.Load(); f != nil && c.cfg.Now().Sub(f.at) < c.cfg.RetryAfterFailure {
		return nil, fmt.Errorf("%w (failed %s ago; next try after %s)", f.err,
			c.cfg.Now().Sub(f.at).Round(time.Millisecond), c.cfg.RetryAfterFailure)
	}
	if err := c.fetchLocked(ctx, e); err != nil {
		return nil, err
	}
	return e.state.Load(), nil
}

// fresh reports whether st may be used now: before its nextUpdate.
func (c *CRLCache) fresh(st *crlState) bool {
	return c.cfg.Now().Before(st.nextUpdate)
}

func (c *CRLCache) fetch(ctx context.Context, e *crlEntry) error {
	e.fetchMu.Lock()
	defer e.fetchMu.Unlock()
	return c.fetchLocked(ctx, e)
}

// fetchLocked downloads and validates e's CRL and installs it. The caller
// holds e.fetchMu. A CRL with a lower number than the highest seen from
// its issuer is refused, so a replayed copy cannot roll revocations back.
func (c *CRLCache) fetchLocked(ctx context.Context, e *crlEntry) error {
	list, err := c.download(ctx, e.url, e.issuer)
	if err == nil {
		err = c.raiseHighest(e.issuer, list.Number)
		if err != nil {
			err = fmt.Errorf("pki: CRL %s: %w", e.url, err)
		}
	}
	if err != nil {
		e.failure.Store(&crlFailure{err: err, at: c.cfg.Now()})
		return err
	}
	st := &crlState{number: list.Number, nextUpdate: list.NextUpdate,
		revoked: make(map[string]revokedEntry, len(list.RevokedCertificateEntries))}
	for _, r := range list.RevokedCertificateEntries {
		st.revoked[r.SerialNumber.Text(16)] = revokedEntry{at: r.RevocationTime, reason: RevocationReason(r.ReasonCode)}
	}
	e.state.Store(st)
	e.failure.Store(nil)
	return nil
}

// raiseHighest records n as the issuer's highest CRL number, or fails if a
// higher one has been seen.
func (c *CRLCache) raiseHighest(issuer *x509.Certificate, n *big.Int) error {
	id := sha256.Sum256(issuer.Raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.highest[id]; ok {
		if n.Cmp(h) < 0 {
			return fmt.Errorf("CRL number %s is older than %s, already seen from this issuer", n, h)
		}
	} else if len(c.highest) >= c.cfg.MaxEntries {
		for k := range c.highest { // forget an arbitrary issuer: memory stays bounded
			delete(c.highest, k)
			break
		}
	}
	c.highest[id] = n
	return nil
}

// download fetches, bounds, parses and validates one CRL.
func (c *CRLCache) download(ctx context.Context, dp string, issuer *x509.Certificate) (*x509.RevocationList, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, dp, nil)
	if err != nil {
		return nil, fmt.Errorf("pki: CRL %s: %w", dp, err)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pki: CRL %s: fetch: %w", dp, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("pki: CRL %s: HTTP status %s", dp, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxCRLBytes+1))
	if err != nil {
		return nil, fmt.Errorf("pki: CRL %s: read: %w", dp, err)
	}
	if int64(len(body)) > c.cfg.MaxCRLBytes {
		return nil, fmt.Errorf("pki: CRL %s: larger than the limit of %d bytes", dp, c.cfg.MaxCRLBytes)
	}
	list, err := ParseCRL(body)
	if err != nil {
		return nil, fmt.Errorf("pki: CRL %s: %w", dp, err)
	}
	if err := validateCRL(list, issuer); err != nil {
		return nil, fmt.Errorf("pki: CRL %s: %w", dp, err)
	}
	now := c.cfg.Now()
	if !now.Before(list.NextUpdate) {
		return nil, fmt.Errorf("pki: CRL %s: expired at %s (nextUpdate)", dp, list.NextUpdate.UTC().Format(time.RFC3339))
	}
	if list.ThisUpdate.After(now.Add(crlClockSkew)) {
		return nil, fmt.Errorf("pki: CRL %s: thisUpdate %s is in the future", dp, list.ThisUpdate.UTC().Format(time.RFC3339))
	}
	return list, nil
}

// Extensions RFC 5280 defines for CRLs and their entries.
var (
	oidAuthorityKeyID    = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber         = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDistPoint  = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidReasonCode        = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidInvalidityDate    = asn1.ObjectIdentifier{2, 5, 29, 24}
)

// validateCRL checks that list is a complete CRL by issuer: signature,
// issuer name and key identifier, a CRL number and nextUpdate, and no
// extension that would change its meaning which this package does not
// implement. Go's parser accepts unknown critical extensions; RFC 5280
// section 5.2 says a CRL with one must not be used. A delta CRL or one
// scoped by an issuing distribution point lists only some revocations, so
// taking it for the full list could un-revoke a certificate: both are
// refused.
func validateCRL(list *x509.RevocationList, issuer *x509.Certificate) error {
	if !bytes.Equal(list.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("issuer name is not %s", issuer.Subject)
	}
	if len(list.AuthorityKeyId) > 0 && len(issuer.SubjectKeyId) > 0 && !bytes.Equal(list.AuthorityKeyId, issuer.SubjectKeyId) {
		return errors.New("authority key identifier does not match the issuer's key")
	}
	if err := list.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("not signed by %s: %w", issuer.Subject, err)
	}
	for _, ext := range list.Extensions {
		switch {
		case ext.Id.Equal(oidDeltaCRLIndicator):
			return errors.New("delta CRLs are not supported")
		case ext.Id.Equal(oidIssuingDistPoint):
			return errors.New("CRLs scoped by an issuing distribution point are not supported")
		case ext.Critical && !ext.Id.Equal(oidAuthorityKeyID) && !ext.Id.Equal(oidCRLNumber):
			return fmt.Errorf("unsupported critical extension %s", ext.Id)
		}
	}
	for _, r := range list.RevokedCertificateEntries {
		for _, ext := range r.Extensions {
			if ext.Critical && !ext.Id.Equal(oidReasonCode) && !ext.Id.Equal(oidInvalidityDate) {
				return fmt.Errorf("entry %s has unsupported critical extension %s", r.SerialNumber.Text(16), ext.Id)
			}
		}
	}
	if list.Number == nil {
		return errors.New("no CRL number")
	}
	if list.NextUpdate.IsZero() {
		return errors.New("no nextUpdate")
	}
	return nil
}

// ParseCRL parses a CRL in DER or PEM ("X509 CRL") form.
func ParseCRL(data []byte) (*x509.RevocationList, error) {
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "X509 CRL" {
			return nil, errors.New("not an X509 CRL PEM block")
		}
		data = block.Bytes
	}
	list, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("parse CRL: %w", err)
	}
	return list, nil
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
