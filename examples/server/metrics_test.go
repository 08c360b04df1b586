package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// healthCheck GETs /healthz from the server's HTTP listener.
func healthCheck(t *testing.T, s *server) (int, string) {
	t.Helper()
	res, err := http.Get("http://" + s.listeners["http"] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// scrape GETs /metrics and parses it as Prometheus does.
func scrape(t *testing.T, s *server) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get("http://" + s.listeners["http"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("Content-Type %q", res.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	return families
}

// value is the metric's value with the label (name=value, or "" for
// none).
func value(t *testing.T, families map[string]*dto.MetricFamily, name, label string) float64 {
	t.Helper()
	f := families[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range f.GetMetric() {
		match := label == ""
		for _, l := range m.GetLabel() {
			if l.GetName()+"="+l.GetValue() == label {
				match = true
			}
		}
		if match {
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}

// TestMetricsAndHealth: /metrics and /healthz on the plain HTTP listener
// tell what the server is doing: sign-ins, SIP requests, meetings.
func TestMetricsAndHealth(t *testing.T) {
	s := startServer(t, t.TempDir())
	if code, body := healthCheck(t, s); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("healthz: %d %s", code, body)
	}
	before := scrape(t, s)
	if v := value(t, before, "parley_auth_sessions", ""); v != 0 {
		t.Fatalf("sessions before anyone signs in: %v", v)
	}

	alice := s.sipUser(t, "alice", s.passwords["sip:alice@example.test"], "localhost")
	if res, err := alice.do(alice.request(sip.OPTIONS, "sip:"+s.listeners["sip-tls"])); err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS: %v %v", res, err)
	}
	mallory := s.sipUser(t, "bob", "not bob's password", "localhost")
	if res, err := mallory.do(mallory.request(sip.OPTIONS, "sip:"+s.listeners["sip-tls"])); err != nil || res.StatusCode == 200 {
		t.Fatalf("a wrong password: %v %v", res, err)
	}
	m := s.schedule(t, "alice", `{}`)
	if res, err := alice.do(alice.request(sip.INVITE, m.Focus, sip.NewHeader("Contact", "<sip:alice-dev@127.0.0.1;transport=tls>"))); err != nil || res.StatusCode != 200 {
		t.Fatalf("alice joins: %v %v", res, err)
	}

	after := scrape(t, s)
	for _, want := range []struct {
		name, label string
		value       float64
	}{
		{"parley_auth_sessions", "", 1},
		{"parley_sip_requests_total", "method=OPTIONS", 4}, // each challenged once
		{"parley_sip_requests_total", "method=INVITE", 1},
		{"parley_auth_decisions_total", "outcome=refused", 1},
		{"parley_meetings_active", "", 1},
		{"parley_meeting_participants", "", 1},
		{"parley_meeting_lobby", "", 0},
		{"parley_relay_allocations", "", 0},
	} {
		if got := value(t, after, want.name, want.label); got != want.value {
			t.Errorf("%s{%s} = %v, want %v", want.name, want.label, got, want.value)
		}
	}
	if value(t, after, "parley_auth_decisions_total", "outcome=accepted") < 3 {
		t.Error("accepted decisions not counted")
	}
	if after["go_goroutines"] == nil || after["process_open_fds"] == nil {
		t.Error("no Go runtime or process metrics")
	}
}

// BenchmarkMetricsScrape is one Prometheus scrape of /metrics, encoded
// as text: "components" is the components' readings alone (from a fixed
// snapshot: reading the components costs them, not the exporter); "all"
// adds SIP counters for the methods a server sees and client_golang's Go
// and process collectors, as the server registers them.
func BenchmarkMetricsScrape(b *testing.B) {
	components := prometheus.NewRegistry()
	components.MustRegister(componentCollector{read: func() snapshot { return snapshot{} }})
	all := newMetrics()
	all.reg.MustRegister(componentCollector{read: func() snapshot { return snapshot{} }})
	for _, method := range []string{"REGISTER", "MESSAGE", "INVITE", "ACK", "BYE", "SUBSCRIBE", "NOTIFY", "PUBLISH", "OPTIONS", "INFO"} {
		all.sipRequests.WithLabelValues(method).Inc()
	}
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"components", promhttp.HandlerFor(components, promhttp.HandlerOpts{})}, {"all", all.handler()}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/metrics", nil)
			var size int
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, req)
				size = w.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/scrape")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "scrapes/s")
		})
	}
}
