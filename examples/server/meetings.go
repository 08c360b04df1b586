package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
)

// meetingRequest is the body of POST /api/meetings.
type meetingRequest struct {
	Subject     string   `json:"subject"`
	Invitees    []string `json:"invitees"`
	Access      string   `json:"access"`    // organizer, company, organization, anyone
	Presenter   string   `json:"presenter"` // organizer, company, everyone, chosen
	Presenters  []string `json:"presenters"`
	DialInLobby bool     `json:"dial_in_lobby"`
	Expires     string   `json:"expires"` // RFC 3339; empty: an impromptu meeting
}

// meetingResponse is a meeting as its organizer sees it, conference key
// included.
type meetingResponse struct {
	ID          string    `json:"id"`
	Subject     string    `json:"subject,omitempty"`
	Focus       string    `json:"focus"`
	JoinURL     string    `json:"join_url"`
	Key         string    `json:"conference_key"`
	DialInID    string    `json:"dial_in_id"`
	Access      string    `json:"access"`
	DialInLobby bool      `json:"dial_in_lobby"`
	Presenter   string    `json:"presenter"`
	Invitees    []string  `json:"invitees,omitempty"`
	Presenters  []string  `json:"presenters,omitempty"`
	Expires     time.Time `json:"expires"`
}

func toResponse(m *conference.Meeting) meetingResponse {
	return meetingResponse{ID: string(m.ID), Subject: m.Subject, Focus: m.Focus(), JoinURL: m.JoinURL, Key: m.Key, DialInID: m.DialInID,
		Access: m.Access.String(), DialInLobby: m.DialInLobby, Presenter: m.Presenter.String(),
		Invitees: m.Invitees, Presenters: m.Presenters, Expires: m.Expires}
}

// meetingAPI serves scheduling over HTTPS to signed-in users (the
// Authenticator's HTTP middleware runs first), and the meetings' join
// pages to anyone with the link.
type meetingAPI struct {
	focus    *conference.Focus
	meetings conference.MeetingStore
	logger   *slog.Logger
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// aorField parses s, the request's field, as an address of record,
// answering 400 naming the field if it is not one.
func aorField(w http.ResponseWriter, field, s string) (string, bool) {
	aor, err := auth.CanonicalAOR(s)
	if err != nil {
		jsonError(w, http.StatusBadRequest, field+": "+err.Error())
		return "", false
	}
	return aor, true
}

// schedule is POST /api/meetings: the signed-in user organizes a meeting.
func (a *meetingAPI) schedule(w http.ResponseWriter, r *http.Request) {
	id, _ := auth.IdentityFromContext(r.Context())
	var req meetingRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	opts := conference.MeetingOptions{Subject: req.Subject, Invitees: req.Invitees, Presenters: req.Presenters, DialInLobby: req.DialInLobby}
	var err error
	if req.Access != "" {
		if opts.Access, err = conference.ParseAccessPolicy(req.Access); err != nil {
			jsonError(w, http.StatusBadRequest, "access: "+err.Error())
			return
		}
	}
	if req.Presenter != "" {
		if opts.Presenter, err = conference.ParsePresenterPolicy(req.Presenter); err != nil {
			jsonError(w, http.StatusBadRequest, "presenter: "+err.Error())
			return
		}
	}
	if req.Expires != "" {
		if opts.Expires, err = time.Parse(time.RFC3339, req.Expires); err != nil {
			jsonError(w, http.StatusBadRequest, "expires: "+err.Error())
			return
		}
	}
	m, err := a.focus.Schedule(r.Context(), id, opts)
	switch {
	case errors.Is(err, conference.ErrNotAllowed):
		jsonError(w, http.StatusForbidden, err.Error())
		return
	case err != nil:
		// Bad options name their field; anything else is the store's.
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, toResponse(m))
}

// list is GET /api/meetings: the signed-in user's meetings.
func (a *meetingAPI) list(w http.ResponseWriter, r *http.Request) {
	id, _ := auth.IdentityFromContext(r.Context())
	aor, err := auth.CanonicalAOR(id.URI)
	if err != nil {
		jsonError(w, http.StatusForbidden, "no address of record")
		return
	}
	ms, err := a.meetings.ByOrganizer(r.Context(), aor)
	if err != nil {
		a.logger.Error("meeting store", "err", err)
		jsonError(w, http.StatusServiceUnavailable, "meeting store unavailable")
		return
	}
	out := []meetingResponse{}
	for _, m := range ms {
		out = append(out, toResponse(m))
	}
	writeJSON(w, http.StatusOK, out)
}

// join is GET /meet/{id}: the meeting's join page, which is the web
// client (web/meeting.html). The link is the meeting's unguessable ID; the
// page never shows the conference key, which guests type or bring in the
// link's fragment (#key=…, never sent to the server).
func (a *meetingAPI) join(w http.ResponseWriter, r *http.Request) {
	m, err := a.focus.Meeting(r.Context(), conference.MeetingID(r.PathValue("id")))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", webCSP)
	w.Header().Set("Referrer-Policy", "no-referrer") // the URL is the meeting's secret
	w.Header().Set("X-Frame-Options", "DENY")
	_ = meetingPage.Execute(w, map[string]string{"Subject": m.Subject, "Focus": m.Focus(), "ID": string(m.ID), "DialInID": m.DialInID})
}

// handler routes the meeting API; authn guards scheduling.
func (a *meetingAPI) handler(authn *auth.Authenticator) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /api/meetings", authn.HTTP(http.HandlerFunc(a.schedule)))
	mux.Handle("GET /api/meetings", authn.HTTP(http.HandlerFunc(a.list)))
	mux.HandleFunc("GET /meet/{id}", a.join)
	return mux
}
