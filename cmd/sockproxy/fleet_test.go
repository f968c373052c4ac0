package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// fleetPolicy refuses the operations the bundle's data lists; the reason
// names the bundle's release, so the test can tell revisions apart.
const fleetPolicy = `package sockproxy

deny contains sprintf("%s is closed by fleet release %s", [input.operation, data.fleet.release]) if {
	input.operation in data.fleet.closed
}
`

const fleetPolicyTest = `package fleet.tests

import data.sockproxy

test_closed_operation_refused if {
	count(sockproxy.deny) == 1 with input as {"operation": "volume.list"} with data.fleet.closed as ["volume.list"]
}
`

// fleetBundle is an OPA bundle archive (.manifest, data.json, modules), as
// `opa build -b --revision <revision>` writes it.
func fleetBundle(t *testing.T, revision string, closed ...string) []byte {
	t.Helper()
	b := bundle.Bundle{
		Manifest: bundle.Manifest{Revision: revision, Roots: &[]string{"fleet", "sockproxy"}},
		Data:     map[string]any{"fleet": map[string]any{"release": revision, "closed": closed}},
		Modules: []bundle.ModuleFile{
			{URL: "/fleet/policy.rego", Path: "/fleet/policy.rego", Raw: []byte(fleetPolicy)},
			{URL: "/fleet/policy_test.rego", Path: "/fleet/policy_test.rego", Raw: []byte(fleetPolicyTest)},
		},
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).DisableFormat(true).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fleetServer is a bundle server for one bundle (with an ETag per
// revision) and a decision log service (gzip JSON arrays of events).
type fleetServer struct {
	*httptest.Server
	mu       sync.Mutex
	archive  []byte
	etag     string
	events   []map[string]any
	problems []string
}

func newFleetServer(t *testing.T) *fleetServer {
	s := &fleetServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/bundles/fleet.tar.gz":
			if r.Header.Get("If-None-Match") == s.etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("ETag", s.etag)
			_, _ = w.Write(s.archive)
		case r.Method == http.MethodPost && r.URL.Path == "/logs" && r.Header.Get("Content-Encoding") == "gzip":
			var batch []map[string]any
			zr, err := gzip.NewReader(r.Body)
			if err == nil {
				err = json.NewDecoder(zr).Decode(&batch)
			}
			if err != nil {
				s.problems = append(s.problems, "undecodable decision log upload: "+err.Error())
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.events = append(s.events, batch...)
		default:
			s.problems = append(s.problems, fmt.Sprintf("unexpected %s %s", r.Method, r.URL.Path))
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *fleetServer) serve(revision string, archive []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.archive, s.etag = archive, `"`+revision+`"`
}

// event returns the first uploaded decision log event for which match is
// true.
func (s *fleetServer) event(match func(map[string]any) bool) (map[string]any, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.events {
		if match(ev) {
			return ev, s.problems
		}
	}
	return nil, s.problems
}

// serveForTest starts serve with the configuration text (listen path and
// upstream added) and returns a client of its socket; the server stops at
// the end of the test. Its log goes to logs (nil: discarded).
func serveForTest(t *testing.T, dir, cfgText string, logs io.Writer) *http.Client {
	t.Helper()
	upstream := dockertest.Require(t)
	sock := filepath.Join(dir, "docker.sock")
	cfgPath := filepath.Join(dir, "sockproxy.yaml")
	cfgText = fmt.Sprintf("listen:\n  path: %s\nupstream:\n  url: unix://%s\n%s", sock, upstream, cfgText)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := parseServeArgs([]string{"--config", cfgPath}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if logs == nil {
		logs = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, s, slog.New(slog.NewTextHandler(logs, nil)), stdoutW)
		stdoutW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(time.Minute):
			t.Error("serve did not return after its context ended")
		}
	})
	if _, err := bufio.NewReader(stdoutR).ReadString('\n'); err != nil {
		t.Fatalf("serve did not start: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

// getMessage returns the status and the message of an error answer.
func getMessage(t *testing.T, c *http.Client, path string) (int, string) {
	t.Helper()
	resp, err := c.Get("http://d" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var msg struct{ Message string }
	if resp.StatusCode >= 400 {
		_ = json.NewDecoder(resp.Body).Decode(&msg)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode, msg.Message
}

// pollUntil polls cond every 50 ms until it holds or a minute has passed
// (a bound on a hung test, not a timed assertion).
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not after a minute: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The fleet end to end: sockproxy serve in front of the real dockerd takes
// its policy from a bundle server, enforces it, enforces the next revision
// the server publishes without a restart, and uploads its decisions to the
// decision log service.
func TestServeFleetBundleAndDecisionLogs(t *testing.T) {
	srv := newFleetServer(t)
	srv.serve("r1", fleetBundle(t, "r1", "volume.list"))
	dir, err := os.MkdirTemp("", "sp-fleet-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	metricsSock := filepath.Join(dir, "metrics.sock")
	client := serveForTest(t, dir, fmt.Sprintf(`metrics:
  listen: %s
opa:
  services:
    fleet:
      url: %s
  bundles:
    fleet:
      service: fleet
      resource: /bundles/fleet.tar.gz
      polling: {min_delay_seconds: 1, max_delay_seconds: 1}
  decision_logs:
    service: fleet
    resource: /logs
    reporting: {min_delay_seconds: 1, max_delay_seconds: 1}
  labels:
    site: test
`, metricsSock, srv.URL), nil)

	// The first download is asynchronous: wait for revision r1 to refuse.
	pollUntil(t, "bundle r1 refuses volume.list", func() bool {
		code, msg := getMessage(t, client, "/v1.41/volumes")
		return code == http.StatusForbidden && strings.Contains(msg, "volume.list is closed by fleet release r1")
	})
	if code, msg := getMessage(t, client, "/v1.41/networks"); code != http.StatusOK {
		t.Fatalf("network.list under r1: %d %q", code, msg)
	}

	// The server publishes r2; the proxy picks it up on its next poll.
	srv.serve("r2", fleetBundle(t, "r2", "network.list"))
	pollUntil(t, "bundle r2 refuses network.list", func() bool {
		code, msg := getMessage(t, client, "/v1.41/networks")
		return code == http.StatusForbidden && strings.Contains(msg, "network.list is closed by fleet release r2")
	})
	if code, msg := getMessage(t, client, "/v1.41/volumes"); code != http.StatusOK {
		t.Fatalf("volume.list under r2: %d %q", code, msg)
	}

	// /healthz names the bundle revision in force.
	health := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", metricsSock)
	}}}
	resp, err := health.Get("http://sockproxy/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `fleet: revision \"r2\"`) {
		t.Errorf("/healthz: %d %s", resp.StatusCode, body)
	}

	// The refusal under r2 reaches the decision log service.
	var ev map[string]any
	var problems []string
	pollUntil(t, "the network.list refusal is uploaded", func() bool {
		ev, problems = srv.event(func(ev map[string]any) bool {
			in, _ := ev["input"].(map[string]any)
			res, _ := ev["result"].(map[string]any)
			return in["operation"] == "network.list" && res["decision"] == "deny"
		})
		return ev != nil
	})
	res := ev["result"].(map[string]any)
	labels, _ := ev["labels"].(map[string]any)
	if reasons, _ := res["reasons"].([]any); len(reasons) != 1 || reasons[0] != "network.list is closed by fleet release r2" ||
		ev["decision_id"] == "" || ev["revision"] == "" || labels["site"] != "test" {
		t.Errorf("decision log event %v", ev)
	}
	if len(problems) > 0 {
		t.Errorf("the fleet server got bad requests: %q", problems)
	}
}
