package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// debianPython is Debian's interpreter, whose python3-docker (5.0.3,
// installed by scripts/testenv.sh) is the client under test; a python3
// earlier in PATH may carry another docker-py.
const debianPython = "/usr/bin/python3"

// agentStep is one line of testdata/agent_lifecycle.py's output.
type agentStep struct {
	Step        string   `json:"step"`
	Message     string   `json:"message"`
	APIVersion  string   `json:"api_version"`
	DockerPy    string   `json:"docker_py"`
	Count       int      `json:"count"`
	ID          string   `json:"id"`
	User        string   `json:"user"`
	Binds       []string `json:"binds"`
	HostIPs     []string `json:"host_ips"`
	Networks    []string `json:"networks"`
	Text        string   `json:"text"`
	Status      any      `json:"status"` // a State.Status string, or an HTTP status
	ExitCode    int      `json:"exit_code"`
	Refused     bool     `json:"refused"`
	Explanation string   `json:"explanation"`
}

// runAgent runs the lifecycle script against socket and returns its steps
// by name and its exit code.
func runAgent(t *testing.T, socket string, args ...string) (map[string]agentStep, []string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianPython, append([]string{"testdata/agent_lifecycle.py", "--base-url", "unix://" + socket}, args...)...)
	cmd.Env = dockerEnv(socket)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := cmdExitCode(t, err)
	steps := map[string]agentStep{}
	var order []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var s agentStep
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("agent_lifecycle.py printed a line that is not a step: %q (%v)\nstderr:\n%s", sc.Text(), err, stderr.String())
		}
		steps[s.Step] = s
		order = append(order, s.Step)
	}
	t.Logf("agent_lifecycle.py %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, stderr.String())
	return steps, order, code
}

// TestDockerPyAgentLifecycle replays an agent sandbox runtime's docker-py
// lifecycle through sockproxy under the hardened profile (default library,
// data for this host: mount roots, the sandbox uid, its network): the
// hardened body passes end to end, the runtime's default body (ports on
// 0.0.0.0, the image's root user) is refused with both reasons.
func TestDockerPyAgentLifecycle(t *testing.T) {
	dockertest.Require(t)
	if _, err := os.Stat(debianPython); err != nil {
		t.Fatalf("%s is missing: scripts/testenv.sh up installs python3-docker: %v", debianPython, err)
	}
	if out, err := exec.Command(debianPython, "-c", "import docker").CombinedOutput(); err != nil {
		t.Fatalf("Debian's python3-docker is missing (scripts/testenv.sh up installs it): %v: %s", err, out)
	}

	run := fmt.Sprintf("sp-e2et-py-%d", os.Getpid())
	dir, err := os.MkdirTemp("", "sp-e2et-py-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	workspace, data := filepath.Join(dir, "workspace"), filepath.Join(dir, "data")
	for _, d := range []string{workspace, data} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The sandbox runs as 1000:1000 and writes into its workspace.
	if err := os.Chown(workspace, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "input.txt"), []byte("dataset line\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The sandbox network (allowed), another one (not allowed), and a
	// running container of someone else that the runtime lists and inspects.
	network, otherNet, other := run+"-net", run+"-other-net", run+"-other"
	for _, n := range []string{network, otherNet} {
		if _, stderr, err := docker(t, "", "network", "create", n); err != nil {
			t.Fatalf("network create %s: %v: %s", n, err, stderr)
		}
		removeObjectsLater(t, "network", n)
	}
	removeObjectsLater(t, "container", other)
	if _, stderr, err := docker(t, "", "run", "-d", "--name", other, dockertest.Image, "sleep", "120"); err != nil {
		t.Fatalf("run %s: %v: %s", other, err, stderr)
	}
	otherID, _, err := docker(t, "", "inspect", "-f", "{{.Id}}", other)
	if err != nil {
		t.Fatal(err)
	}
	otherID = strings.TrimSpace(otherID)

	proxy := startServe(t, fmt.Sprintf(`policy:
  data:
    mount_roots:
      - path: %s
        modes: [ro, rw]
      - path: %s
        modes: [ro]
    allowed_uids: [1000]
    allowed_gids: [1000]
    allowed_networks: [default, bridge, none, %s]
    allowed_images: ["%s"]
`, workspace, data, network, dockertest.Image))

	t.Run("hardened", func(t *testing.T) {
		name := run + "-runtime"
		removeObjectsLater(t, "container", name)
		steps, order, code := runAgent(t, proxy.Socket, "--mode", "hardened", "--name", name, "--image", dockertest.Image,
			"--network", network, "--denied-network", otherNet, "--workspace", workspace, "--data", data)
		if code != 0 {
			t.Fatalf("the hardened lifecycle failed through sockproxy (exit %d): %s", code, steps["error"].Message)
		}
		want := []string{"version", "lookup-missing", "image", "list-and-inspect", "created", "started", "connected",
			"connect-refused", "logs-ready", "stopped", "state", "removed", "done"}
		if !slices.Equal(order, want) {
			t.Fatalf("steps %v, want %v", order, want)
		}
		if v := steps["version"].APIVersion; v != "1.41" {
			t.Errorf("negotiated API version %q through sockproxy, want dockerd's 1.41", v)
		}
		if n := steps["list-and-inspect"].Count; n < 1 {
			t.Errorf("the runtime listed %d running containers, want at least %s", n, other)
		}
		c := steps["created"]
		if c.User != "1000:1000" || !slices.Equal(c.HostIPs, []string{"127.0.0.1"}) ||
			!slices.Equal(c.Binds, []string{data + ":/data:ro", workspace + ":/workspace:rw"}) {
			t.Errorf("created sandbox: user %q, host IPs %v, binds %v", c.User, c.HostIPs, c.Binds)
		}
		if !slices.Contains(steps["connected"].Networks, network) {
			t.Errorf("after connect the sandbox is on %v, want %s", steps["connected"].Networks, network)
		}
		if r := steps["connect-refused"]; fmt.Sprint(r.Status) != "403" || !strings.Contains(r.Explanation, otherNet) {
			t.Errorf("connect to %s: status %v, %q; want 403 naming the network", otherNet, r.Status, r.Explanation)
		}
		if got := steps["stopped"].Text; got != "sandbox up uid=1000 gid=1000\ndataset line\nready\nstopping\n" {
			t.Errorf("followed logs %q: want the sandbox's output to its stop", got)
		}
		if s := steps["state"]; s.Status != "exited" || s.ExitCode != 0 {
			t.Errorf("after stop: %v, exit code %d", s.Status, s.ExitCode)
		}
		if b, err := os.ReadFile(filepath.Join(workspace, "out.txt")); err != nil || string(b) != "written-by-sandbox\n" {
			t.Errorf("the sandbox's write to its rw workspace bind: %q, %v", b, err)
		}

		// The audit log saw the runtime's calls, the other user's container
		// inspected, and the refused connect.
		byOp := map[string][]string{}
		inspectedOther := false
		for _, r := range proxy.Audit(t) {
			byOp[r.Operation] = append(byOp[r.Operation], r.Decision)
			if r.Operation == "container.inspect" && strings.Contains(r.Path, otherID) && r.Decision == "allow" {
				inspectedOther = true
			}
		}
		for op, want := range map[string][]string{
			"system.version": {"allow"}, "container.create": {"allow"}, "container.start": {"allow"},
			"network.connect": {"allow", "deny"}, "container.logs": {"allow"}, "container.stop": {"allow"},
			"container.delete": {"allow"},
		} {
			if got := byOp[op]; !slices.Equal(got, want) {
				t.Errorf("audit: %s decisions %v, want %v", op, got, want)
			}
		}
		if !inspectedOther {
			t.Errorf("audit: no allowed inspect of the other running container %s", otherID)
		}
	})

	t.Run("default-body-refused", func(t *testing.T) {
		name := run + "-default"
		removeObjectsLater(t, "container", name)
		steps, order, code := runAgent(t, proxy.Socket, "--mode", "default", "--name", name, "--image", dockertest.Image)
		if code != 0 || !slices.Equal(order, []string{"version", "default-create", "done"}) {
			t.Fatalf("default body: exit %d, steps %v (%s)", code, order, steps["error"].Message)
		}
		r := steps["default-create"]
		if fmt.Sprint(r.Status) != "403" || !r.Refused {
			t.Fatalf("default body: status %v, want 403", r.Status)
		}
		for _, want := range []string{"binds 0.0.0.0", "user root (uid 0, the image's default) not allowed"} {
			if !strings.Contains(r.Explanation, want) {
				t.Errorf("the refusal %q does not name %q", r.Explanation, want)
			}
		}
		if _, _, err := docker(t, "", "inspect", name); err == nil {
			t.Errorf("container %s exists after the refusal", name)
		}
	})
}
