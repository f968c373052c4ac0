// Package metrics exposes sockproxy's Prometheus metrics and its health
// check on an optional listener (a Unix socket or a loopback TCP address).
//
// Decision metrics come from wrapping the proxy's Auditor: the proxy audits
// every request exactly once, with its operation, outcome, mode, status and
// times, so counting there counts every decision once.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/proxy"
)

// Results of a decision, as the audit log names them.
const (
	ResultAllow     = "allow"
	ResultDeny      = "deny"
	ResultError     = "error"
	ResultWouldDeny = "would-deny"
)

// Options say where the metrics that are read on demand come from.
type Options struct {
	// AuditStats reads the audit log's counters; nil when there is no
	// audit log.
	AuditStats func() audit.Stats
	// OpenStreams reads the number of responses (streams, hijacked
	// connections) the proxy is relaying; nil when the proxy cannot tell.
	OpenStreams func() int
}

// Metrics are sockproxy's Prometheus collectors, on their own registry.
type Metrics struct {
	reg *prometheus.Registry

	decisions        *prometheus.CounterVec
	decisionSeconds  *prometheus.HistogramVec
	upstreamSeconds  *prometheus.HistogramVec
	totalSeconds     *prometheus.HistogramVec
	reloads          *prometheus.CounterVec
	reloadFailures   prometheus.Counter
	lastReloadOK     prometheus.Gauge
	lastReloadTime   prometheus.Gauge
	revisionInfo     *prometheus.GaugeVec
	auditHookErrors  prometheus.Counter
	decisionLogFails prometheus.Counter
}

// Latency buckets: decisions take tens of microseconds to milliseconds;
// upstream times run from a ping (sub-millisecond) to pulls (minutes).
var (
	decisionBuckets = []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1}
	upstreamBuckets = []float64{0.5e-3, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 0.5, 1, 2.5, 5, 10, 30, 60, 300}
)

// New registers the collectors.
func New(opts Options) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockproxy_decisions_total",
			Help: "Requests judged, by Engine API operation and result (allow, deny, error, would-deny). Unclassified requests have operation \"unclassified\".",
		}, []string{"operation", "result"}),
		decisionSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sockproxy_decision_duration_seconds",
			Help:    "Time to classify, read and judge a request (the policy decision), by result.",
			Buckets: decisionBuckets,
		}, []string{"result"}),
		upstreamSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sockproxy_upstream_duration_seconds",
			Help:    "Time dockerd took to answer a forwarded request: from the end of the decision to dockerd's response headers (streams go on after), by whether the operation streams.",
			Buckets: upstreamBuckets,
		}, []string{"stream"}),
		totalSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sockproxy_request_duration_seconds",
			Help:    "Time from a request's arrival to the response headers the client got (dockerd's or the proxy's refusal), by result.",
			Buckets: upstreamBuckets,
		}, []string{"result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockproxy_policy_reloads_total",
			Help: "Policy reload attempts, by result (success: the candidate compiled and passed its Rego tests; failure: the previous revision stayed in force).",
		}, []string{"result"}),
		reloadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockproxy_policy_reload_failures_total",
			Help: "Policy reloads refused (compile error or failing Rego test); the previous revision stayed in force.",
		}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sockproxy_policy_last_reload_success",
			Help: "1 when the latest policy reload attempt succeeded, 0 when it was refused.",
		}),
		lastReloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sockproxy_policy_last_reload_timestamp_seconds",
			Help: "Unix time of the latest policy reload attempt.",
		}),
		revisionInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sockproxy_policy_revision_info",
			Help: "The policy revision in force (value 1, its ID as the label).",
		}, []string{"revision"}),
		auditHookErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockproxy_audit_record_errors_total",
			Help: "Audit records the audit log reported as not written (see also sockproxy_audit_write_errors_total).",
		}),
		decisionLogFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockproxy_decision_log_errors_total",
			Help: "Decisions that could not be queued for the remote decision log (OPA decision_logs).",
		}),
	}
	reg.MustRegister(m.decisions, m.decisionSeconds, m.upstreamSeconds, m.totalSeconds, m.reloads, m.reloadFailures,
		m.lastReloadOK, m.lastReloadTime, m.revisionInfo, m.auditHookErrors, m.decisionLogFails,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.AuditStats != nil {
		stats := opts.AuditStats
		counter := func(name, help string, read func(audit.Stats) uint64) {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
				func() float64 { return float64(read(stats())) }))
		}
		counter("sockproxy_audit_records_total", "Records given to the audit log.", func(s audit.Stats) uint64 { return s.Records })
		counter("sockproxy_audit_write_errors_total", "Failed audit log writes (each destination counts).", func(s audit.Stats) uint64 { return s.WriteErrors })
		counter("sockproxy_audit_dropped_total", "Audit records lost because too many were pending behind a failing destination.", func(s audit.Stats) uint64 { return s.Dropped })
		counter("sockproxy_audit_rotations_total", "Audit log rotations.", func(s audit.Stats) uint64 { return s.Rotations })
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sockproxy_audit_failing",
			Help: "1 while an audit destination is failing (requests are refused unless audit.fail_open).",
		}, func() float64 {
			if stats().Failing {
				return 1
			}
			return 0
		}))
	}
	if opts.OpenStreams != nil {
		m.SetOpenStreams(opts.OpenStreams)
	}
	return m
}

// SetOpenStreams registers the open streams gauge, read from streams.
func (m *Metrics) SetOpenStreams(streams func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sockproxy_open_streams",
		Help: "Responses the proxy is relaying right now (event, log and stats streams, attach and exec sessions).",
	}, func() float64 { return float64(streams()) }))
}

// Registry is the registry the collectors are on (to add more, or gather
// in tests).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveReload counts a policy reload attempt (policy.ReloaderOptions.Observe).
func (m *Metrics) ObserveReload(res policy.ReloadResult) {
	m.lastReloadTime.Set(float64(res.At.UnixNano()) / 1e9)
	if res.Err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		m.reloadFailures.Inc()
		m.lastReloadOK.Set(0)
	} else {
		m.reloads.WithLabelValues("success").Inc()
		m.lastReloadOK.Set(1)
	}
	m.SetRevision(res.Revision)
}

// SetRevision shows rev as the revision in force.
func (m *Metrics) SetRevision(rev *policy.Revision) {
	if rev == nil {
		return
	}
	m.revisionInfo.Reset()
	m.revisionInfo.WithLabelValues(rev.ID).Set(1)
}

// DecisionLogFailed counts a decision the remote decision log refused.
func (m *Metrics) DecisionLogFailed() { m.decisionLogFails.Inc() }

// Auditor wraps next (nil: no audit log) so that every audited request is
// counted. Ready is next's: metrics never refuse a request.
func (m *Metrics) Auditor(next proxy.Auditor) proxy.Auditor {
	return &countingAuditor{m: m, next: next}
}

type countingAuditor struct {
	m    *Metrics
	next proxy.Auditor
}

func (a *countingAuditor) Ready() error {
	if a.next == nil {
		return nil
	}
	return a.next.Ready()
}

func (a *countingAuditor) Audit(ev *proxy.AuditEvent) error {
	a.m.observe(ev)
	if a.next == nil {
		return nil
	}
	err := a.next.Audit(ev)
	if err != nil {
		a.m.auditHookErrors.Inc()
	}
	return err
}

func (m *Metrics) observe(ev *proxy.AuditEvent) {
	result := Result(ev)
	op := "unclassified"
	stream := false
	if ev.Request != nil && ev.Request.Operation.Name != "" {
		op = ev.Request.Operation.Name
		stream = ev.Request.Operation.Stream || ev.Request.Operation.Hijack
	}
	m.decisions.WithLabelValues(op, result).Inc()
	m.decisionSeconds.WithLabelValues(result).Observe(ev.DecisionTime.Seconds())
	m.totalSeconds.WithLabelValues(result).Observe(ev.TotalTime.Seconds())
	// Upstream latency: only requests dockerd answered.
	if (result == ResultAllow || result == ResultWouldDeny) && ev.Status != 0 && ev.Error == "" {
		label := "false"
		if stream {
			label = "true"
		}
		m.upstreamSeconds.WithLabelValues(label).Observe(max(ev.TotalTime-ev.DecisionTime, 0).Seconds())
	}
}

// Result is the decision of an audited request as the audit log records it
// (allow, deny, error, or would-deny for a refusal forwarded in dry-run).
func Result(ev *proxy.AuditEvent) string {
	switch ev.Outcome {
	case ResultAllow:
		if ev.Mode == "dry-run" && !ev.Decision.Allow {
			return ResultWouldDeny
		}
		return ResultAllow
	case "":
		if ev.Decision.Allow {
			return ResultAllow
		}
		return ResultDeny
	default:
		return ev.Outcome
	}
}
