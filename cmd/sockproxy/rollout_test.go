package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sockproxy/sockproxy/policy/audit"
)

const privateVolumes = `package sockproxy

deny contains "volumes are private (%s)" if input.operation == "volume.list"
`

// auditRecords reads the audit log.
func auditRecords(t *testing.T, path string) []audit.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec audit.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, rec)
	}
	return out
}

// scrape returns the value of each sample of the metrics listener by its
// name and labels as exposed (`name{a="x",b="y"}`).
func scrape(t *testing.T, socket string) map[string]float64 {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	resp, err := c.Get("http://m/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// Dry-run, live reload and metrics through sockproxy serve in front of the
// real dockerd: a refusal is forwarded and audited as would-deny; a broken
// policy file written while serving is refused (logged with file:line,
// counted), the old revision keeps deciding; the fixed file goes in
// without a restart; the metrics follow each step, and every request has
// exactly one audit line.
func TestServeDryRunReloadAndMetrics(t *testing.T) {
	dir, err := os.MkdirTemp("", "sp-rollout-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	policyDir := filepath.Join(dir, "policy")
	team := filepath.Join(policyDir, "team.rego")
	if err := os.MkdirAll(policyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(team, fmt.Appendf(nil, privateVolumes, "v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(dir, "audit.log")
	metricsSock := filepath.Join(dir, "metrics.sock")
	logs := &syncBuffer{}
	client := serveForTest(t, dir, fmt.Sprintf(`policy:
  mode: dry-run
  dirs: [%s]
  watch: true
  watch_debounce: 50ms
audit:
  path: %s
metrics:
  listen: %s
`, policyDir, auditPath, metricsSock), logs)

	const wouldDeny = `sockproxy_decisions_total{operation="volume.list",result="would-deny"}`
	const failures = "sockproxy_policy_reload_failures_total"
	const successes = `sockproxy_policy_reloads_total{result="success"}`
	requests := 0
	// listVolumes sends one volume.list, which dry-run forwards, and
	// returns its audit record.
	listVolumes := func(wantReason string) audit.Record {
		t.Helper()
		if code, msg := getMessage(t, client, "/v1.41/volumes"); code != http.StatusOK {
			t.Fatalf("dry-run did not forward volume.list: %d %q", code, msg)
		}
		requests++
		var recs []audit.Record
		pollUntil(t, "the volume.list is audited", func() bool {
			recs = auditRecords(t, auditPath)
			return len(recs) >= requests
		})
		if len(recs) != requests {
			t.Fatalf("%d requests, %d audit lines", requests, len(recs))
		}
		rec := recs[len(recs)-1]
		if rec.Operation != "volume.list" || rec.Decision != "would-deny" || rec.Mode != "dry-run" || rec.Status != http.StatusOK ||
			!slices.Equal(rec.Reasons, []string{wantReason}) || rec.PolicyRevision == "" {
			t.Fatalf("audit record %+v, want a forwarded would-deny for %q", rec, wantReason)
		}
		return rec
	}

	before := scrape(t, metricsSock)
	rec1 := listVolumes("volumes are private (v1)")
	m := scrape(t, metricsSock)
	if m[wouldDeny] != before[wouldDeny]+1 || m[failures] != 0 || m[`sockproxy_policy_revision_info{revision="`+rec1.PolicyRevision+`"}`] != 1 {
		t.Fatalf("metrics after the first request: would-deny %v (before %v), reload failures %v, revision %s info %v",
			m[wouldDeny], before[wouldDeny], m[failures], rec1.PolicyRevision, m[`sockproxy_policy_revision_info{revision="`+rec1.PolicyRevision+`"}`])
	}

	// A syntax error (line 4) saved while serving.
	if err := os.WriteFile(team, fmt.Appendf(nil, privateVolumes+"\ndeny contains msg if {\n", "v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the broken policy is refused", func() bool { return scrape(t, metricsSock)[failures] == 1 })
	if log := logs.String(); !strings.Contains(log, "policy reload refused") || !strings.Contains(log, team+":") {
		t.Errorf("the refused reload is not logged with %s:line:\n%s", team, log)
	}
	if m := scrape(t, metricsSock); m["sockproxy_policy_last_reload_success"] != 0 {
		t.Errorf("last reload success %v after a refused reload", m["sockproxy_policy_last_reload_success"])
	}
	if rec := listVolumes("volumes are private (v1)"); rec.PolicyRevision != rec1.PolicyRevision {
		t.Fatalf("decided by %s after a refused reload, want the old revision %s", rec.PolicyRevision, rec1.PolicyRevision)
	}

	// Fixed: the next revision is put in force without a restart.
	ok := scrape(t, metricsSock)[successes]
	if err := os.WriteFile(team, fmt.Appendf(nil, privateVolumes, "v3"), 0o644); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the fixed policy is put in force", func() bool { return scrape(t, metricsSock)[successes] > ok })
	if rec := listVolumes("volumes are private (v3)"); rec.PolicyRevision == rec1.PolicyRevision {
		t.Fatal("the new revision has the old revision's id")
	}
	m = scrape(t, metricsSock)
	if m[wouldDeny] != before[wouldDeny]+3 || m[failures] != 1 || m["sockproxy_policy_last_reload_success"] != 1 {
		t.Errorf("metrics at the end: would-deny %v (before %v), reload failures %v, last success %v",
			m[wouldDeny], before[wouldDeny], m[failures], m["sockproxy_policy_last_reload_success"])
	}

	// The library's settings changed in the configuration file go in live.
	cfgPath := filepath.Join(dir, "sockproxy.yaml")
	cfgText, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfgText = []byte(strings.Replace(string(cfgText), "  mode: dry-run\n", "  mode: dry-run\n  data:\n    operations:\n      volume.list: deny\n", 1))
	if err := os.WriteFile(cfgPath, cfgText, 0o600); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "policy.data from the configuration file is put in force", func() bool {
		if code, _ := getMessage(t, client, "/v1.41/volumes"); code != http.StatusOK {
			t.Fatalf("dry-run did not forward volume.list: %d", code)
		}
		recs := auditRecords(t, auditPath)
		return slices.Contains(recs[len(recs)-1].Reasons, "operation volume.list is refused by the policy (operations: deny)")
	})
}
