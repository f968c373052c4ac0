package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// TestComposeHardenedProject: docker-compose as a client of sockproxy. The
// hardened sample project (testdata/compose/hardened: a user network,
// labelled services, a loopback port, a read-only bind under the allowed
// root, non-root users) comes up through the proxy and serves the bound
// file; the same project with an unsafe service added is refused with the
// policy's reasons in compose's own output; down removes everything.
func TestComposeHardenedProject(t *testing.T) {
	dockertest.Require(t)
	name := uniqueName("sp-e2e-compose")
	data := t.TempDir()
	data, err := filepath.EvalSymlinks(data) // roots are compared by real path
	if err != nil {
		t.Fatal(err)
	}
	// The containers' uid 1000 reads the bound directory.
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "index.html"), []byte(name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Only this project's network is allowed, and binds read-only under
	// data; users, ports, images and privileges keep the hardened defaults.
	cfg := fmt.Sprintf(`policy:
  data:
    mount_roots: [{path: %q, modes: [ro]}]
    allowed_networks: [default, bridge, none, %s_sandbox]
`, data, name)
	s := startServe(t, cfg)

	dir := filepath.Join(repoRoot(t), "testdata", "compose", "hardened")
	hardened := &composeProject{name: name, files: []string{filepath.Join(dir, "docker-compose.yml")},
		env: []string{"SP_DATA_DIR=" + data}}
	unsafe := &composeProject{name: name, files: append(hardened.files, filepath.Join(dir, "unsafe.yml")), env: hardened.env}
	// Whatever happens, the project's objects go (directly at dockerd).
	t.Cleanup(func() { _, _ = unsafe.run(t, "", "down", "-t", "1") })

	if out, err := hardened.run(t, s.Socket, "up", "-d"); err != nil {
		t.Fatalf("docker-compose up of the hardened project through sockproxy: %v\n%s", err, out)
	}
	// Both services run, labelled, as uid 1000, on the project's network.
	ps, stderr, err := docker(t, "", "ps", "--filter", "label=com.docker.compose.project="+name,
		"--format", `{{.Label "com.docker.compose.service"}} {{.Label "org.sockproxy.test.role"}} {{.Networks}}`)
	if err != nil {
		t.Fatalf("docker ps: %v %s", err, stderr)
	}
	for _, svc := range []string{"web", "worker"} {
		if want := fmt.Sprintf("%s %s %s_sandbox", svc, svc, name); !strings.Contains(ps, want) {
			t.Errorf("running containers lack %q:\n%s", want, ps)
		}
	}
	web := name + "_web_1"
	if out, _, _ := docker(t, "", "inspect", "-f", "{{.Config.User}}", web); strings.TrimSpace(out) != "1000:1000" {
		t.Errorf("web runs as %q", out)
	}
	// The port is on loopback, and it serves the read-only bind.
	port, stderr, err := docker(t, "", "port", web, "8080/tcp")
	if err != nil {
		t.Fatalf("docker port: %v %s", err, stderr)
	}
	addr := strings.TrimSpace(strings.SplitN(port, "\n", 2)[0])
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("web's port is published on %q, want 127.0.0.1", addr)
	}
	// httpd may still be starting when compose returns.
	var resp *http.Response
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err = http.Get("http://" + addr + "/index.html"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("web does not answer on %s: %v", addr, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != name+"\n" {
		t.Errorf("web served %q, want the bound file", body)
	}
	if recs := s.Audit(t); len(recs) == 0 {
		t.Errorf("no audit record of compose's requests")
	} else {
		for _, r := range recs {
			if r.Decision != "allow" {
				t.Errorf("hardened project: %s %s %s refused: %q", r.Decision, r.Operation, r.Path, r.Reasons)
			}
		}
	}

	// The unsafe service is refused, with every reason readable in
	// compose's output; nothing of it reaches dockerd.
	out, err := unsafe.run(t, s.Socket, "up", "-d")
	if err == nil {
		t.Errorf("docker-compose up with the unsafe service succeeded:\n%s", out)
	}
	for _, want := range []string{
		"Cannot create container for service unsafe: sockproxy refused container.create: ",
		"port 80/tcp binds 0.0.0.0: only 127.0.0.1, ::1 allowed",
		"user root (uid 0, the image's default) not allowed: set User to a non-root uid",
		"mount /:/host is not under an allowed root",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("compose's output lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := docker(t, "", "container", "inspect", name+"_unsafe_1"); err == nil {
		t.Errorf("the refused service's container exists")
	}
	var denied int
	for _, r := range s.Audit(t) {
		if r.Decision == "deny" {
			denied++
			if r.Operation != "container.create" || r.Status != 403 || len(r.Reasons) < 3 {
				t.Errorf("denial: %s status %d reasons %q", r.Operation, r.Status, r.Reasons)
			}
		}
	}
	if denied != 1 {
		t.Errorf("%d denials audited, want 1 (the unsafe service)", denied)
	}

	// down through the proxy removes the containers and the network.
	if out, err := unsafe.run(t, s.Socket, "down", "-t", "1"); err != nil {
		t.Fatalf("docker-compose down through sockproxy: %v\n%s", err, out)
	}
	left, _, _ := docker(t, "", "ps", "-a", "-q", "--filter", "label=com.docker.compose.project="+name)
	nets, _, _ := docker(t, "", "network", "ls", "-q", "--filter", "label=com.docker.compose.project="+name)
	if strings.TrimSpace(left+nets) != "" {
		t.Errorf("down left containers %q and networks %q", left, nets)
	}
}
