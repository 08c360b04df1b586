package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/media"
	"github.com/parleyuc/parley/pki"
)

// metrics is the server's Prometheus registry: each component's Metrics()
// read at scrape time, SIP requests counted by method, and Go's own.
type metrics struct {
	reg         *prometheus.Registry
	sipRequests *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry(),
		sipRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_sip_requests_total",
			Help: "SIP requests received, by method."}, []string{"method"})}
	m.reg.MustRegister(m.sipRequests, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// sip counts each request a SIP handler gets.
func (m *metrics) sip(h func(*sip.Request, sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		m.sipRequests.WithLabelValues(string(req.Method)).Inc()
		h(req, tx)
	}
}

// gauge and counter register a value read at scrape time.
func (m *metrics) gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

func (m *metrics) counter(name, help string, labels prometheus.Labels, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f))
}

// watch exports the components' metrics.
func (m *metrics) watch(authn *auth.Authenticator, focus *conference.Focus, bridge *media.Bridge, relay *edge.EdgeRelay) {
	m.gauge("parley_auth_sessions", "Open connections with a security association (signed-in devices).",
		func() float64 { return float64(authn.Metrics().Sessions) })
	for outcome, f := range map[string]func(auth.AuthMetrics) uint64{
		"accepted": func(a auth.AuthMetrics) uint64 { return a.Accepted }, "challenged": func(a auth.AuthMetrics) uint64 { return a.Challenged },
		"refused": func(a auth.AuthMetrics) uint64 { return a.Refused }, "throttled": func(a auth.AuthMetrics) uint64 { return a.Throttled },
	} {
		m.counter("parley_auth_decisions_total", "Authentication decisions on SIP and HTTPS requests, by outcome.",
			prometheus.Labels{"outcome": outcome}, func() float64 { return float64(f(authn.Metrics())) })
	}
	m.gauge("parley_meetings_active", "Meetings someone is in or waits for.", func() float64 { return float64(focus.Metrics().Meetings) })
	m.gauge("parley_meeting_participants", "Participants joined to meetings.", func() float64 { return float64(focus.Metrics().Participants) })
	m.gauge("parley_meeting_lobby", "Participants waiting in meetings' lobbies.", func() float64 { return float64(focus.Metrics().Lobby) })
	m.gauge("parley_media_rooms", "Meetings with media on the bridge.", func() float64 { return float64(bridge.Metrics().Rooms) })
	m.gauge("parley_media_webrtc_sessions", "WebRTC participants on the bridge.", func() float64 { return float64(bridge.Metrics().Sessions) })
	m.gauge("parley_media_calls", "SIP participants' calls on the bridge.", func() float64 { return float64(bridge.Metrics().Calls) })
	m.gauge("parley_relay_allocations", "Active TURN allocations.", func() float64 { return float64(relay.Metrics().Allocations) })
	m.counter("parley_relay_allocations_total", "TURN allocations made.", nil, func() float64 { return float64(relay.Metrics().AllocationsTotal) })
	m.counter("parley_relay_auth_failures_total", "TURN requests with bad, expired or unknown credentials.", nil,
		func() float64 { return float64(relay.Metrics().AuthFailures) })
	m.counter("parley_relay_peers_refused_total", "TURN permissions refused by the peer filter.", nil,
		func() float64 { return float64(relay.Metrics().PeersRefused) })
	m.counter("parley_relay_bytes_total", "Bytes relayed.", prometheus.Labels{"direction": "to_peers"},
		func() float64 { return float64(relay.Metrics().BytesToPeers) })
	m.counter("parley_relay_bytes_total", "Bytes relayed.", prometheus.Labels{"direction": "from_peers"},
		func() float64 { return float64(relay.Metrics().BytesFromPeers) })
}

// handler serves the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// healthz answers 200 when the store and the CA answer, 503 naming what
// does not: a load balancer takes a front end whose store is gone out of
// the pool.
func healthz(meetings conference.MeetingStore, ca *pki.CA) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		checks := map[string]string{"store": "ok", "ca": "ok"}
		status := http.StatusOK
		if _, err := meetings.Get(ctx, "healthz"); err != nil && !errors.Is(err, conference.ErrNotFound) {
			checks["store"], status = err.Error(), http.StatusServiceUnavailable
		}
		if _, _, err := ca.CRL(ctx); err != nil {
			checks["ca"], status = err.Error(), http.StatusServiceUnavailable
		}
		state := "ok"
		if status != http.StatusOK {
			state = "unavailable"
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, status, map[string]any{"status": state, "checks": checks})
	})
}
