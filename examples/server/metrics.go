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

// watch exports the components' metrics, each component read once a
// scrape.
func (m *metrics) watch(authn *auth.Authenticator, focus *conference.Focus, bridge *media.Bridge, relay *edge.EdgeRelay) {
	m.reg.MustRegister(componentCollector{read: func() snapshot {
		return snapshot{authn.Metrics(), focus.Metrics(), bridge.Metrics(), relay.Metrics()}
	}})
}

// snapshot is the components' metrics at one scrape.
type snapshot struct {
	auth   auth.AuthMetrics
	focus  conference.FocusMetrics
	bridge media.BridgeMetrics
	relay  edge.RelayMetrics
}

// reading is one metric of a snapshot.
type reading struct {
	desc   *prometheus.Desc
	kind   prometheus.ValueType
	labels []string // values of desc's variable labels
	value  func(*snapshot) float64
}

func gaugeOf(d *prometheus.Desc, v func(*snapshot) float64, labels ...string) reading {
	return reading{d, prometheus.GaugeValue, labels, v}
}

func counterOf(d *prometheus.Desc, v func(*snapshot) float64, labels ...string) reading {
	return reading{d, prometheus.CounterValue, labels, v}
}

func desc(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }

var (
	authDecisions = prometheus.NewDesc("parley_auth_decisions_total", "Authentication decisions on SIP and HTTPS requests, by outcome.", []string{"outcome"}, nil)
	relayBytes    = prometheus.NewDesc("parley_relay_bytes_total", "Bytes relayed.", []string{"direction"}, nil)

	// readings are what a scrape reports of the components.
	readings = []reading{
		gaugeOf(desc("parley_auth_sessions", "Open connections with a security association (signed-in devices)."),
			func(s *snapshot) float64 { return float64(s.auth.Sessions) }),
		counterOf(authDecisions, func(s *snapshot) float64 { return float64(s.auth.Accepted) }, "accepted"),
		counterOf(authDecisions, func(s *snapshot) float64 { return float64(s.auth.Challenged) }, "challenged"),
		counterOf(authDecisions, func(s *snapshot) float64 { return float64(s.auth.Refused) }, "refused"),
		counterOf(authDecisions, func(s *snapshot) float64 { return float64(s.auth.Throttled) }, "throttled"),
		gaugeOf(desc("parley_meetings_active", "Meetings someone is in or waits for."), func(s *snapshot) float64 { return float64(s.focus.Meetings) }),
		gaugeOf(desc("parley_meetings_hosted", "Live meetings this front end of a pool hosts (holds the lease of)."), func(s *snapshot) float64 { return float64(s.focus.Hosted) }),
		counterOf(desc("parley_meeting_requests_forwarded_total", "SIP requests for meetings passed on to the front end of the pool hosting them."),
			func(s *snapshot) float64 { return float64(s.focus.Forwarded) }),
		gaugeOf(desc("parley_meeting_participants", "Participants joined to meetings."), func(s *snapshot) float64 { return float64(s.focus.Participants) }),
		gaugeOf(desc("parley_meeting_lobby", "Participants waiting in meetings' lobbies."), func(s *snapshot) float64 { return float64(s.focus.Lobby) }),
		gaugeOf(desc("parley_media_rooms", "Meetings with media on the bridge."), func(s *snapshot) float64 { return float64(s.bridge.Rooms) }),
		gaugeOf(desc("parley_media_webrtc_sessions", "WebRTC participants on the bridge."), func(s *snapshot) float64 { return float64(s.bridge.Sessions) }),
		gaugeOf(desc("parley_media_calls", "SIP participants' calls on the bridge."), func(s *snapshot) float64 { return float64(s.bridge.Calls) }),
		gaugeOf(desc("parley_relay_allocations", "Active TURN allocations."), func(s *snapshot) float64 { return float64(s.relay.Allocations) }),
		counterOf(desc("parley_relay_allocations_total", "TURN allocations made."), func(s *snapshot) float64 { return float64(s.relay.AllocationsTotal) }),
		counterOf(desc("parley_relay_auth_failures_total", "TURN requests with bad, expired or unknown credentials."),
			func(s *snapshot) float64 { return float64(s.relay.AuthFailures) }),
		counterOf(desc("parley_relay_peers_refused_total", "TURN permissions refused by the peer filter."),
			func(s *snapshot) float64 { return float64(s.relay.PeersRefused) }),
		counterOf(relayBytes, func(s *snapshot) float64 { return float64(s.relay.BytesToPeers) }, "to_peers"),
		counterOf(relayBytes, func(s *snapshot) float64 { return float64(s.relay.BytesFromPeers) }, "from_peers"),
	}
)

// componentCollector is a prometheus.Collector reporting the readings of
// one snapshot a scrape.
type componentCollector struct{ read func() snapshot }

// Describe implements prometheus.Collector.
func (c componentCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

// Collect implements prometheus.Collector.
func (c componentCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.read()
	for _, r := range readings {
		ch <- prometheus.MustNewConstMetric(r.desc, r.kind, r.value(&s), r.labels...)
	}
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
