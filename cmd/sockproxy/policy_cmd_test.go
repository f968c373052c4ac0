package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runPolicyCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runPolicy(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestPolicyCheckExample(t *testing.T) {
	code, out, errOut := runPolicyCmd(t, "", "check", "--config", "../../docs/sockproxy.example.yaml")
	if code != 0 || !strings.Contains(out, "compiles") || !strings.Contains(out, "rego/create.rego") || !strings.Contains(out, "mount roots: 3") {
		t.Fatalf("code %d\nstdout %s\nstderr %s", code, out, errOut)
	}
}

func TestPolicyCheckBrokenModule(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.rego"), []byte("package sockproxy\n\ndeny contains x if {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfgFile, []byte("policy:\n  dirs: [.]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runPolicyCmd(t, "", "check", "--config", cfgFile)
	if code != 1 || !strings.Contains(errOut, filepath.Join(dir, "bad.rego")+":") {
		t.Fatalf("code %d stderr %s", code, errOut)
	}
}

func TestPolicyEval(t *testing.T) {
	root := `{"operation": "exec.create", "method": "POST", "path": "/v1.41/containers/x/exec", "api_version": "1.41",
	  "versioned": true, "query": {}, "vars": {"name": "x"}, "caller": {"known": true, "uid": 1000, "gid": 1000, "pid": 1},
	  "body": {"User": "0", "Cmd": ["sh"]},
	  "exec": {"container": "x", "privileged": true, "cmd": ["sh"],
	           "user": {"raw": "0", "source": "request", "value": "0", "uid": 0, "gid": -1, "root": true, "resolved": true}}}`
	code, out, errOut := runPolicyCmd(t, root, "eval")
	want := "refused (revision "
	if code != 1 || !strings.Contains(out, want) ||
		!strings.Contains(out, "sockproxy: exec privileged is not allowed: it gives the process every capability of the host; exec user 0 (uid 0) not allowed: set User to a non-root uid") {
		t.Fatalf("code %d\nstdout %s\nstderr %s", code, out, errOut)
	}

	list := `{"operation": "container.list", "method": "GET", "path": "/containers/json", "query": {}, "vars": {}, "caller": {}, "body": null}`
	if code, out, errOut := runPolicyCmd(t, list, "eval"); code != 0 || !strings.HasPrefix(out, "allowed") {
		t.Fatalf("code %d\nstdout %s\nstderr %s", code, out, errOut)
	}

	if code, _, errOut := runPolicyCmd(t, `{"operashun": "x"}`, "eval"); code != 2 || !strings.Contains(errOut, "operashun") {
		t.Fatalf("a misspelt input field: code %d stderr %s", code, errOut)
	}
}

func TestPolicySettings(t *testing.T) {
	code, out, _ := runPolicyCmd(t, "", "settings", "--config", "../../docs/sockproxy.example.yaml")
	if code != 0 || !strings.Contains(out, `"/home/alice/datasets"`) || !strings.Contains(out, `"require_non_root": true`) {
		t.Fatalf("code %d stdout %s", code, out)
	}
}
