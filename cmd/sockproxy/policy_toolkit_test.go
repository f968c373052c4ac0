package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/config"
	"github.com/sockproxy/sockproxy/internal/dockertest"
	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/policy/toolkit"
	"github.com/sockproxy/sockproxy/proxy"
	"github.com/sockproxy/sockproxy/proxy/route"
)

func writeTestFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const infoRule = "package sockproxy\n\ndeny contains \"system.info is off\" if {\n\tinput.operation == \"system.info\"\n}\n"

func TestPolicyTestCommand(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, dir, "info.rego", infoRule)
	writeTestFile(t, dir, "info_test.rego", `package sockproxy_test

import data.sockproxy

test_info_refused if {
	"system.info is off" in sockproxy.deny with input as {"operation": "system.info"}
}

test_ping_allowed if {
	count(sockproxy.deny) == 0 with input as {"operation": "system.ping"}
}
`)
	code, out, errOut := runPolicyCmd(t, "", "test", dir)
	if code != 0 || !strings.Contains(out, "PASS: ") {
		t.Fatalf("passing suite: code %d\n%s\n%s", code, out, errOut)
	}
	// Library and user tests both ran: more than the user's two.
	var passed, total int
	fmt.Sscanf(out[strings.Index(out, "PASS: "):], "PASS: %d/%d", &passed, &total)
	if passed != total || total <= 2 {
		t.Fatalf("counts %d/%d in %q", passed, total, out)
	}

	// -v and --run: only the selected user test, listed by name.
	code, out, _ = runPolicyCmd(t, "", "test", "-v", "--run", "ping", dir)
	if code != 0 || !strings.Contains(out, "data.sockproxy_test.test_ping_allowed: PASS") || strings.Contains(out, "test_info_refused") || !strings.Contains(out, "PASS: 1/1") {
		t.Fatalf("--run: code %d\n%s", code, out)
	}

	// A failing test: exit 2, named with its file:line.
	writeTestFile(t, dir, "wrong_test.rego", "package sockproxy_wrong_test\n\nimport data.sockproxy\n\ntest_info_allowed if {\n\tcount(sockproxy.deny) == 0 with input as {\"operation\": \"system.info\"}\n}\n")
	code, out, _ = runPolicyCmd(t, "", "test", "--skip-library", dir)
	if code != 2 || !strings.Contains(out, "wrong_test.rego:5") || !strings.Contains(out, "data.sockproxy_wrong_test.test_info_allowed: FAIL") || !strings.Contains(out, "FAIL: 1/3") {
		t.Fatalf("failing test: code %d\n%s", code, out)
	}

	// Coverage: a JSON report over the modules, with the user's file.
	code, out, errOut = runPolicyCmd(t, "", "test", "--skip-library", "--coverage", "--run", "sockproxy_test", dir)
	var report struct {
		Files    map[string]any `json:"files"`
		Coverage float64        `json:"coverage"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil || code != 0 || report.Files[filepath.Join(dir, "info.rego")] == nil || report.Coverage <= 0 {
		t.Fatalf("coverage: code %d err %v\n%s\n%s", code, err, out, errOut)
	}
	code, _, _ = runPolicyCmd(t, "", "test", "--skip-library", "--threshold", "99.9", "--run", "sockproxy_test", dir)
	if code != 2 {
		t.Fatalf("coverage below the threshold: code %d, want 2", code)
	}

	// A syntax error: exit 1 with file:line.
	writeTestFile(t, dir, "broken_test.rego", "package broken_test\n\ntest_x if {\n")
	code, _, errOut = runPolicyCmd(t, "", "test", dir)
	if code != 1 || !strings.Contains(errOut, filepath.Join(dir, "broken_test.rego")+":") {
		t.Fatalf("syntax error: code %d\n%s", code, errOut)
	}
}

func TestPolicyCheckCommand(t *testing.T) {
	dir := t.TempDir()
	bad := writeTestFile(t, dir, "bad.rego", "package sockproxy\n\ndeny contains \"x\" if {\n\tinput.operation == \"system.info\"\n\tnot_a_function(1)\n}\n")
	code, _, errOut := runPolicyCmd(t, "", "check", dir)
	if code != 1 || !strings.Contains(errOut, bad+":5") {
		t.Fatalf("compile error: code %d\n%s", code, errOut)
	}
	writeTestFile(t, dir, "bad.rego", "package sockproxy\ndeny contains \"x\" if { input.operation ==   \"system.info\" }\n")
	code, out, _ := runPolicyCmd(t, "", "check", "--fmt", dir)
	if code != 1 || !strings.Contains(out, "--- "+bad) || !strings.Contains(out, "+deny contains \"x\" if input.operation == \"system.info\"") {
		t.Fatalf("--fmt: code %d\n%s", code, out)
	}
	if code, out, _ = runPolicyCmd(t, "", "check", "--fmt", "--write", dir); code != 0 || !strings.Contains(out, "formatted "+bad) {
		t.Fatalf("--fmt --write: code %d\n%s", code, out)
	}
	if code, out, _ = runPolicyCmd(t, "", "check", "--fmt", dir); code != 0 || strings.Contains(out, "---") {
		t.Fatalf("after --write: code %d\n%s", code, out)
	}
}

func TestPolicyEvalRequestOffline(t *testing.T) {
	dir := t.TempDir()
	body := writeTestFile(t, dir, "create.json", `{"Image": "sockproxy-test:latest", "User": "1000:1000",
	  "HostConfig": {"Binds": ["/etc:/host-etc:ro"], "NetworkMode": "sandbox"}}`)
	facts := writeTestFile(t, dir, "facts.yaml", "networks:\n  sandbox: {ID: \"0123abcd\", Name: sandbox, Driver: bridge}\n")
	code, out, errOut := runPolicyCmd(t, "", "eval", "--path", "/v1.41/containers/create?name=x", "--body", body, "--facts", facts)
	if code != 1 {
		t.Fatalf("code %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		`"operation": "container.create"`, `"host_path": "/etc"`, `"name": "sandbox"`, "daemon facts from " + facts,
		"deny: mount /etc:/host-etc is not under an allowed root", "from rego/mounts.rego:",
		"deny: network sandbox is not allowed", "via  rego/sockproxy.rego:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
	// Without facts the network is unresolved, and said so.
	code, out, _ = runPolicyCmd(t, "", "eval", "--no-input", "--path", "/v1.41/containers/create", "--body", body)
	if code != 1 || !strings.Contains(out, "not looked up") || !strings.Contains(out, "network sandbox does not exist") {
		t.Fatalf("offline: code %d\n%s", code, out)
	}
	if code, out, _ = runPolicyCmd(t, "", "eval", "--path", "/_ping"); code != 0 || !strings.Contains(out, "decision: allowed") {
		t.Fatalf("ping: code %d\n%s", code, out)
	}
	if code, _, errOut = runPolicyCmd(t, "", "eval", "--path", "/v1.41/containers/create", "--body", filepath.Join(dir, "missing.json")); code != 2 || !strings.Contains(errOut, "missing.json") {
		t.Fatalf("missing body file: code %d %s", code, errOut)
	}
	// A body dockerd would read differently is refused before the policy.
	dup := writeTestFile(t, dir, "dup.json", `{"Image": "a", "image": "b"}`)
	if code, out, _ = runPolicyCmd(t, "", "eval", "--path", "/v1.41/containers/create", "--body", dup); code != 1 || !strings.Contains(out, "refused (400) before the policy ran") {
		t.Fatalf("duplicate keys: code %d\n%s", code, out)
	}
}

func randomName(t *testing.T) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "sp-test-toolkit-" + hex.EncodeToString(b)
}

// testProxy runs the real proxy (router, engine with daemon lookups, audit
// log) in front of the real dockerd on a temporary socket.
func testProxy(t *testing.T, cfg *config.Config, mode, auditPath string) *http.Client {
	t.Helper()
	sock := dockertest.Require(t)
	upstream := proxy.Upstream{Address: "unix://" + sock}
	rt, err := upstream.RoundTripper()
	if err != nil {
		t.Fatal(err)
	}
	opts := policyOptions(cfg, slog.New(slog.DiscardHandler))
	opts.Input.Daemon = input.NewHTTPDaemon(rt, "")
	engine, err := policy.NewEngine(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	pc := proxy.Config{Classifier: route.New(route.Config{MinAPIVersion: route.DefaultMinAPIVersion}), Decider: engine,
		Upstream: upstream, Mode: mode, Logger: slog.New(slog.DiscardHandler)}
	if auditPath != "" {
		l, err := audit.New(audit.Options{Path: auditPath})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		pc.Auditor = l
	}
	p, err := proxy.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := proxy.ListenUnix(filepath.Join(t.TempDir(), "proxy.sock"), 0o600, "")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return dockertest.Client(ln.Addr().String())
}

func send(t *testing.T, c *http.Client, method, path, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://docker"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(out)
}

func removeContainer(t *testing.T, name string) {
	t.Cleanup(func() {
		send(t, dockertest.Client(dockertest.Socket()), "DELETE", "/v1.41/containers/"+name+"?force=1", "")
	})
}

// eval's reasons are the proxy's: the same requests sent through the real
// proxy (enforce mode, daemon lookups through the real dockerd) and given
// to eval with --socket get the same verdict and the same reasons.
func TestPolicyEvalMatchesProxy(t *testing.T) {
	sock := dockertest.Require(t)
	dir := t.TempDir()
	work := t.TempDir()
	cfgPath := writeTestFile(t, dir, "c.yaml", fmt.Sprintf("policy:\n  data:\n    mount_roots:\n      - {path: %q, modes: [ro]}\n", work))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	client := testProxy(t, cfg, "enforce", "")
	name := randomName(t)
	removeContainer(t, name)
	cases := []struct{ method, path, body string }{
		{"POST", "/v1.41/containers/create?name=" + name, `{"Image": "sockproxy-test:latest", "User": "1000:1000", "HostConfig": {"Binds": ["` + work + `:/w:ro"]}}`},
		{"POST", "/v1.41/containers/create?name=" + name + "-x", `{"Image": "sockproxy-test:latest", "HostConfig": {"Binds": ["` + work + `:/w:rw", "/etc:/e:ro"], "Privileged": true, "CapAdd": ["SYS_ADMIN"], "PidMode": "host",
		  "PortBindings": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]}}, "ExposedPorts": {"80/tcp": {}}}`},
		{"POST", "/v1.41/containers/create?name=" + name + "-y", `{"Image": "sockproxy-test-nonroot:latest", "HostConfig": {"NetworkMode": "host"}}`},
		{"POST", "/v1.41/containers/" + name + "/exec", `{"Cmd": ["id"], "User": "0", "Privileged": true}`},
		{"GET", "/v1.41/images/json", ""},
		{"POST", "/v1.41/images/sockproxy-test:latest/push", ""},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, resp := send(t, client, tc.method, tc.path, tc.body)
			args := []string{"eval", "--config", cfgPath, "--socket", sock, "--json", "--method", tc.method, "--path", tc.path}
			if tc.body != "" {
				args = append(args, "--body", writeTestFile(t, t.TempDir(), "body.json", tc.body))
			}
			code, out, errOut := runPolicyCmd(t, "", args...)
			var got struct {
				Allow   bool     `json:"allow"`
				Status  int      `json:"status"`
				Reasons []string `json:"reasons"`
				Deny    []toolkit.Finding
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("eval output: %v\n%s\n%s", err, out, errOut)
			}
			var msg struct{ Message string }
			_ = json.Unmarshal([]byte(resp), &msg)
			refusedByProxy := strings.HasPrefix(msg.Message, "sockproxy refused ")
			if refusedByProxy == got.Allow || (code == 1) == got.Allow {
				t.Fatalf("proxy: %d %s; eval: exit %d %+v", status, resp, code, got)
			}
			if refusedByProxy {
				op := strings.Fields(msg.Message)[2]
				want := strings.TrimPrefix(msg.Message, "sockproxy refused "+op+" ")
				if want != strings.Join(got.Reasons, "; ") || status != got.Status {
					t.Fatalf("proxy %d: %s\neval %d: %s", status, want, got.Status, strings.Join(got.Reasons, "; "))
				}
				for _, f := range got.Deny {
					if len(f.Rules) == 0 {
						t.Errorf("reason %q not attributed to a rule", f.Message)
					}
				}
				t.Logf("%d reasons equal: %s", len(got.Reasons), want)
			}
		})
	}
}

// learn's round trip: requests recorded by the real proxy in dry-run
// against the real dockerd; learn's proposal, loaded as configuration,
// allows all of them (sent again through the engine, and replayed from the
// log by eval --replay), while a dangerous request stays refused and the
// refusals learn will not lift are listed.
func TestPolicyLearnRoundTrip(t *testing.T) {
	sock := dockertest.Require(t)
	dir := t.TempDir()
	work, data := t.TempDir(), t.TempDir()
	auditPath := filepath.Join(dir, "audit.log")
	client := testProxy(t, config.Default(), "dry-run", auditPath)
	docker := dockertest.Client(sock)

	netName := randomName(t)
	if st, out := send(t, docker, "POST", "/v1.41/networks/create", `{"Name": "`+netName+`"}`); st != http.StatusCreated {
		t.Fatalf("network create: %d %s", st, out)
	}
	t.Cleanup(func() { send(t, docker, "DELETE", "/v1.41/networks/"+netName, "") })
	name := randomName(t)
	removeContainer(t, name)
	removeContainer(t, name+"-priv")

	app := []struct{ method, path, body string }{
		{"GET", "/v1.41/containers/json", ""},
		{"POST", "/v1.41/containers/create?name=" + name, `{"Image": "sockproxy-test:latest", "User": "1000:1000",
		  "ExposedPorts": {"80/tcp": {}},
		  "HostConfig": {"Binds": ["` + work + `:/workspace:rw", "` + data + `:/data:ro"], "NetworkMode": "` + netName + `",
		    "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.2", "HostPort": "18081"}]}}}`},
		{"GET", "/v1.41/containers/" + name + "/checkpoints", ""},
	}
	for _, r := range app {
		if st, out := send(t, client, r.method, r.path, r.body); strings.Contains(out, "sockproxy refused") {
			t.Fatalf("dry-run refused %s %s: %d %s", r.method, r.path, st, out)
		}
	}
	priv := `{"Image": "sockproxy-test:latest", "User": "1000:1000", "HostConfig": {"Privileged": true}}`
	send(t, client, "POST", "/v1.41/containers/create?name="+name+"-priv", priv)

	recs := readAudit(t, auditPath)
	if len(recs) != 4 || recs[1].Decision != audit.DecisionWouldDeny || recs[3].Decision != audit.DecisionWouldDeny {
		t.Fatalf("audit records: %+v", recs)
	}

	code, proposal, errOut := runPolicyCmd(t, "", "learn", auditPath)
	if code != 0 {
		t.Fatalf("learn: %d %s", code, errOut)
	}
	t.Logf("proposal:\n%s", proposal)
	for _, want := range []string{work + `"  # observed rw 1×`, data + `"  # observed ro 1×`, `"` + netName + `"  # 1×`, `"127.0.0.2"  # 1×`,
		`"sockproxy-test:latest"  # 2×`, "- 1000  # 2×", "checkpoint.list: allow  # 1×", "NOT LIFTED", "1× privileged is not allowed"} {
		if !strings.Contains(proposal, want) {
			t.Errorf("proposal lacks %q", want)
		}
	}
	propPath := writeTestFile(t, dir, "proposal.yaml", proposal)
	cfg, err := config.Load(propPath)
	if err != nil {
		t.Fatalf("the proposal does not load as configuration: %v", err)
	}

	// The same requests through a proxy enforcing the proposal.
	enforced := testProxy(t, cfg, "enforce", "")
	send(t, docker, "DELETE", "/v1.41/containers/"+name+"?force=1", "")
	for _, r := range app {
		if st, out := send(t, enforced, r.method, r.path, r.body); strings.Contains(out, "sockproxy refused") {
			t.Errorf("enforcing the proposal refused %s %s: %d %s", r.method, r.path, st, out)
		}
	}
	// The privileged create stays refused, and so does a dangerous bind.
	if _, out := send(t, enforced, "POST", "/v1.41/containers/create?name="+name+"-priv", priv); !strings.Contains(out, "privileged is not allowed") {
		t.Errorf("privileged create: %s", out)
	}
	etc := `{"Image": "sockproxy-test:latest", "User": "1000:1000", "HostConfig": {"Binds": ["/etc:/host-etc:rw"]}}`
	if _, out := send(t, enforced, "POST", "/v1.41/containers/create?name="+name+"-etc", etc); !strings.Contains(out, "mount /etc:/host-etc is not under an allowed root") {
		t.Errorf("/etc bind: %s", out)
	}

	// eval --replay of the recorded log under the proposal.
	code, out, errOut := runPolicyCmd(t, "", "eval", "--config", propPath, "--socket", sock, "--replay", auditPath)
	if code != 1 || strings.Count(out, ": allowed") != 3 || !strings.Contains(out, "4 records: 3 allowed, 1 refused") || !strings.Contains(out, recs[3].RequestID+" POST /v1.41/containers/create (container.create, recorded would-deny): refused: privileged is not allowed") {
		t.Fatalf("replay: code %d\n%s\n%s", code, out, errOut)
	}
	// And one record with full output.
	code, out, _ = runPolicyCmd(t, "", "eval", "--config", propPath, "--socket", sock, "--replay", auditPath, "--request-id", recs[1].RequestID)
	if code != 0 || !strings.Contains(out, "decision: allowed") || !strings.Contains(out, "rebuilt from the record's facts") || !strings.Contains(out, `"real_path": "`+work+`"`) {
		t.Fatalf("replay one: code %d\n%s", code, out)
	}
}

// stripFacts empties the facts of one record in the audit log at path, as
// an older version of the proxy recorded them.
func stripFacts(t *testing.T, path, requestID string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for line := range bytes.Lines(raw) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		if m["request_id"] == requestID {
			m["facts"] = map[string]any{}
			line, _ = json.Marshal(m)
			line = append(line, '\n')
		}
		out = append(out, line...)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readAudit(t *testing.T, path string) []audit.Record {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	for line := range bytes.Lines(raw) {
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	slices.SortStableFunc(recs, func(a, b audit.Record) int { return strings.Compare(a.Time, b.Time) })
	return recs
}

// eval --replay reports what it cannot reproduce instead of inventing a
// refusal: requests recorded by the real proxy against the real dockerd,
// then the objects removed. A network.create is judged on its body, which
// the audit log does not keep (only its SHA-256): not reproduced, until the
// body is given (checked against the digest). An exec into a container
// that is gone now is not reproduced either, with or without daemon facts
// (without them its user, the container's, cannot be told).
func TestPolicyEvalReplayNotReproduced(t *testing.T) {
	sock := dockertest.Require(t)
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.log")
	client := testProxy(t, config.Default(), "enforce", auditPath)
	docker := dockertest.Client(sock)
	name, netName := randomName(t), randomName(t)
	removeContainer(t, name)
	t.Cleanup(func() { send(t, docker, "DELETE", "/v1.41/networks/"+netName, "") })

	netBody := `{"Name": "` + netName + `", "Labels": {"team": "a"}}`
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1.41/networks/create", netBody},
		{"POST", "/v1.41/containers/create?name=" + name, `{"Image": "` + dockertest.NonRootImage + `", "Cmd": ["sleep", "600"]}`},
		{"POST", "/v1.41/containers/" + name + "/start", ""},
		{"POST", "/v1.41/containers/" + name + "/exec", `{"Cmd": ["id"]}`},
	} {
		if st, out := send(t, client, r.method, r.path, r.body); st >= 300 {
			t.Fatalf("%s %s through the proxy: %d %s", r.method, r.path, st, out)
		}
	}
	recs := readAudit(t, auditPath)
	if len(recs) != 4 || recs[0].Operation != "network.create" || recs[0].BodySHA256 == "" || recs[3].Operation != "exec.create" || recs[3].Facts["exec_user"] != "1000:1000 from container" {
		t.Fatalf("audit records: %+v", recs)
	}
	netID, execID := recs[0].RequestID, recs[3].RequestID
	if recs[0].Facts["network"] == nil {
		t.Fatalf("network.create record without facts: %+v", recs[0])
	}
	// The network.create is rebuilt from its facts; a record written before
	// they were recorded (here: facts removed) cannot be.
	stripFacts(t, auditPath, netID)
	// The container goes; the network stays (its record lacks the body).
	if st, out := send(t, docker, "DELETE", "/v1.41/containers/"+name+"?force=1", ""); st != http.StatusNoContent {
		t.Fatalf("removing %s: %d %s", name, st, out)
	}

	code, out, errOut := runPolicyCmd(t, "", "eval", "--socket", sock, "--replay", auditPath)
	if code != 0 || strings.Contains(out, "refused:") || !strings.Contains(out, "4 records: 1 allowed, 0 refused, 3 not reproduced") ||
		!strings.Contains(out, netID+" POST /v1.41/networks/create (network.create, recorded allow): not reproduced: network.create is judged on its request body, and the audit record keeps only its SHA-256") ||
		!strings.Contains(out, "(exec.create, recorded allow): not reproduced: the object exec.create acted on is gone from the daemon (No such container: "+name+")") ||
		!strings.Contains(out, "(container.start, recorded allow): not reproduced: the object container.start acted on is gone") {
		t.Fatalf("replay of the log: code %d\n%s\n%s", code, out, errOut)
	}

	// One record: no verdict, exit 2, the reason and what to give.
	code, out, _ = runPolicyCmd(t, "", "eval", "--socket", sock, "--replay", auditPath, "--request-id", netID)
	if code != 2 || !strings.Contains(out, "decision: not reproduced (no verdict): network.create is judged on its request body") || !strings.Contains(out, "--request-id "+netID) {
		t.Fatalf("replay of the network.create: code %d\n%s", code, out)
	}
	// With its body: judged, and the body is the one recorded (the
	// canonical bytes the proxy forwarded hash to body_sha256).
	bodyFile := writeTestFile(t, dir, "net.json", netBody)
	code, out, _ = runPolicyCmd(t, "", "eval", "--socket", sock, "--replay", auditPath, "--request-id", netID, "--body", bodyFile)
	if code != 0 || !strings.Contains(out, "decision: allowed") || strings.Contains(out, "not the one recorded") {
		t.Fatalf("replay of the network.create with its body: code %d\n%s", code, out)
	}
	other := writeTestFile(t, dir, "other.json", `{"Name": "`+netName+`", "Driver": "macvlan"}`)
	code, out, _ = runPolicyCmd(t, "", "eval", "--socket", sock, "--replay", auditPath, "--request-id", netID, "--body", other, "--no-input")
	if code != 1 || !strings.Contains(out, "note: the body given is not the one recorded") || !strings.Contains(out, "network driver macvlan is not allowed") {
		t.Fatalf("replay of the network.create with another body: code %d\n%s", code, out)
	}

	// The exec into the removed container: the target is gone, not a user
	// the policy refuses; without daemon facts its user cannot be told.
	code, out, _ = runPolicyCmd(t, "", "eval", "--socket", sock, "--replay", auditPath, "--request-id", execID, "--json")
	var got struct {
		Reproduced    *bool  `json:"reproduced"`
		NotReproduced string `json:"not_reproduced"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 2 || got.Reproduced == nil || *got.Reproduced || !strings.Contains(got.NotReproduced, "No such container: "+name) {
		t.Fatalf("replay of the exec: code %d err %v\n%s", code, err, out)
	}
	code, out, _ = runPolicyCmd(t, "", "eval", "--replay", auditPath, "--request-id", execID)
	if code != 2 || strings.Contains(out, "cannot be resolved") ||
		!strings.Contains(out, "not reproduced (no verdict): the exec's user is its container's (1000:1000 from container when recorded), and replay cannot look the container "+name+" up: daemon facts were not looked up") {
		t.Fatalf("offline replay of the exec: code %d\n%s", code, out)
	}
}

// network.create, network.connect, volume.create and container.update
// through the real proxy in dry-run, allowed and refused forms: the audit
// records carry their facts (secret option values redacted), eval --replay
// rebuilds every body from them with the recorded verdict, and learn's
// proposal (network_drivers, allowed_networks, allowed_local_volume_kinds) allows the learnable refusals on replay while
// the others stay refused and listed.
func TestPolicyReplayLearnNetworkVolumeUpdate(t *testing.T) {
	sock := dockertest.Require(t)
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.log")
	client := testProxy(t, config.Default(), "dry-run", auditPath)
	docker := dockertest.Client(sock)
	base := randomName(t)
	n1, n2, n3, v1, v2, c := base+"-n1", base+"-n2", base+"-mv", base+"-v1", base+"-v2", base+"-c"
	for _, n := range []string{n1, n2, n3} {
		t.Cleanup(func() { send(t, docker, "DELETE", "/v1.41/networks/"+n, "") })
	}
	for _, v := range []string{v1, v2} {
		t.Cleanup(func() { send(t, docker, "DELETE", "/v1.41/volumes/"+v, "") })
	}
	removeContainer(t, c)
	if st, out := send(t, docker, "POST", "/v1.41/containers/create?name="+c, `{"Image": "sockproxy-test:latest", "Cmd": ["sleep", "60"]}`); st != http.StatusCreated {
		t.Fatalf("container create: %d %s", st, out)
	}
	b := make([]byte, 1)
	_, _ = rand.Read(b)
	subnet := fmt.Sprintf("10.213.%d.0/24", b[0])
	staticIP := fmt.Sprintf("10.213.%d.5", b[0])
	reqs := []struct{ path, body, want string }{
		{"/v1.41/networks/create", `{"Name": "` + n1 + `", "Labels": {"team": "a"}}`, audit.DecisionAllow},
		{"/v1.41/networks/create", `{"Name": "` + n2 + `", "Internal": true, "Options": {"com.docker.network.bridge.name": "` + base[len(base)-8:] + `"},
		  "IPAM": {"Config": [{"Subnet": "` + subnet + `", "Gateway": "` + strings.TrimSuffix(subnet, "0/24") + `1"}]}}`, audit.DecisionWouldDeny},
		{"/v1.41/networks/create", `{"Name": "` + n3 + `", "Driver": "macvlan"}`, audit.DecisionWouldDeny},
		{"/v1.41/volumes/create", `{"Name": "` + v1 + `", "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}}`, audit.DecisionAllow},
		{"/v1.41/volumes/create", `{"Name": "` + v2 + `", "DriverOpts": {"type": "cifs", "device": "//192.0.2.1/share", "o": "addr=192.0.2.1,username=u,password=hunter2"}}`, audit.DecisionWouldDeny},
		{"/v1.41/networks/" + n1 + "/connect", `{"Container": "` + c + `", "EndpointConfig": {"Aliases": ["a1"]}}`, audit.DecisionWouldDeny},
		{"/v1.41/networks/" + n2 + "/connect", `{"Container": "` + c + `", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "` + staticIP + `"}}}`, audit.DecisionWouldDeny},
		{"/v1.41/containers/" + c + "/update", `{"CpuShares": 512, "PidsLimit": 100, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}`, audit.DecisionAllow},
		{"/v1.41/containers/" + c + "/update", `{"Memory": 67108864, "OomKillDisable": true}`, audit.DecisionWouldDeny},
	}
	for _, r := range reqs {
		send(t, client, "POST", r.path, r.body)
	}
	recs := readAudit(t, auditPath)
	if len(recs) != len(reqs) {
		t.Fatalf("%d audit records, want %d", len(recs), len(reqs))
	}
	byPath := map[string][]audit.Record{}
	for _, r := range recs {
		byPath[r.Path] = append(byPath[r.Path], r)
	}
	factKey := map[string]string{"network.create": "network", "network.connect": "connect", "volume.create": "volume", "container.update": "update"}
	for i, r := range recs {
		if r.Decision != reqs[i].want || r.Facts[factKey[r.Operation]] == nil {
			t.Errorf("record %d %s: decision %s (want %s), facts %v, reasons %q", i, r.Operation, r.Decision, reqs[i].want, r.Facts, r.Reasons)
		}
	}
	if facts, _ := json.Marshal(recs[4].Facts); bytes.Contains(facts, []byte("hunter2")) {
		t.Errorf("the facts hold the CIFS password: %s", facts)
	}
	if o := recs[4].Facts["volume"].(map[string]any)["options"].(map[string]any)["o"]; o != "addr=192.0.2.1,username=u,password="+policy.Redacted {
		t.Errorf("volume o= fact %q", o)
	}
	if t.Failed() {
		t.FailNow()
	}

	// sockproxy audit reads the records with the new facts: filters and
	// the summary count them.
	if out, errOut, code := runCmd(t, time.Now(), "--operation", "network.*", "--decision", "would-deny", "--json", auditPath); code != 0 || len(idsOf(t, out)) != 4 {
		t.Errorf("audit --operation network.* --decision would-deny: code %d, %d records\n%s%s", code, len(idsOf(t, out)), out, errOut)
	}
	if out, errOut, code := runCmd(t, time.Now(), "--summary", auditPath); code != 0 || !strings.Contains(out, fmt.Sprintf("%d records", len(reqs))) || !regexp.MustCompile(`would-deny +6 `).MatchString(out) {
		t.Errorf("audit --summary: code %d\n%s%s", code, out, errOut)
	}

	// replay checks every record's verdict against the one recorded.
	replay := func(cfgArgs []string, wantAllowed int) string {
		t.Helper()
		args := append(append([]string{"eval"}, cfgArgs...), "--socket", sock, "--replay", auditPath)
		_, out, errOut := runPolicyCmd(t, "", args...)
		if !strings.Contains(out, fmt.Sprintf("%d records: %d allowed, %d refused, 0 not reproduced, 0 errors", len(reqs), wantAllowed, len(reqs)-wantAllowed)) {
			t.Fatalf("replay %v:\n%s\n%s", cfgArgs, out, errOut)
		}
		return out
	}
	out := replay(nil, 3)
	for _, r := range recs {
		verdict := "allowed"
		if r.Decision == audit.DecisionWouldDeny {
			verdict = "refused: "
		}
		if !strings.Contains(out, r.RequestID+" POST "+r.Path+" ("+r.Operation+", recorded "+r.Decision+"): "+verdict) {
			t.Errorf("replay of %s %s is not %q:\n%s", r.RequestID, r.Operation, verdict, out)
		}
	}

	// learn proposes what the learnable refusals need.
	code, proposal, errOut := runPolicyCmd(t, "", "learn", auditPath)
	if code != 0 {
		t.Fatalf("learn: %d %s", code, errOut)
	}
	for _, want := range []string{"network_drivers:", `"macvlan"  # 1×`, `"` + n1 + `"  # 2×`,
		"allowed_local_volume_kinds:", `"network"  # 1×`, "NOT LIFTED", "allowed_network_subnets", "with a static address", "container.update sets OomKillDisable"} {
		if !strings.Contains(proposal, want) {
			t.Errorf("proposal lacks %q", want)
		}
	}
	if t.Failed() {
		t.Fatalf("proposal:\n%s", proposal)
	}
	propPath := writeTestFile(t, dir, "proposal.yaml", proposal)
	out = replay([]string{"--config", propPath}, 6)
	for _, r := range []audit.Record{recs[1], recs[6], recs[8]} {
		if !strings.Contains(out, r.RequestID+" POST "+r.Path+" ("+r.Operation+", recorded would-deny): refused: ") {
			t.Errorf("%s %s should stay refused:\n%s", r.RequestID, r.Operation, out)
		}
	}
}
