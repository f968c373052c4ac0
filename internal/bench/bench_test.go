package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// startReverseProxy serves a plain httputil.ReverseProxy to dockerd on a Unix
// socket in a temporary directory: a stand-in for sockproxy, so the bench can
// be tested on its own.
func startReverseProxy(t *testing.T, upstream string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "proxy.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "docker"})
	rp.Transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", upstream)
		},
		MaxIdleConnsPerHost: 64,
	}
	rp.FlushInterval = -1
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return sock
}

func smallConfig(t *testing.T, direct, proxied string) Config {
	cfg := DefaultConfig()
	cfg.Direct, cfg.Proxied = direct, proxied
	cfg.Rounds = 2
	cfg.Iterations = 100
	cfg.Duration = 200 * time.Millisecond
	cfg.LogMiB, cfg.ArchiveMiB, cfg.ExecMiB = 1, 1, 1
	cfg.Streams = 8
	cfg.ProxyPID = os.Getpid() // the stand-in proxy runs in the test process
	cfg.NamePrefix = "sp-test-bench-"
	cfg.CallTimeout = time.Minute
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	return cfg
}

// TestRunMeasuresEveryMetric runs a short bench through a stand-in proxy and
// checks that every metric was measured on both sides. It says nothing about
// speed: that is what the bench itself reports.
func TestRunMeasuresEveryMetric(t *testing.T) {
	docker := dockertest.Require(t)
	proxied := startReverseProxy(t, docker)
	cfg := smallConfig(t, docker, proxied)

	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", text.String())

	want := []string{
		"ping p50", "ping p99", "ping req/s 32 clients", "list p50", "inspect p50", "create p50",
		"logs", "archive", "exec round-trip", "exec start p50", "proxy RSS 8 streams", "proxy peak RSS whole run",
	}
	for _, name := range want {
		m := rep.Metric(name)
		if m == nil {
			t.Errorf("metric %q missing from the report", name)
			continue
		}
		if m.Error != "" || m.Verdict == Error {
			t.Errorf("metric %q not measured: %s", name, m.Error)
			continue
		}
		if m.Proxied <= 0 {
			t.Errorf("metric %q: proxied figure %v, want > 0", name, m.Proxied)
		}
		if m.Samples < 1 {
			t.Errorf("metric %q: %d samples", name, m.Samples)
		}
		if strings.HasPrefix(name, "proxy ") {
			continue // memory has no direct counterpart
		}
		if m.Direct <= 0 || m.Ratio <= 0 {
			t.Errorf("metric %q: direct %v ratio %v, want both > 0", name, m.Direct, m.Ratio)
		}
		if want := m.Proxied / m.Direct; m.Ratio != want {
			t.Errorf("metric %q: ratio %v, want proxied/direct = %v", name, m.Ratio, want)
		}
		if _, hasTarget := Targets[name]; hasTarget && m.Verdict != Pass && m.Verdict != Fail {
			t.Errorf("metric %q has a target but verdict %q", name, m.Verdict)
		}
	}
	if len(rep.Metrics) != len(want) {
		t.Errorf("report has %d metrics, want %d", len(rep.Metrics), len(want))
	}

	var decoded Report
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js.Bytes(), &decoded); err != nil || len(decoded.Metrics) != len(rep.Metrics) {
		t.Errorf("JSON report does not round-trip: %v", err)
	}
	assertNoLeftovers(t, docker, cfg.NamePrefix)
}

// TestRunReportsRefusals checks a proxy that refuses a call turns the metric
// into an error naming the side and the daemon-style message, rather than a
// fast-looking figure.
func TestRunReportsRefusals(t *testing.T) {
	docker := dockertest.Require(t)
	upstream := startReverseProxy(t, docker)
	sock := filepath.Join(t.TempDir(), "refuse.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "docker"})
	rp.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", upstream)
	}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/containers/create") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"message":"refused by test policy"}`))
			return
		}
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })

	cfg := smallConfig(t, docker, sock)
	cfg.Only = []string{GroupCreate, GroupPing}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	create := rep.Metric("create p50")
	if create == nil || create.Verdict != Error || !strings.Contains(create.Error, "proxied") || !strings.Contains(create.Error, "refused by test policy") {
		t.Errorf("create metric = %+v, want an error naming the proxied side and the refusal", create)
	}
	if ping := rep.Metric("ping p50"); ping == nil || ping.Verdict == Error {
		t.Errorf("ping metric = %+v, want measured", ping)
	}
	if rep.Passed() {
		t.Errorf("a report with an unmeasured metric must not pass")
	}
	assertNoLeftovers(t, docker, cfg.NamePrefix)
}

func TestConfigValidation(t *testing.T) {
	cfg := DefaultConfig()
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "socket paths are required") {
		t.Errorf("Run without sockets: %v, want a missing-socket error", err)
	}
	cfg.Direct, cfg.Proxied = "/a.sock", "/b.sock"
	cfg.Only = []string{"pingg"}
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), `unknown metric group "pingg"`) {
		t.Errorf("Run with a bad group: %v, want an unknown-group error", err)
	}
	cfg.Only = nil
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "does not answer /_ping") {
		t.Errorf("Run against absent sockets: %v, want a does-not-answer error", err)
	}
}

func TestPercentileAndJudge(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Microsecond)
	}
	if got := percentile(s, 0.5); got != 50 {
		t.Errorf("p50 = %v, want 50", got)
	}
	if got := percentile(s, 0.99); got != 99 {
		t.Errorf("p99 = %v, want 99", got)
	}
	m := Metric{Name: "ping p50", Direct: 100, Proxied: 181}
	m.judge()
	if m.Verdict != Fail || m.Ratio != 1.81 {
		t.Errorf("ping p50 at 1.81x: %+v, want FAIL", m)
	}
	m = Metric{Name: "logs", Direct: 100, Proxied: 100}
	m.judge()
	if m.Verdict != Pass {
		t.Errorf("logs at 1.0x: %+v, want PASS", m)
	}
	m = Metric{Name: "proxy RSS 256 streams", Proxied: 41}
	m.judge()
	if m.Verdict != Fail {
		t.Errorf("RSS 41 MiB: %+v, want FAIL", m)
	}
}

func TestHardenedCreateBodyDecodes(t *testing.T) {
	body := HardenedCreateBody("img:latest", [2]int{30412, 44107}, "/srv/alice")
	var got struct {
		Image, User string
		HostConfig  struct {
			Binds        []string
			PortBindings map[string][]struct{ HostIp, HostPort string }
		}
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Image != "img:latest" || got.User != "1000:1000" {
		t.Errorf("image/user = %q/%q", got.Image, got.User)
	}
	if len(got.HostConfig.Binds) != 2 || got.HostConfig.Binds[1] != "/srv/alice/data:/data:ro" {
		t.Errorf("binds = %v", got.HostConfig.Binds)
	}
	pb := got.HostConfig.PortBindings["44107/tcp"]
	if len(pb) != 1 || pb[0].HostIp != "127.0.0.1" || pb[0].HostPort != "44107" {
		t.Errorf("port bindings = %v", got.HostConfig.PortBindings)
	}
	var noBinds struct{ HostConfig struct{ Binds []string } }
	_ = json.Unmarshal(HardenedCreateBody("img", [2]int{1, 2}, ""), &noBinds)
	if len(noBinds.HostConfig.Binds) != 0 {
		t.Errorf("binds without a bind root = %v, want none", noBinds.HostConfig.Binds)
	}
}

func assertNoLeftovers(t *testing.T, docker, prefix string) {
	t.Helper()
	c := dockertest.Client(docker)
	filter := url.QueryEscape(`{"name":["` + prefix + `"]}`)
	resp, err := c.Get("http://docker/containers/json?all=1&filters=" + filter)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []struct{ Names []string }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("bench left %d containers behind: %v", len(list), list)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
