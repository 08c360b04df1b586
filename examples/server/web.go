package main

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
)

// webFiles is the web client: the meeting page and its script and style,
// plain files with no build step.
//
//go:embed web
var webFiles embed.FS

var meetingPage = template.Must(template.ParseFS(webFiles, "web/meeting.html"))

// webCSP lets the page run its own script and reach its own origin
// (HTTPS and the signaling WebSocket); nothing else.
const webCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; media-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// webAssets serves the web client's script and style under /web/.
func webAssets() http.Handler {
	sub, _ := fs.Sub(webFiles, "web")
	files := http.StripPrefix("/web/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", webCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
