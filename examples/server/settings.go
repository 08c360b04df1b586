package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/presence"
)

// settingsAPI lets a signed-in user keep their contacts (each with a
// relationship level, or blocked) and privacy mode over HTTPS:
//
//	GET    /api/me/contacts                 {"privacy_mode":false,"contacts":[{"uri":"sip:bob@example.test","level":"workgroup"}]}
//	PUT    /api/me/contacts/{uri}           {"level":"workgroup"}   (blocked, external, colleague, workgroup, personal)
//	DELETE /api/me/contacts/{uri}
//	PUT    /api/me/privacy                  {"privacy_mode":true}
//
// Changes are kept in the store, and every watcher of the user is sent
// what it may now see, on whichever front end of a pool it is connected.
type settingsAPI struct {
	policy *presence.PresencePolicy
	logger *slog.Logger
}

type contactJSON struct {
	URI   string `json:"uri"`
	Level string `json:"level"`
}

type contactsJSON struct {
	PrivacyMode bool          `json:"privacy_mode"`
	Contacts    []contactJSON `json:"contacts"`
}

func (a *settingsAPI) handler(authn *auth.Authenticator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/me/contacts", a.list)
	mux.HandleFunc("PUT /api/me/contacts/{uri}", a.setContact)
	mux.HandleFunc("DELETE /api/me/contacts/{uri}", a.removeContact)
	mux.HandleFunc("PUT /api/me/privacy", a.setPrivacy)
	return authn.HTTP(mux)
}

// owner is the signed-in user: a tenant user, not a guest.
func owner(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, _ := auth.IdentityFromContext(r.Context())
	if id == nil || id.Kind == auth.Anonymous || id.Kind == auth.Federated {
		jsonError(w, http.StatusForbidden, "only the tenant's users keep contacts here")
		return "", false
	}
	return id.URI, true
}

func (a *settingsAPI) failed(w http.ResponseWriter, user string, err error) {
	a.logger.Error("presence policy store failed", "user", user, "err", err)
	w.Header().Set("Retry-After", "5")
	jsonError(w, http.StatusServiceUnavailable, "the settings cannot be reached; try again")
}

func (a *settingsAPI) list(w http.ResponseWriter, r *http.Request) {
	me, ok := owner(w, r)
	if !ok {
		return
	}
	p, err := a.policy.Policy(r.Context(), me)
	if err != nil {
		a.failed(w, me, err)
		return
	}
	out := contactsJSON{PrivacyMode: p.PrivacyMode, Contacts: []contactJSON{}}
	for uri, level := range p.Contacts {
		out.Contacts = append(out.Contacts, contactJSON{URI: uri, Level: level.String()})
	}
	slices.SortFunc(out.Contacts, func(x, y contactJSON) int { return strings.Compare(x.URI, y.URI) })
	writeJSON(w, http.StatusOK, out)
}

// ownerAndContact is the signed-in user and the {uri} path value as an
// address of record.
func ownerAndContact(w http.ResponseWriter, r *http.Request) (me, contact string, ok bool) {
	if me, ok = owner(w, r); !ok {
		return "", "", false
	}
	if contact, ok = aorField(w, "contact", r.PathValue("uri")); !ok {
		return "", "", false
	}
	return me, contact, true
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		jsonError(w, http.StatusBadRequest, "body: "+err.Error())
		return false
	}
	return true
}

func (a *settingsAPI) setContact(w http.ResponseWriter, r *http.Request) {
	me, contact, ok := ownerAndContact(w, r)
	if !ok {
		return
	}
	var body struct {
		Level string `json:"level"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	level, err := presence.ParseLevel(body.Level)
	if err != nil {
		jsonError(w, http.StatusBadRequest, "level: "+err.Error())
		return
	}
	if err := a.policy.SetContact(r.Context(), me, contact, level); err != nil {
		a.failed(w, me, err)
		return
	}
	writeJSON(w, http.StatusOK, contactJSON{URI: contact, Level: level.String()})
}

func (a *settingsAPI) removeContact(w http.ResponseWriter, r *http.Request) {
	me, contact, ok := ownerAndContact(w, r)
	if !ok {
		return
	}
	if err := a.policy.RemoveContact(r.Context(), me, contact); err != nil {
		a.failed(w, me, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *settingsAPI) setPrivacy(w http.ResponseWriter, r *http.Request) {
	me, ok := owner(w, r)
	if !ok {
		return
	}
	var body struct {
		PrivacyMode *bool `json:"privacy_mode"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.PrivacyMode == nil {
		jsonError(w, http.StatusBadRequest, "privacy_mode: required")
		return
	}
	if err := a.policy.SetPrivacyMode(r.Context(), me, *body.PrivacyMode); err != nil {
		a.failed(w, me, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"privacy_mode": *body.PrivacyMode})
}
