package policy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sockproxy/sockproxy/internal/dockertest"
	"github.com/sockproxy/sockproxy/policy/input"
)

// docker talks to the real dockerd for the integration tests.
type docker struct {
	t *testing.T
	c *http.Client
}

func (d docker) do(method, path string, body []byte, want int) []byte {
	d.t.Helper()
	req, err := http.NewRequest(method, "http://docker/v1.41"+path, bytes.NewReader(body))
	if err != nil {
		d.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.c.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if want != 0 && resp.StatusCode != want {
		d.t.Fatalf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, out)
	}
	return out
}

func uniqueName(t *testing.T) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "sp-test-policy-" + hex.EncodeToString(b)
}

// The decision on real requests, with facts looked up through the real
// dockerd and host paths resolved on this host: the hardened OpenHands-like
// create is allowed, and what was judged (the canonical body) is what
// dockerd then creates and runs; each forbidden variant is refused with a
// reason naming it.
func TestIntegrationDecisionsAgainstDockerd(t *testing.T) {
	sock := dockertest.Require(t)
	client := dockertest.Client(sock)
	api := docker{t: t, c: client}

	workspace, datasets := t.TempDir(), t.TempDir()
	if err := os.Chmod(workspace, 0o777); err != nil { // uid 1000 writes there
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(workspace, "escape")); err != nil {
		t.Fatal(err)
	}
	netName := uniqueName(t)
	var netCreated struct{ ID string }
	if err := json.Unmarshal(api.do("POST", "/networks/create", []byte(`{"Name": "`+netName+`", "Driver": "bridge"}`), http.StatusCreated), &netCreated); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.do("DELETE", "/networks/"+netCreated.ID, nil, 0) })
	vol := uniqueName(t)
	api.do("POST", "/volumes/create", []byte(`{"Name": "`+vol+`", "Driver": "local", "DriverOpts": {"type": "none", "o": "bind", "device": "/etc"}}`), http.StatusCreated)
	t.Cleanup(func() { api.do("DELETE", "/volumes/"+vol, nil, 0) })

	e := newEngine(t, Options{
		Data: map[string]any{
			"mount_roots": []any{
				map[string]any{"path": workspace, "modes": []any{"ro", "rw"}},
				map[string]any{"path": datasets, "modes": []any{"ro"}},
			},
			"allowed_networks": []any{"default", netName},
		},
		Input: input.Options{Daemon: input.NewHTTPDaemon(client.Transport, "1.41"), HostFS: input.HostFS{}},
	})

	create := func(mutate func(cfg map[string]any, host map[string]any)) string {
		cfg := map[string]any{
			"Image":        dockertest.Image,
			"User":         "1000:1000",
			"Cmd":          []string{"sh", "-c", "id -u > /workspace/uid && (touch /data/x 2>/dev/null || echo ro > /workspace/data-mode)"},
			"ExposedPorts": map[string]any{"30412/tcp": map[string]any{}},
		}
		host := map[string]any{
			"NetworkMode":  netName,
			"Binds":        []string{workspace + ":/workspace:rw", datasets + ":/data:ro"},
			"PortBindings": map[string]any{"30412/tcp": []any{map[string]any{"HostIp": "127.0.0.1", "HostPort": ""}}},
		}
		if mutate != nil {
			mutate(cfg, host)
		}
		cfg["HostConfig"] = host
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	decide := func(body string) ([]string, []byte, bool) {
		req := openHandsRequest(body)
		req.Operation.Path = "/v1.41/containers/create"
		d := e.Decide(context.Background(), req)
		return d.Reasons, d.Body, d.Allow
	}

	t.Run("hardened create runs as judged", func(t *testing.T) {
		reasons, body, ok := decide(create(nil))
		if !ok {
			t.Fatalf("refused: %q", reasons)
		}
		name := uniqueName(t)
		var created struct{ ID string }
		if err := json.Unmarshal(api.do("POST", "/containers/create?name="+name, body, http.StatusCreated), &created); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { api.do("DELETE", "/containers/"+created.ID+"?force=1", nil, 0) })
		api.do("POST", "/containers/"+created.ID+"/start", nil, http.StatusNoContent)
		var waited struct{ StatusCode int }
		if err := json.Unmarshal(api.do("POST", "/containers/"+created.ID+"/wait", nil, http.StatusOK), &waited); err != nil || waited.StatusCode != 0 {
			t.Fatalf("container exited %d (%v)", waited.StatusCode, err)
		}
		uid, err := os.ReadFile(filepath.Join(workspace, "uid"))
		if err != nil || strings.TrimSpace(string(uid)) != "1000" {
			t.Fatalf("uid file %q (%v): the container did not run as 1000 with /workspace rw", uid, err)
		}
		if mode, err := os.ReadFile(filepath.Join(workspace, "data-mode")); err != nil || strings.TrimSpace(string(mode)) != "ro" {
			t.Fatalf("/data was writable (%q, %v)", mode, err)
		}
		var inspect struct {
			HostConfig struct {
				PortBindings map[string][]struct{ HostIp string }
			}
		}
		if err := json.Unmarshal(api.do("GET", "/containers/"+created.ID+"/json", nil, http.StatusOK), &inspect); err != nil {
			t.Fatal(err)
		}
		if b := inspect.HostConfig.PortBindings["30412/tcp"]; len(b) != 1 || b[0].HostIp != "127.0.0.1" {
			t.Fatalf("port bindings on the daemon: %+v", inspect.HostConfig.PortBindings)
		}
	})

	var hostNet struct {
		ID string `json:"Id"`
	}
	if err := json.Unmarshal(api.do("GET", "/networks/host", nil, http.StatusOK), &hostNet); err != nil {
		t.Fatal(err)
	}
	refusals := map[string]struct {
		mutate func(cfg, host map[string]any)
		want   string
	}{
		"image default root": {func(cfg, _ map[string]any) { delete(cfg, "User") },
			"user root (uid 0, the image's default) not allowed: set User to a non-root uid"},
		"bind outside roots": {func(_, host map[string]any) { host["Binds"] = []string{"/etc:/host:ro"} },
			"mount /etc:/host is not under an allowed root"},
		"symlink out of a root": {func(_, host map[string]any) { host["Binds"] = []string{workspace + "/escape:/x:ro"} },
			fmt.Sprintf("mount %s/escape:/x is not under an allowed root (it resolves to /etc)", workspace)},
		"rw under ro root": {func(_, host map[string]any) { host["Binds"] = []string{datasets + ":/data:rw"} },
			fmt.Sprintf("mount %s:/data is rw but %s allows only ro", datasets, datasets)},
		"bind volume in disguise": {func(_, host map[string]any) { host["Binds"] = []string{vol + ":/v:ro"} },
			fmt.Sprintf("mount volume %s:/v (host path /etc) is not under an allowed root", vol)},
		"all interfaces": {func(_, host map[string]any) {
			host["PortBindings"] = map[string]any{"30412/tcp": []any{map[string]any{"HostIp": "0.0.0.0"}}}
		}, "port 30412/tcp binds 0.0.0.0: only 127.0.0.1, ::1 allowed"},
		"host network by ID prefix": {func(_, host map[string]any) { host["NetworkMode"] = hostNet.ID[:12] },
			"network host is not allowed: it shares the host's network namespace"},
		"privileged": {func(_, host map[string]any) { host["Privileged"] = true },
			"privileged is not allowed: it gives the container every capability and device of the host"},
	}
	for name, tc := range refusals {
		t.Run(name, func(t *testing.T) {
			reasons, _, ok := decide(create(tc.mutate))
			if ok || !slices.Contains(reasons, tc.want) {
				t.Fatalf("allow=%v reasons %q, want %q among them", ok, reasons, tc.want)
			}
		})
	}
}
