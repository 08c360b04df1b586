package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
	"github.com/parleyuc/parley/store"
)

// adminTokenFile is the data directory's file holding the service admin's
// bearer token (mode 0600), made on first run.
const adminTokenFile = "admin-token"

// adminAPI is the management API, over HTTPS with the admin bearer token
// (Authorization: Bearer <token>), the service admin's, for every tenant;
// or, with identity providers configured ("oidc"), an access token of
// theirs whose claims make its user a tenant admin
// (auth.Identity.TenantAdmin), for that tenant alone (tenants.go: another
// tenant's users, meetings, sessions and certificates, the tenants, the
// federation policy and partners and the CA's list of revocations are
// refused with 403; a tenant admin revokes their own users' certificates); a
// provider's token of anyone else is refused with 403. Once a provider is configured the
// static token works only if "admin_token_with_oidc" keeps it. Every
// body is JSON:
//
//	GET    /admin/v1/tenants                    the tenants: {"domain","name"}
//	POST   /admin/v1/tenants                    {"domain":"acme.test","name":"Acme"} (service admin)
//	DELETE /admin/v1/tenants/{domain}           once it has no users (service admin)
//	GET    /admin/v1/tenants/{domain}/federation   the tenant's own federation policy (edge.Federation), besides the service's
//	POST   /admin/v1/tenants/{domain}/federation   {"open":false,"allow":[...],"block":[...],"forget":[...]} (the tenant's admin too)
//	GET    /admin/v1/users                      the users (never their credentials)
//	POST   /admin/v1/users                      {"uri","display_name","password","enabled","meeting_license","password_sign_in",...}
//	GET    /admin/v1/users/{uri}
//	PATCH  /admin/v1/users/{uri}                any of display_name, password, enabled, meeting_license, password_sign_in, title, company, email
//	DELETE /admin/v1/users/{uri}
//	GET    /admin/v1/licenses                   who holds a meeting license
//	GET    /admin/v1/federation                 the federation policy (edge.Federation)
//	POST   /admin/v1/federation                 {"open":true,"allow":[...],"block":[...],"forget":[...]}
//	GET    /admin/v1/federation/partners        the partners: the config's and the admin's (service admin)
//	POST   /admin/v1/federation/partners        {"domain":"partner.test","edge":"edge.partner.test:5061","ca":"<PEM>"} (service admin)
//	DELETE /admin/v1/federation/partners/{domain}   an admin-added partner, blocked at once (service admin)
//	POST   /admin/v1/certificates               {"uri":"sip:gateway@example.test","days":365}: a client certificate and its key
//	GET    /admin/v1/certificates/revoked       the CA's revocations
//	POST   /admin/v1/certificates/{serial}/revoke   {"reason":"keyCompromise","certificate":"<PEM>"} (serial in hex; a tenant
//	                                            admin gives the certificate, which must name a user of their tenant)
//	GET    /admin/v1/meetings?organizer=URI     a user's meetings
//	GET    /admin/v1/meetings/{id}              a meeting and who is in it now
//	DELETE /admin/v1/meetings/{id}              ends it for everyone and deletes it
//	GET    /admin/v1/sessions                   who is signed in, over which connection
//	DELETE /admin/v1/sessions/{uri}             signs the user out: closes their connections
//
// A user disabled, deleted or given a new password is signed out at once.
// Directory changes are kept in the directory's store (the data
// directory's directory.json with -store memory) before they are
// answered; one that cannot be kept is not made (500, or 503 with
// Retry-After while Redis cannot be reached).
type adminAPI struct {
	tokenHash [sha256.Size]byte
	// staticTokenOff refuses the static token: identity providers sign
	// the admins in.
	staticTokenOff bool
	directory      auth.DirectoryStore
	authn          *auth.Authenticator
	federation     *edge.Federation
	ca             *pki.CA
	crls           *pki.CRLCache // this server's, refreshed on a revocation
	meetings       conference.MeetingStore
	focus          *conference.Focus
	logger         *slog.Logger
	// withdraw ends what a user holds on this front end (see run);
	// withdrawals, in a pool, tells the other front ends to do the same.
	// Nil withdrawals: a server of its own.
	withdraw    func(aor string) int
	withdrawals presence.Feed
	// revokedFeed, in a pool, tells the other front ends of a
	// revocation.
	revokedFeed presence.Feed
	// holders are what hold TLS connections opened with a client
	// certificate (the SIP listeners, the relay's TURN over TLS, the
	// edge), closed when it is revoked.
	holders []certificateHolder
	// onTenants follows a change of the tenants through the admin API,
	// with every tenant's domain. Nil: nothing follows.
	onTenants func(domains []string)
	// onFederation follows a change of the federation policy: what a
	// domain no longer allowed holds ends. Nil: nothing follows.
	onFederation func()
	// partners are the federation partners, the config's and the
	// admin's (partners.go).
	partners *partnerSet
	// tenantPolicies are the tenants' own federation policies
	// (tenantfederation.go).
	tenantPolicies *tenantPolicies
	// adminChanges, in a pool, tells the other front ends of a change of
	// the tenants or the federation (announce). Nil: a server of its own.
	adminChanges presence.Feed
	// failures makes a source that sent wrong tokens wait (429 with
	// Retry-After), each source on its own. Nil: made by handler.
	failures *auth.Backoff

	mu sync.Mutex // a user read, changed and written back, one at a time
}

// loadAdminToken reads the admin token from the data directory, making
// one on first run. A token file others may read is refused, like the CA
// key.
func loadAdminToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, adminTokenFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		token := rand.Text()
		if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			return "", err
		}
		return token, nil
	}
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(path); err != nil {
		return "", err
	} else if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is mode %04o: others may read the admin token (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	token := strings.TrimSpace(string(data))
	if len(token) < 20 {
		return "", fmt.Errorf("%s: the admin token is shorter than 20 characters", path)
	}
	return token, nil
}

func (a *adminAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/users", a.listUsers)
	mux.HandleFunc("POST /admin/v1/users", a.createUser)
	mux.HandleFunc("GET /admin/v1/users/{uri}", a.getUser)
	mux.HandleFunc("PATCH /admin/v1/users/{uri}", a.patchUser)
	mux.HandleFunc("DELETE /admin/v1/users/{uri}", a.deleteUser)
	mux.HandleFunc("GET /admin/v1/licenses", a.licenses)
	mux.HandleFunc("GET /admin/v1/tenants", a.listTenants)
	mux.Handle("POST /admin/v1/tenants", serviceOnly(http.HandlerFunc(a.createTenant)))
	mux.Handle("DELETE /admin/v1/tenants/{domain}", serviceOnly(http.HandlerFunc(a.deleteTenant)))
	mux.HandleFunc("/admin/v1/tenants/{domain}/federation", a.tenantFederation)
	mux.Handle("/admin/v1/federation", serviceOnly(a.federationHandler()))
	mux.Handle("GET /admin/v1/federation/partners", serviceOnly(http.HandlerFunc(a.listPartners)))
	mux.Handle("POST /admin/v1/federation/partners", serviceOnly(http.HandlerFunc(a.addPartner)))
	mux.Handle("DELETE /admin/v1/federation/partners/{domain}", serviceOnly(http.HandlerFunc(a.deletePartner)))
	mux.HandleFunc("POST /admin/v1/certificates", a.issueCertificate)
	mux.Handle("GET /admin/v1/certificates/revoked", serviceOnly(http.HandlerFunc(a.revoked)))
	mux.HandleFunc("POST /admin/v1/certificates/{serial}/revoke", a.revoke)
	mux.HandleFunc("GET /admin/v1/meetings", a.listMeetings)
	mux.HandleFunc("GET /admin/v1/meetings/{id}", a.getMeeting)
	mux.HandleFunc("DELETE /admin/v1/meetings/{id}", a.endMeeting)
	mux.HandleFunc("GET /admin/v1/sessions", a.sessions)
	mux.HandleFunc("DELETE /admin/v1/sessions/{uri}", a.endSessions)
	if a.failures == nil {
		a.failures, _ = auth.NewBackoff(auth.BackoffConfig{Free: adminFreeFailures}) // valid settings
	}
	return a.requireToken(mux)
}

// adminFreeFailures is how many wrong admin tokens a source may send
// before it must wait (1 s, doubling up to 5 minutes).
const adminFreeFailures = 5

// requireToken lets through requests bearing the admin token (RFC 6750),
// compared in constant time. A source that sent more than a few wrong
// tokens waits, answered 429 with Retry-After whatever it sends; the right
// token from another source is not slowed, and only the source's own
// success clears its failures.
func (a *adminAPI) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="parley-admin"`)
			jsonError(w, http.StatusUnauthorized, "the admin API needs the admin bearer token")
			return
		}
		source := r.RemoteAddr
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			source = auth.SourceKey(ap.Addr())
		}
		if wait := a.failures.Wait(source); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			jsonError(w, http.StatusTooManyRequests, "too many wrong admin tokens; retry later")
			return
		}
		token = strings.TrimSpace(token)
		sum := sha256.Sum256([]byte(token))
		static := !a.staticTokenOff && subtle.ConstantTimeCompare(sum[:], a.tokenHash[:]) == 1
		var admin *auth.Identity
		if !static && a.authn != nil && strings.Count(token, ".") == 2 { // a JWT: a provider's access token
			id, err := a.authn.VerifyBearer(r.Context(), token)
			if errors.Is(err, auth.ErrProviderUnreachable) {
				a.logger.Warn("admin API: provider token not checked", "remote", r.RemoteAddr, "err", err)
				w.Header().Set("Retry-After", "5")
				jsonError(w, http.StatusServiceUnavailable, "the identity provider cannot be reached; retry later")
				return
			}
			if err != nil {
				a.logger.Info("admin API: provider token refused", "remote", r.RemoteAddr, "err", err)
			} else if !id.TenantAdmin || id.Tenant == "" {
				a.failures.Succeed(source) // a valid token: not guessing
				w.Header().Set("WWW-Authenticate", `Bearer realm="parley-admin", error="insufficient_scope"`)
				a.logger.Warn("admin API: token of a user who is not a tenant admin", "user", id.URI, "remote", r.RemoteAddr)
				jsonError(w, http.StatusForbidden, id.URI+" is not a tenant admin")
				return
			} else {
				admin = id
			}
		}
		if !static && admin == nil {
			a.failures.Fail(source)
			w.Header().Set("WWW-Authenticate", `Bearer realm="parley-admin", error="invalid_token"`)
			a.logger.Warn("admin API: wrong token", "remote", r.RemoteAddr)
			jsonError(w, http.StatusUnauthorized, "wrong admin token")
			return
		}
		a.failures.Succeed(source)
		scope := adminScope{} // the static token: the service admin
		if admin != nil {
			scope.tenant = admin.Tenant
			a.logger.Info("admin API: request by a tenant admin", "user", admin.URI, "tenant", admin.Tenant, "method", r.Method, "path", r.URL.Path)
		}
		next.ServeHTTP(w, withScope(r, scope))
	})
}

// adminUser is a user as the admin API shows and takes it. Password is
// write-only.
type adminUser struct {
	URI            string `json:"uri"`
	DisplayName    string `json:"display_name"`
	Enabled        bool   `json:"enabled"`
	MeetingLicense bool   `json:"meeting_license"`
	// PasswordSignIn allows Digest for this account although the tenant
	// signs in with its identity provider: a legacy phone, a gateway.
	PasswordSignIn bool   `json:"password_sign_in"`
	Title          string `json:"title,omitempty"`
	Company        string `json:"company,omitempty"`
	Email          string `json:"email,omitempty"`
	HasPassword    bool   `json:"has_password"`
	Password       string `json:"password,omitempty"`
}

func toAdminUser(u auth.User) adminUser {
	return adminUser{URI: u.URI, DisplayName: u.DisplayName, Enabled: u.Enabled, MeetingLicense: u.MeetingLicense, PasswordSignIn: u.PasswordSignIn,
		Title: u.Title, Company: u.Company, Email: u.Email, HasPassword: u.Credentials.PBKDF2 != ""}
}

func (a *adminAPI) listUsers(w http.ResponseWriter, r *http.Request) {
	users, err := a.directory.ListUsers(r.Context())
	if !a.stored(w, err) {
		return
	}
	out := []adminUser{}
	for _, u := range visibleUsers(r, users) {
		out = append(out, toAdminUser(u))
	}
	writeJSON(w, http.StatusOK, out)
}

// user finds the {uri} path value's user, answering 400 or 404 if it
// cannot.
func (a *adminAPI) user(w http.ResponseWriter, r *http.Request) (*auth.User, bool) {
	aor, ok := aorField(w, "uri", r.PathValue("uri"))
	if !ok || !mayAdminister(w, r, aor, domainOf(aor)) {
		return nil, false
	}
	u, err := a.directory.User(r.Context(), aor)
	if err != nil {
		jsonError(w, http.StatusNotFound, "no user "+aor)
		return nil, false
	}
	return u, true
}

func (a *adminAPI) getUser(w http.ResponseWriter, r *http.Request) {
	if u, ok := a.user(w, r); ok {
		writeJSON(w, http.StatusOK, toAdminUser(*u))
	}
}

// signOut ends what aor holds here (connections, meeting sockets, relay
// allocations and credentials) and, in a pool, has every other front end
// end theirs (followWithdrawals); it returns how many were ended here.
func (a *adminAPI) signOut(ctx context.Context, aor string) int {
	n := a.withdraw(aor)
	if a.withdrawals != nil {
		if err := a.withdrawals.Announce(ctx, aor); err != nil {
			// The others' next check of the user's standing refuses the
			// user anyway (the directory is shared); only the prompt
			// closing of their connections is lost.
			a.logger.Error("admin API: the pool was not told of a sign-out", "user", aor, "err", err)
		}
	}
	return n
}

// stored answers a directory store's error, if any: a user of a tenant
// that does not exist 400, a store that cannot be reached (Redis) 503
// with Retry-After, any other failure 500 (the change was not kept).
func (a *adminAPI) stored(w http.ResponseWriter, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, auth.ErrUnknownTenant):
		jsonError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrRedis):
		a.logger.Error("admin API: the directory's store failed", "err", err)
		w.Header().Set("Retry-After", "5")
		jsonError(w, http.StatusServiceUnavailable, "the directory's store cannot be reached; nothing changed, try again")
	default:
		a.logger.Error("admin API: directory change not kept", "err", err)
		jsonError(w, http.StatusInternalServerError, "the directory could not be saved; nothing changed")
	}
	return false
}

func (a *adminAPI) createUser(w http.ResponseWriter, r *http.Request) {
	var in adminUser
	if !decodeBody(w, r, &in) {
		return
	}
	aor, ok := aorField(w, "uri", in.URI)
	if !ok || !mayAdminister(w, r, aor, domainOf(aor)) {
		return
	}
	u := auth.User{URI: aor, DisplayName: in.DisplayName, Enabled: in.Enabled, MeetingLicense: in.MeetingLicense,
		PasswordSignIn: in.PasswordSignIn, Title: in.Title, Company: in.Company, Email: in.Email}
	if in.Password != "" {
		if err := u.SetPassword(in.Password); err != nil {
			jsonError(w, http.StatusBadRequest, "password: "+err.Error())
			return
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.directory.User(r.Context(), aor); err == nil {
		jsonError(w, http.StatusConflict, aor+" exists; PATCH it")
		return
	}
	if _, err := auth.NormalizeUser(u); err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !a.stored(w, a.directory.SaveUser(r.Context(), u)) {
		return
	}
	a.logger.Info("admin API: user created", "user", aor)
	created, _ := a.directory.User(r.Context(), aor)
	writeJSON(w, http.StatusCreated, toAdminUser(*created))
}

// userPatch is the body of PATCH /admin/v1/users/{uri}: absent fields
// change nothing.
type userPatch struct {
	DisplayName    *string `json:"display_name"`
	Password       *string `json:"password"`
	Enabled        *bool   `json:"enabled"`
	MeetingLicense *bool   `json:"meeting_license"`
	PasswordSignIn *bool   `json:"password_sign_in"`
	Title          *string `json:"title"`
	Company        *string `json:"company"`
	Email          *string `json:"email"`
}

func (a *adminAPI) patchUser(w http.ResponseWriter, r *http.Request) {
	var p userPatch
	if !decodeBody(w, r, &p) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old, ok := a.user(w, r)
	if !ok {
		return
	}
	u := *old
	for _, f := range []struct {
		from *string
		to   *string
	}{{p.DisplayName, &u.DisplayName}, {p.Title, &u.Title}, {p.Company, &u.Company}, {p.Email, &u.Email}} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
	if p.Enabled != nil {
		u.Enabled = *p.Enabled
	}
	if p.MeetingLicense != nil {
		u.MeetingLicense = *p.MeetingLicense
	}
	if p.PasswordSignIn != nil {
		u.PasswordSignIn = *p.PasswordSignIn
	}
	if p.Password != nil {
		if err := u.SetPassword(*p.Password); err != nil {
			jsonError(w, http.StatusBadRequest, "password: "+err.Error())
			return
		}
	}
	if !a.stored(w, a.directory.SaveUser(r.Context(), u)) {
		return
	}
	// A disabled account, or one whose password changed, keeps no session
	// made with the old standing.
	signedOut := 0
	if !u.Enabled || p.Password != nil || (old.PasswordSignIn && !u.PasswordSignIn) {
		signedOut = a.signOut(r.Context(), u.URI)
	}
	a.logger.Info("admin API: user changed", "user", u.URI, "enabled", u.Enabled, "meeting_license", u.MeetingLicense,
		"password_changed", p.Password != nil, "signed_out", signedOut)
	writeJSON(w, http.StatusOK, toAdminUser(u))
}

func (a *adminAPI) deleteUser(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	old, ok := a.user(w, r)
	if !ok {
		return
	}
	if err := a.directory.RemoveUser(r.Context(), old.URI); errors.Is(err, auth.ErrUnknownUser) {
		jsonError(w, http.StatusNotFound, err.Error())
		return
	} else if !a.stored(w, err) {
		return
	}
	n := a.signOut(r.Context(), old.URI)
	a.logger.Info("admin API: user deleted", "user", old.URI, "signed_out", n)
	w.WriteHeader(http.StatusNoContent)
}

func (a *adminAPI) licenses(w http.ResponseWriter, r *http.Request) {
	users, err := a.directory.ListUsers(r.Context())
	if !a.stored(w, err) {
		return
	}
	out := struct {
		Meeting []string `json:"meeting"`
	}{Meeting: []string{}}
	for _, u := range visibleUsers(r, users) {
		if u.MeetingLicense {
			out.Meeting = append(out.Meeting, u.URI)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// issueCertificate issues a client certificate for a user of the
// directory (a PSTN gateway, a device that signs in with a certificate)
// and returns it with its private key, which the server does not keep.
func (a *adminAPI) issueCertificate(w http.ResponseWriter, r *http.Request) {
	var in struct {
		URI  string `json:"uri"`
		Days int    `json:"days"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	aor, ok := aorField(w, "uri", in.URI)
	if !ok || !mayAdminister(w, r, aor, domainOf(aor)) {
		return
	}
	if _, err := a.directory.User(r.Context(), aor); err != nil {
		jsonError(w, http.StatusNotFound, "no user "+aor+": certificates are for the directory's users")
		return
	}
	if in.Days < 0 || in.Days > 825 {
		jsonError(w, http.StatusBadRequest, "days: from 1 to 825 (0: the default, 365)")
		return
	}
	cert, err := a.ca.IssueClient(pki.ClientCertRequest{SIPURI: aor, Validity: time.Duration(in.Days) * 24 * time.Hour})
	if err != nil {
		a.logger.Error("admin API: certificate not issued", "user", aor, "err", err)
		jsonError(w, http.StatusInternalServerError, "certificate not issued: "+err.Error())
		return
	}
	key, err := pki.MarshalKeyPEM(cert.Key)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.logger.Info("admin API: certificate issued", "user", aor, "serial", cert.Leaf.SerialNumber.Text(16))
	writeJSON(w, http.StatusCreated, map[string]any{
		"serial": cert.Leaf.SerialNumber.Text(16), "not_after": cert.Leaf.NotAfter,
		"certificate": string(pki.EncodeCertPEM(cert.Leaf)), "private_key": string(key),
	})
}

type revocationJSON struct {
	Serial    string    `json:"serial"`
	RevokedAt time.Time `json:"revoked_at"`
	Reason    string    `json:"reason"`
}

func (a *adminAPI) revoked(w http.ResponseWriter, r *http.Request) {
	list, err := a.ca.Revocations(r.Context())
	if err != nil {
		a.logger.Error("admin API: revocations unreadable", "err", err)
		jsonError(w, http.StatusServiceUnavailable, "the revocations cannot be read; try again")
		return
	}
	out := []revocationJSON{}
	for _, rv := range list {
		out = append(out, revocationJSON{Serial: rv.Serial.Text(16), RevokedAt: rv.RevokedAt, Reason: rv.Reason.String()})
	}
	writeJSON(w, http.StatusOK, out)
}

// revoke puts a certificate on the CA's CRL: this server refuses it from
// the next handshake on and closes the connections it opened; in a pool,
// every other front end does the same as soon as it hears of it. The
// service admin revokes any serial; a tenant admin revokes a user's
// certificate of their own tenant, which they give (the CA keeps no
// record of what it issued: the certificate, signed by the CA, says whose
// it is).
func (a *adminAPI) revoke(w http.ResponseWriter, r *http.Request) {
	serial, ok := new(big.Int).SetString(r.PathValue("serial"), 16)
	if !ok || serial.Sign() <= 0 {
		jsonError(w, http.StatusBadRequest, "serial: want the certificate's serial number in hexadecimal")
		return
	}
	var in struct {
		Reason      string `json:"reason"`
		Certificate string `json:"certificate"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	if in.Certificate != "" || scopeOf(r).tenant != "" {
		subject, ok := a.certificateSubject(w, in.Certificate, serial)
		if !ok || !mayAdminister(w, r, "the certificate of "+subject, domainOf(subject)) {
			return
		}
	}
	reason := pki.ReasonUnspecified
	if in.Reason != "" {
		var err error
		if reason, err = pki.ParseRevocationReason(in.Reason); err != nil {
			jsonError(w, http.StatusBadRequest, "reason: want an RFC 5280 reason name, such as keyCompromise or superseded")
			return
		}
	}
	switch err := a.ca.Revoke(r.Context(), serial, reason); {
	case errors.Is(err, pki.ErrAlreadyRevoked):
		jsonError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, pki.ErrInvalidReason):
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		a.logger.Error("admin API: revocation not stored", "serial", serial.Text(16), "err", err)
		jsonError(w, http.StatusServiceUnavailable, "the revocation was not stored; try again")
		return
	}
	if err := a.crls.Refresh(r.Context()); err != nil {
		a.logger.Warn("admin API: CRL cache not refreshed", "err", err)
	}
	a.closeRevoked(serial.Text(16))
	if a.revokedFeed != nil {
		if err := a.revokedFeed.Announce(r.Context(), serial.Text(16)); err != nil {
			// The others refuse it at their next CRL refresh
			// (pki.DefaultCRLRefresh) instead.
			a.logger.Error("admin API: the pool was not told of a revocation", "serial", serial.Text(16), "err", err)
		}
	}
	a.logger.Info("admin API: certificate revoked", "serial", serial.Text(16), "reason", reason.String())
	writeJSON(w, http.StatusOK, revocationJSON{Serial: serial.Text(16), RevokedAt: time.Now().UTC(), Reason: reason.String()})
}

// certificateSubject returns the SIP URI a certificate of this CA
// (PEM) with serial names, answering 400 if it is not one.
func (a *adminAPI) certificateSubject(w http.ResponseWriter, pemText string, serial *big.Int) (string, bool) {
	if pemText == "" {
		jsonError(w, http.StatusBadRequest, "certificate: a tenant admin gives the certificate to revoke (PEM), which must name a user of their tenant")
		return "", false
	}
	certs, err := pki.ParseCertsPEM([]byte(pemText))
	if err != nil || len(certs) != 1 {
		jsonError(w, http.StatusBadRequest, "certificate: want one PEM certificate")
		return "", false
	}
	c := certs[0]
	if c.SerialNumber.Cmp(serial) != 0 {
		jsonError(w, http.StatusBadRequest, "certificate: its serial is "+c.SerialNumber.Text(16)+", not "+serial.Text(16))
		return "", false
	}
	if !bytes.Equal(c.RawIssuer, a.ca.Certificate().RawSubject) || c.CheckSignatureFrom(a.ca.Certificate()) != nil {
		jsonError(w, http.StatusBadRequest, "certificate: not issued by this server's CA")
		return "", false
	}
	for _, u := range c.URIs {
		if aor, err := auth.CanonicalAOR(u.String()); err == nil {
			return aor, true
		}
	}
	jsonError(w, http.StatusBadRequest, "certificate: names no user (no SIP URI)")
	return "", false
}

// certificateHolder holds TLS connections opened with client
// certificates: auth.Authenticator, edge.EdgeRelay, edge.AccessEdge.
type certificateHolder interface {
	CloseCertificates(revoked func(*x509.Certificate) bool) int
}

// closeRevoked closes the connections the CA's certificate with serial
// (hexadecimal) opened here: SIP (TLS, WSS, the pool's mutual TLS), TURN
// over TLS, and the edge's partners and users.
func (a *adminAPI) closeRevoked(serial string) {
	sn, ok := new(big.Int).SetString(serial, 16)
	if !ok {
		return
	}
	issuer := a.ca.Certificate().RawSubject
	revoked := func(c *x509.Certificate) bool {
		return c.SerialNumber.Cmp(sn) == 0 && bytes.Equal(c.RawIssuer, issuer)
	}
	n := 0
	for _, h := range a.holders {
		n += h.CloseCertificates(revoked)
	}
	if n > 0 {
		a.logger.Info("closed the connections of a revoked certificate", "serial", serial, "connections", n)
	}
}

func (a *adminAPI) listMeetings(w http.ResponseWriter, r *http.Request) {
	organizer, ok := aorField(w, "organizer", r.URL.Query().Get("organizer"))
	if !ok || !mayAdminister(w, r, organizer, domainOf(organizer)) {
		return
	}
	list, err := a.meetings.ByOrganizer(r.Context(), organizer)
	if err != nil {
		a.logger.Error("admin API: meetings unreadable", "err", err)
		jsonError(w, http.StatusServiceUnavailable, "the meetings cannot be read; try again")
		return
	}
	out := []meetingResponse{}
	for _, m := range list {
		out = append(out, toResponse(m))
	}
	writeJSON(w, http.StatusOK, out)
}

// participantJSON is someone in a meeting, as the admin sees them.
type participantJSON struct {
	ID          string `json:"id"`
	URI         string `json:"uri"`
	DisplayName string `json:"display_name"`
	State       string `json:"state"`
	Role        string `json:"role"`
}

// meeting finds the {id} path value's meeting, answering 404, 403 (a
// meeting of another tenant) or 503 if it cannot.
func (a *adminAPI) meeting(w http.ResponseWriter, r *http.Request) (*conference.Meeting, bool) {
	m, err := a.focus.Meeting(r.Context(), conference.MeetingID(r.PathValue("id")))
	if errors.Is(err, conference.ErrNotFound) {
		jsonError(w, http.StatusNotFound, "no meeting "+r.PathValue("id"))
		return nil, false
	} else if err != nil {
		jsonError(w, http.StatusServiceUnavailable, "the meeting cannot be read; try again")
		return nil, false
	}
	if !mayAdminister(w, r, "meeting "+string(m.ID), m.Tenant) {
		return nil, false
	}
	return m, true
}

func (a *adminAPI) getMeeting(w http.ResponseWriter, r *http.Request) {
	m, ok := a.meeting(w, r)
	if !ok {
		return
	}
	out := struct {
		meetingResponse
		Organizer    string            `json:"organizer"`
		Participants []participantJSON `json:"participants"`
		// Host is the pool's front end (its pool address) that hosts the
		// live meeting, and HostToken its lease's fencing token; absent
		// outside a pool or when nobody is in the meeting.
		Host      string `json:"host,omitempty"`
		HostToken uint64 `json:"host_token,omitempty"`
	}{meetingResponse: toResponse(m), Organizer: m.Organizer, Participants: []participantJSON{}}
	if l, err := a.focus.Host(r.Context(), m.ID); err == nil {
		out.Host, out.HostToken = l.Host, l.Token
	} else if !errors.Is(err, conference.ErrNotFound) {
		a.logger.Warn("the meeting's host is unknown", "meeting", m.ID, "err", err)
	}
	for _, p := range a.focus.Participants(m.ID) {
		out.Participants = append(out.Participants, participantJSON{ID: string(p.ID), URI: p.URI, DisplayName: p.DisplayName,
			State: p.State.String(), Role: p.Role.String()})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *adminAPI) endMeeting(w http.ResponseWriter, r *http.Request) {
	m, ok := a.meeting(w, r)
	if !ok {
		return
	}
	id := string(m.ID)
	switch err := a.focus.End(r.Context(), m.ID); {
	case errors.Is(err, conference.ErrNotFound):
		jsonError(w, http.StatusNotFound, "no meeting "+id)
	case err != nil:
		a.logger.Error("admin API: meeting not ended", "meeting", id, "err", err)
		jsonError(w, http.StatusServiceUnavailable, "the meeting could not be deleted; nothing changed")
	default:
		// Deleted from the store; if another front end of the pool hosts
		// the live meeting, it ends it there when told.
		a.announce(r.Context(), changeMeetings)
		a.logger.Info("admin API: meeting ended", "meeting", id)
		w.WriteHeader(http.StatusNoContent)
	}
}

// sessionJSON is a security association as the admin sees it.
type sessionJSON struct {
	URI         string    `json:"uri"`
	DisplayName string    `json:"display_name,omitempty"`
	Kind        string    `json:"kind"`
	Method      string    `json:"method"`
	Transport   string    `json:"transport"`
	Remote      string    `json:"remote"`
	Since       time.Time `json:"since"`
}

func (a *adminAPI) sessions(w http.ResponseWriter, r *http.Request) {
	out := []sessionJSON{}
	for _, s := range a.authn.Sessions() {
		if !scopeOf(r).covers(domainOf(s.URI)) {
			continue
		}
		out = append(out, sessionJSON{URI: s.URI, DisplayName: s.DisplayName, Kind: s.Kind.String(), Method: string(s.Method),
			Transport: s.Transport, Remote: s.Remote, Since: s.Since})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *adminAPI) endSessions(w http.ResponseWriter, r *http.Request) {
	aor, ok := aorField(w, "uri", r.PathValue("uri"))
	if !ok || !mayAdminister(w, r, aor, domainOf(aor)) {
		return
	}
	n := a.signOut(r.Context(), aor)
	a.logger.Info("admin API: signed out", "user", aor, "connections", n)
	writeJSON(w, http.StatusOK, map[string]int{"closed": n})
}
