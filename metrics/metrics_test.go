package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sockproxy/sockproxy/internal/dockertest"
	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/proxy"
)

type recordingAuditor struct {
	n     int
	fail  error
	ready error
}

func (a *recordingAuditor) Ready() error                  { return a.ready }
func (a *recordingAuditor) Audit(*proxy.AuditEvent) error { a.n++; return a.fail }

func event(op, outcome, mode string, allow bool, status int) *proxy.AuditEvent {
	return &proxy.AuditEvent{
		Request:      &proxy.Request{Operation: proxy.Operation{Name: op}},
		Decision:     proxy.Decision{Allow: allow},
		Outcome:      outcome,
		Mode:         mode,
		Status:       status,
		DecisionTime: 200 * time.Microsecond,
		TotalTime:    3 * time.Millisecond,
	}
}

func TestAuditorCountsEveryDecisionByOperationAndResult(t *testing.T) {
	next := &recordingAuditor{}
	m := New(Options{})
	a := m.Auditor(next)
	events := []*proxy.AuditEvent{
		event("system.ping", "allow", "", true, 200),
		event("system.ping", "allow", "", true, 200),
		event("container.create", "deny", "", false, 403),
		event("container.create", "allow", "dry-run", false, 201),
		event("", "error", "", false, 404),
	}
	for _, ev := range events {
		if err := a.Audit(ev); err != nil {
			t.Fatal(err)
		}
	}
	if next.n != len(events) {
		t.Fatalf("the wrapped auditor got %d of %d events", next.n, len(events))
	}
	for _, c := range []struct {
		op, result string
		want       float64
	}{
		{"system.ping", "allow", 2},
		{"container.create", "deny", 1},
		{"container.create", "would-deny", 1},
		{"container.create", "allow", 0},
		{"unclassified", "error", 1},
	} {
		if got := counterValue(t, m.decisions.WithLabelValues(c.op, c.result)); got != c.want {
			t.Errorf("decisions{%s,%s} = %v, want %v", c.op, c.result, got, c.want)
		}
	}
	// Decision latency for all five; upstream latency only for the three
	// dockerd answered.
	if n := histogramCount(t, m, "sockproxy_decision_duration_seconds"); n != 5 {
		t.Errorf("decision latency observations %d, want 5", n)
	}
	if got := histogramCount(t, m, "sockproxy_upstream_duration_seconds"); got != 3 {
		t.Errorf("upstream observations %d, want 3", got)
	}

	next.fail = errors.New("disk full")
	_ = a.Audit(event("system.ping", "allow", "", true, 200))
	if got := counterValue(t, m.auditHookErrors); got != 1 {
		t.Errorf("audit record errors %v, want 1", got)
	}
	next.ready = errors.New("audit log failing")
	if a.Ready() == nil {
		t.Error("Ready must be the wrapped auditor's")
	}
	if m.Auditor(nil).Ready() != nil || m.Auditor(nil).Audit(event("x", "allow", "", true, 200)) != nil {
		t.Error("without an audit log the wrapper must neither refuse nor fail")
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var out dto.Metric
	if err := c.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}

func histogramCount(t *testing.T, m *Metrics, name string) uint64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, f := range families {
		if f.GetName() == name {
			for _, s := range f.GetMetric() {
				n += s.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func TestReloadsAuditStatsAndStreams(t *testing.T) {
	stats := audit.Stats{WriteErrors: 3, Records: 10, Failing: true}
	streams := 2
	m := New(Options{AuditStats: func() audit.Stats { return stats }, OpenStreams: func() int { return streams }})
	rev := &policy.Revision{ID: "abc123def456"}
	m.ObserveReload(policy.ReloadResult{Revision: rev, At: time.Unix(100, 0)})
	m.ObserveReload(policy.ReloadResult{Revision: rev, Err: errors.New("x.rego:3: bad"), At: time.Unix(200, 0)})
	text := scrape(t, m)
	for _, want := range []string{
		`sockproxy_policy_reloads_total{result="success"} 1`,
		`sockproxy_policy_reloads_total{result="failure"} 1`,
		`sockproxy_policy_reload_failures_total 1`,
		`sockproxy_policy_last_reload_success 0`,
		`sockproxy_policy_last_reload_timestamp_seconds 200`,
		`sockproxy_policy_revision_info{revision="abc123def456"} 1`,
		`sockproxy_audit_write_errors_total 3`,
		`sockproxy_audit_records_total 10`,
		`sockproxy_audit_failing 1`,
		`sockproxy_open_streams 2`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	stats.WriteErrors, streams = 4, 0
	text = scrape(t, m)
	if !strings.Contains(text, "sockproxy_audit_write_errors_total 4\n") || !strings.Contains(text, "sockproxy_open_streams 0\n") {
		t.Error("read-on-demand metrics did not follow their source")
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	Mux(m, HealthHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

func TestHealthzReportsEachCheck(t *testing.T) {
	sock := dockertest.Require(t)
	rt, err := proxy.Upstream{Address: "unix://" + sock}.RoundTripper()
	if err != nil {
		t.Fatal(err)
	}
	deadRT, err := proxy.Upstream{Address: "unix://" + t.TempDir() + "/none.sock"}.RoundTripper()
	if err != nil {
		t.Fatal(err)
	}
	ok := Check{Name: "policy", Run: func(context.Context) (string, error) { return "revision x", nil }}
	get := func(checks ...Check) (int, Health) {
		rec := httptest.NewRecorder()
		Mux(nil, HealthHandler(checks...)).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		var h Health
		if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
			t.Fatalf("%q: %v", rec.Body.String(), err)
		}
		return rec.Code, h
	}
	code, h := get(UpstreamCheck(rt), ok)
	if code != http.StatusOK || h.Status != "ok" || !h.Checks["upstream"].OK || !strings.HasPrefix(h.Checks["upstream"].Detail, "API 1.") {
		t.Fatalf("healthy: %d %+v", code, h)
	}
	code, h = get(UpstreamCheck(deadRT), ok)
	if code != http.StatusServiceUnavailable || h.Status != "unhealthy" || h.Checks["upstream"].OK || !h.Checks["policy"].OK ||
		!strings.Contains(h.Checks["upstream"].Error, "dockerd unreachable") {
		t.Fatalf("dead upstream: %d %+v", code, h)
	}
}

func TestMetricsAddressMustBeLocal(t *testing.T) {
	for _, ok := range []string{"/run/sockproxy/metrics.sock", "127.0.0.1:9323", "[::1]:9323", "localhost:9323", "127.0.0.2:1"} {
		if err := CheckAddress(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:9323", ":9323", "10.0.0.1:9323", "example.com:9323", "metrics.sock", "[::]:9323"} {
		if err := CheckAddress(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
