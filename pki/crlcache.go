package pki

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	// crlClockSkew is how far in the future a CRL's thisUpdate may be.
	crlClockSkew = 5 * time.Minute
)

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

func (e *RevokedError) Error() string {
	return fmt.Sprintf("pki: certificate serial %s revoked at %s (%s), per CRL %s",
		e.Serial, e.RevokedAt.UTC().Format(time.RFC3339), e.Reason, e.CRL)
}

// Is makes errors.Is(err, ErrRevoked) true.
func (e *RevokedError) Is(target error) bool { return target == ErrRevoked }

// CRLCacheConfig configures a [CRLCache].
type CRLCacheConfig struct {
	// HTTPClient fetches CRLs. Default: a client with no proxy from the
	// environment and FetchTimeout as its timeout.
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
	// Logger receives refresh failures. Default slog.Default().
	Logger *slog.Logger
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// CRLCache fetches CRLs from certificates' distribution points, checks their
// signature against the certificate's issuer, and keeps each until its
// nextUpdate, fetching it again every RefreshInterval in the background.
// Fetches of one distribution point are never made concurrently. It is safe
// for concurrent use; Close stops the background refresh.
type CRLCache struct {
	cfg CRLCacheConfig

	mu      sync.Mutex
	entries map[string]*crlEntry

	ctx    context.Context // canceled by Close; bounds background fetches
	cancel context.CancelFunc
	done   chan struct{}
}

// crlEntry is the cache slot of one distribution point for one issuer.
type crlEntry struct {
	url    string
	issuer *x509.Certificate

	fetchMu  sync.Mutex // held while fetching, so fetches are not duplicated
	state    atomic.Pointer[crlState]
	failure  atomic.Pointer[crlFailure]
	lastUsed atomic.Int64 // unix nanoseconds, for eviction
}

type crlState struct {
	list    *x509.RevocationList
	revoked map[string]x509.RevocationListEntry // by serial bytes
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
	}
	if cfg.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		cfg.HTTPClient = &http.Client{Transport: tr, Timeout: cfg.FetchTimeout}
	}
	c := &CRLCache{
		cfg:     cfg,
		entries: make(map[string]*crlEntry),
		done:    make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.refreshLoop()
	return c, nil
}

// Close stops the background refresh and waits for it to end.
func (c *CRLCache) Close() error {
	c.cancel()
	<-c.done
	c.cfg.HTTPClient.CloseIdleConnections()
	return nil
}

// Check reports whether cert, issued by issuer, is revoked according to
// the CRL at one of its http(s) distribution points. It returns nil when a
// valid CRL signed by issuer does not list cert, a [*RevokedError] when it
// does, and an error wrapping [ErrRevocationUnknown] or
// [ErrNoDistributionPoint] when no valid CRL can be had. The caller must
// have verified that issuer signed cert.
func (c *CRLCache) Check(ctx context.Context, cert, issuer *x509.Certificate) error {
	var errs []error
	tried := 0
	for _, dp := range cert.CRLDistributionPoints {
		if !isHTTPURL(dp) {
			continue
		}
		tried++
		st, err := c.current(ctx, dp, issuer)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if e, ok := st.revoked[string(cert.SerialNumber.Bytes())]; ok {
			return &RevokedError{Serial: cert.SerialNumber.Text(16), RevokedAt: e.RevocationTime,
				Reason: RevocationReason(e.ReasonCode), CRL: dp}
		}
		return nil
	}
	if tried == 0 {
		return ErrNoDistributionPoint
	}
	return fmt.Errorf("%w: %w", ErrRevocationUnknown, errors.Join(errs...))
}

// Refresh fetches every cached CRL again now. A CRL that fails to refresh
// stays in use until its nextUpdate. It returns the failures, joined.
func (c *CRLCache) Refresh(ctx context.Context) error {
	var errs []error
	for _, e := range c.snapshot() {
		if err := c.fetch(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
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

// entry returns the cache slot for (dp, issuer), creating it if needed and
// evicting the least recently used slot when the cache is full.
func (c *CRLCache) entry(dp string, issuer *x509.Certificate) *crlEntry {
	sum := sha256.Sum256(issuer.Raw)
	key := dp + "\x00" + string(sum[:])
	now := c.cfg.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		if len(c.entries) >= c.cfg.MaxEntries {
			var oldestKey string
			oldest := int64(1<<63 - 1)
			for k, v := range c.entries {
				if t := v.lastUsed.Load(); t < oldest {
					oldest, oldestKey = t, k
				}
			}
			delete(c.entries, oldestKey)
		}
		e = &crlEntry{url: dp, issuer: issuer}
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
		return nil, f.err
	}
	if err := c.fetchLocked(ctx, e); err != nil {
		return nil, err
	}
	return e.state.Load(), nil
}

// fresh reports whether st may be used now: before its nextUpdate.
func (c *CRLCache) fresh(st *crlState) bool {
	return c.cfg.Now().Before(st.list.NextUpdate)
}

func (c *CRLCache) fetch(ctx context.Context, e *crlEntry) error {
	e.fetchMu.Lock()
	defer e.fetchMu.Unlock()
	return c.fetchLocked(ctx, e)
}

// fetchLocked downloads and validates e's CRL and installs it. The caller
// holds e.fetchMu. A CRL older than the one installed (a lower CRL number)
// is refused, so a stale copy cannot roll revocations back.
func (c *CRLCache) fetchLocked(ctx context.Context, e *crlEntry) error {
	list, err := c.download(ctx, e.url, e.issuer)
	if err == nil {
		if old := e.state.Load(); old != nil && old.list.Number != nil && list.Number != nil &&
			list.Number.Cmp(old.list.Number) < 0 {
			err = fmt.Errorf("pki: CRL %s: number %s is older than the cached %s", e.url, list.Number, old.list.Number)
		}
	}
	if err != nil {
		e.failure.Store(&crlFailure{err: err, at: c.cfg.Now()})
		return err
	}
	st := &crlState{list: list, revoked: make(map[string]x509.RevocationListEntry, len(list.RevokedCertificateEntries))}
	for _, r := range list.RevokedCertificateEntries {
		st.revoked[string(r.SerialNumber.Bytes())] = r
	}
	e.state.Store(st)
	e.failure.Store(nil)
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
	if err := list.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("pki: CRL %s: not signed by %s: %w", dp, issuer.Subject, err)
	}
	now := c.cfg.Now()
	if list.NextUpdate.IsZero() {
		return nil, fmt.Errorf("pki: CRL %s: no nextUpdate", dp)
	}
	if !now.Before(list.NextUpdate) {
		return nil, fmt.Errorf("pki: CRL %s: expired at %s (nextUpdate)", dp, list.NextUpdate.UTC().Format(time.RFC3339))
	}
	if list.ThisUpdate.After(now.Add(crlClockSkew)) {
		return nil, fmt.Errorf("pki: CRL %s: thisUpdate %s is in the future", dp, list.ThisUpdate.UTC().Format(time.RFC3339))
	}
	return list, nil
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
