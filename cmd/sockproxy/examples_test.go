package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/sockproxy/sockproxy/policy"
)

// examplesDir holds the worked policy examples of docs/policy-guide.md.
const examplesDir = "../../rego/examples"

// wantExamples are the examples the guide walks through: a missing one is
// a failure, not a smaller loop.
var wantExamples = []string{"agent-sandbox", "break-glass", "ci-runner", "monitoring", "security-rules", "team-ownership"}

// TestPolicyExamples runs every example's Rego tests the way a reader (and
// CI) does, `sockproxy policy test <dir>`, and checks its modules and data
// with `sockproxy policy check --fmt <dir>` and with the validation a
// reload runs before serving it (compile, library and user tests).
func TestPolicyExamples(t *testing.T) {
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	for _, want := range wantExamples {
		found := false
		for _, d := range dirs {
			found = found || d == want
		}
		if !found {
			t.Errorf("example %s is missing from %s (found %v)", want, examplesDir, dirs)
		}
	}
	for _, name := range dirs {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(examplesDir, name)
			n, err := checkExample(dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d Rego tests passed", name, n)
		})
	}
}

// checkExample checks one example directory and returns how many Rego
// tests passed. It fails when the directory has no tests, when a test
// fails, or when its data or modules do not pass the library's checks.
func checkExample(dir string) (int, error) {
	want, err := countTestRules(dir)
	if err != nil {
		return 0, err
	}
	if want == 0 {
		return 0, fmt.Errorf("%s: no test_ rules in *_test.rego files: every example needs Rego tests", dir)
	}

	code, out, errOut := runPolicyQuiet("check", "--fmt", dir)
	if code != 0 {
		return 0, fmt.Errorf("sockproxy policy check --fmt %s: exit %d\n%s%s", dir, code, out, errOut)
	}

	code, out, errOut = runPolicyQuiet("test", "--skip-library", dir)
	if code != 0 {
		return 0, fmt.Errorf("sockproxy policy test %s: exit %d\n%s%s", dir, code, out, errOut)
	}
	// Every test rule of the directory ran, and passed.
	pass := regexp.MustCompile(`(?m)^PASS: (\d+)/(\d+)$`).FindStringSubmatch(out)
	if pass == nil || pass[1] != pass[2] || pass[1] != fmt.Sprint(want) {
		return 0, fmt.Errorf("sockproxy policy test %s: want PASS: %d/%d, got\n%s%s", dir, want, want, out, errOut)
	}

	// What serve runs before a revision of this directory may serve.
	_, report, err := policy.Validate(context.Background(), policy.Source{Dirs: []string{dir}}, nil)
	if err != nil {
		return 0, fmt.Errorf("policy.Validate %s: %w", dir, err)
	}
	if report.User != want {
		return 0, fmt.Errorf("policy.Validate %s ran %d user tests, want %d", dir, report.User, want)
	}
	return want, nil
}

func runPolicyQuiet(args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := runPolicy(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// countTestRules counts the distinct test_ rules of the *_test.rego files
// under dir, as OPA's tester finds them.
func countTestRules(dir string) (int, error) {
	names := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.rego") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		m, err := ast.ParseModuleWithOpts(path, string(raw), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		for _, r := range m.Rules {
			if name := r.Head.Name.String(); strings.HasPrefix(name, "test_") {
				names[m.Package.Path.String()+"."+name] = true
			}
		}
		return nil
	})
	return len(names), err
}

// TestPolicyExamplesCheckFails shows that checkExample, the check CI runs
// on every example, fails on a failing test and on an example without
// tests.
func TestPolicyExamplesCheckFails(t *testing.T) {
	src := filepath.Join(examplesDir, "agent-sandbox")
	copyExample := func(t *testing.T) string {
		dst := t.TempDir()
		entries, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			raw, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, e.Name()), raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dst
	}

	t.Run("loosened data fails a test", func(t *testing.T) {
		dir := copyExample(t)
		data := filepath.Join(dir, "data.yaml")
		raw, err := os.ReadFile(data)
		if err != nil {
			t.Fatal(err)
		}
		loosened := strings.Replace(string(raw), `allowed_host_ips: ["127.0.0.1", "::1"]`, `allowed_host_ips: ["0.0.0.0", "::"]`, 1)
		if loosened == string(raw) {
			t.Fatal("data.yaml no longer sets allowed_host_ips: update this test")
		}
		if err := os.WriteFile(data, []byte(loosened), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = checkExample(dir)
		if err == nil || !strings.Contains(err.Error(), "exit 2") || !strings.Contains(err.Error(), "test_default_openhands_create_refused: FAIL") {
			t.Fatalf("want a failed test_default_openhands_create_refused, got %v", err)
		}
	})

	t.Run("no tests", func(t *testing.T) {
		dir := copyExample(t)
		if err := os.Remove(filepath.Join(dir, "agent_sandbox_test.rego")); err != nil {
			t.Fatal(err)
		}
		if _, err := checkExample(dir); err == nil || !strings.Contains(err.Error(), "no test_ rules") {
			t.Fatalf("want an error for an example without tests, got %v", err)
		}
		// policy test itself refuses to pass with nothing to run.
		if code, _, errOut := runPolicyQuiet("test", "--skip-library", dir); code != 1 || !strings.Contains(errOut, "no tests were run") {
			t.Fatalf("policy test without tests: exit %d, stderr %s", code, errOut)
		}
	})

	t.Run("invalid data", func(t *testing.T) {
		dir := copyExample(t)
		if err := os.WriteFile(filepath.Join(dir, "typo.yaml"), []byte("sockproxy:\n  config:\n    mount_root: []\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := checkExample(dir); err == nil || !strings.Contains(err.Error(), `unknown key "mount_root"`) {
			t.Fatalf("want the unknown key reported, got %v", err)
		}
	})
}

// TestPolicyExampleEvalMatchesTests ties the agent-sandbox tests' hand-made
// input to the input the proxy builds: the OpenHands runtime's default
// create (ports on 0.0.0.0, no User, the image's user root), evaluated by
// `sockproxy policy eval` from its real body, gets the refusals that
// test_default_openhands_create_refused expects.
func TestPolicyExampleEvalMatchesTests(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	abs, err := filepath.Abs(filepath.Join(examplesDir, "agent-sandbox"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := write("sockproxy.yaml", "policy:\n  dirs: ["+abs+"]\n")
	facts := write("facts.yaml", `images:
  docker.openhands.dev/openhands/runtime:0.62-nikolaik:
    id: sha256:5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1
    user: ""
networks:
  bridge:
    id: 495fc7371de9f9c995cacd74976c86618e373fa5ef246b2f6b95d2a0f5b24a71
    name: bridge
    driver: bridge
`)
	body := write("create.json", `{"ExposedPorts": {"30412/tcp": {}, "44107/tcp": {}},
 "Env": ["port=30412", "PYTHONUNBUFFERED=1"],
 "Cmd": ["/openhands/micromamba/bin/micromamba", "run", "-n", "openhands", "python", "-m", "openhands.runtime.action_execution_server", "30412"],
 "Image": "docker.openhands.dev/openhands/runtime:0.62-nikolaik",
 "Entrypoint": [], "WorkingDir": "/openhands/code/",
 "HostConfig": {"NetworkMode": "default",
   "PortBindings": {"30412/tcp": [{"HostIp": "0.0.0.0", "HostPort": "30412"}],
                    "44107/tcp": [{"HostIp": "0.0.0.0", "HostPort": "44107"}]},
   "Mounts": []}}`)
	code, out, errOut := runPolicyQuiet("eval", "--config", cfg, "--facts", facts, "--no-input",
		"--caller-uid", "1000", "--caller-gid", "1000", "--method", "POST",
		"--path", "/v1.41/containers/create?name=openhands-runtime-3b8e0d5c", "--body", body)
	if code != 1 {
		t.Fatalf("want refused (exit 1), got %d\n%s%s", code, out, errOut)
	}
	// The messages test_default_openhands_create_refused looks for, and
	// their number.
	for _, want := range []string{
		"deny: port 30412/tcp binds 0.0.0.0",
		"deny: port 44107/tcp binds 0.0.0.0",
		"deny: user root (uid 0, the image's default) not allowed",
		"deny: user root (uid 0) is not in allowed_uids: 1000",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("eval output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n  deny: "); n != 5 {
		t.Errorf("want 5 refusals as the Rego test, got %d:\n%s", n, out)
	}
}
