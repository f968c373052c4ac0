package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// buildImage builds the Dockerfile's from-binary target around the binary
// TestMain built, with the legacy builder (dockerd 20.10, docker-compose
// 1.x), in a context holding only what that target needs. It returns the
// image's tag, removed in t.Cleanup.
func buildImage(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	ctxDir := t.TempDir()
	copyFile(t, filepath.Join(root, "Dockerfile"), filepath.Join(ctxDir, "Dockerfile"), 0o644)
	copyFile(t, filepath.Join(root, ".dockerignore"), filepath.Join(ctxDir, ".dockerignore"), 0o644)
	readmes, err := filepath.Glob(filepath.Join(root, "contrib", "docker", "*.README"))
	if err != nil || len(readmes) == 0 {
		t.Fatalf("contrib/docker/*.README: %v %v", readmes, err)
	}
	for _, f := range readmes {
		copyFile(t, f, filepath.Join(ctxDir, "contrib", "docker", filepath.Base(f)), 0o644)
	}
	copyFile(t, sockproxyBin, filepath.Join(ctxDir, "bin", "sockproxy"), 0o755)

	tag := uniqueName("sp-e2e-sockproxy") + ":test"
	cmd := dockerCmd(t.Context(), "", "build", "-q", "--target", "from-binary", "-t", tag, ctxDir)
	cmd.Env = append(cmd.Env, "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build --target from-binary: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _, _ = docker(t, "", "rmi", "-f", tag) })

	// A non-root user and the binary as entrypoint, on an empty base.
	out, stderr, err := docker(t, "", "image", "inspect", "-f", "{{.Config.User}} {{json .Config.Entrypoint}} {{len .RootFS.Layers}}", tag)
	if err != nil {
		t.Fatalf("inspect %s: %v %s", tag, err, stderr)
	}
	if got, want := strings.TrimSpace(out), `65532:65532 ["/usr/local/bin/sockproxy"] 3`; got != want {
		t.Errorf("image %s: user, entrypoint, layers = %s, want %s (scratch plus two READMEs and the binary)", tag, got, want)
	}
	return tag
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// TestComposeSidecar brings up docker-compose.test.yml: sockproxy in a
// container in front of the host's dockerd, its socket shared through a
// volume with a client container that has no other way to Docker. The
// client's allowed requests go through, its refused ones get the policy's
// reasons, and the audit log (in its own volume) records each once.
func TestComposeSidecar(t *testing.T) {
	upstream := dockertest.Require(t)
	image := buildImage(t)
	spclient, err := spclientBin()
	if err != nil {
		t.Fatal(err)
	}
	p := &composeProject{
		name:  uniqueName("sp-e2e-sidecar"),
		files: []string{filepath.Join(repoRoot(t), "docker-compose.test.yml")},
	}
	p.env = []string{"SOCKPROXY_IMAGE=" + image, "SPCLIENT=" + spclient, "DOCKER_GID=" + socketGID(t, upstream)}
	t.Cleanup(func() {
		if out, err := p.run(t, "", "down", "-v", "-t", "5"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	if out, err := p.run(t, "", "up", "-d", "--no-build"); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	proxyCtr, client := p.name+"_sockproxy_1", p.name+"_client_1"
	waitListening(t, proxyCtr)

	// The client reaches Docker only through the proxy: it sees the
	// proxy's socket in the shared volume, and no other.
	if _, stderr, err := docker(t, "", "exec", client, "test", "-S", "/run/sockproxy/docker.sock"); err != nil {
		t.Fatalf("the client does not see sockproxy's socket: %v %s", err, stderr)
	}
	if _, _, err := docker(t, "", "exec", client, "test", "-e", "/var/run/docker.sock"); err == nil {
		t.Errorf("the client container has dockerd's socket")
	}

	spc := func(args ...string) (int, string) {
		t.Helper()
		out, stderr, err := docker(t, "", append([]string{"exec", client, "spclient"}, args...)...)
		status, body, ok := strings.Cut(out, "\n")
		code, cerr := strconv.Atoi(status)
		if !ok || cerr != nil {
			t.Fatalf("spclient %q: %v: %q %q", args, err, out, stderr)
		}
		return code, body
	}
	type step struct {
		args      []string
		status    int
		decision  string
		operation string
		want      []string // in the response body
	}
	okName, badName := p.name+"-ok", p.name+"-refused"
	t.Cleanup(func() { _, _, _ = docker(t, "", "rm", "-f", okName, badName) })
	steps := []step{
		{args: []string{"GET", "/v1.41/containers/json"}, status: 200, decision: "allow", operation: "container.list",
			want: []string{"/" + client}},
		{args: []string{"POST", "/v1.41/containers/create?name=" + okName,
			`{"Image":"sockproxy-test-nonroot:latest","User":"1000:1000","HostConfig":{"NetworkMode":"none"}}`},
			status: 201, decision: "allow", operation: "container.create", want: []string{`"Id":`}},
		{args: []string{"POST", "/v1.41/containers/create?name=" + badName,
			`{"Image":"sockproxy-test:latest","HostConfig":{"Privileged":true,"Binds":["/:/host"]}}`},
			status: 403, decision: "deny", operation: "container.create",
			want: []string{`{"message":"sockproxy refused container.create: `, "mount /:/host is not under an allowed root",
				"privileged is not allowed", "user root (uid 0, the image's default) not allowed"}},
		{args: []string{"POST", "/v1.41/containers/prune"}, status: 403, decision: "deny", operation: "container.prune",
			want: []string{"sockproxy refused container.prune: operation container.prune is refused by the policy (operations: deny)"}},
	}
	for _, s := range steps {
		status, body := spc(s.args...)
		if status != s.status {
			t.Errorf("%s %s: status %d, want %d: %s", s.args[0], s.args[1], status, s.status, body)
		}
		for _, w := range s.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s %s: body lacks %q: %s", s.args[0], s.args[1], w, body)
			}
		}
	}
	// The refused container does not exist; the allowed one does.
	if _, _, err := docker(t, "", "container", "inspect", badName); err == nil {
		t.Errorf("the refused container %s exists", badName)
	}
	if _, stderr, err := docker(t, "", "container", "inspect", okName); err != nil {
		t.Errorf("the allowed container %s is missing: %s", okName, stderr)
	}

	// One audit record per request, in order, with the client's uid.
	out, stderr, err := docker(t, "", "run", "--rm", "--network", "none", "-v", p.name+"_audit:/audit:ro",
		dockertest.Image, "cat", "/audit/audit.log")
	if err != nil {
		t.Fatalf("read the audit volume: %v %s", err, stderr)
	}
	recs := parseAudit(t, []byte(out))
	if len(recs) != len(steps) {
		t.Fatalf("%d audit records for %d requests:\n%s", len(recs), len(steps), out)
	}
	for i, s := range steps {
		r := recs[i]
		path, _, _ := strings.Cut(s.args[1], "?")
		if r.Decision != s.decision || r.Operation != s.operation || r.Method != s.args[0] || r.Path != path ||
			r.Status != s.status || r.Mode != "enforce" || !r.Caller.Known || r.Caller.UID != 1000 {
			t.Errorf("audit record %d: %s %s %s %s status %d mode %s caller %+v; want %s %s %s %s status %d by uid 1000",
				i, r.Decision, r.Operation, r.Method, r.Path, r.Status, r.Mode, r.Caller, s.decision, s.operation, s.args[0], path, s.status)
		}
		if (s.decision == "deny") != (len(r.Reasons) > 0) {
			t.Errorf("audit record %d (%s): reasons %q", i, r.Decision, r.Reasons)
		}
	}
	if r := recs[2]; !strings.Contains(strings.Join(r.Reasons, "; "), "mount /:/host is not under an allowed root") {
		t.Errorf("refused create audited without its reasons: %q", r.Reasons)
	}
}

// socketGID is the group that owns dockerd's socket, as a number.
func socketGID(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("no owner of %s", path)
	}
	return fmt.Sprint(st.Gid)
}

// waitListening waits until the sockproxy container has printed its
// DOCKER_HOST line (after its policy is loaded and it listens).
func waitListening(t *testing.T, container string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, stderr, err := docker(t, "", "logs", container)
		if strings.Contains(out, "export DOCKER_HOST=unix:///run/sockproxy/docker.sock") {
			return
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("sockproxy container %s does not listen: %v\n%s%s", container, err, out, stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
