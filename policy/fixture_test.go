package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
)

// openHandsBody is the hardened create request of an AI-agent sandbox
// runtime (shared notes: real-clients.md), with User set.
const openHandsBody = `{"ExposedPorts": {"30412/tcp": {}, "44107/tcp": {}},
 "Env": ["port=30412", "PYTHONUNBUFFERED=1", "OPENHANDS_SESSION_ID=3b8e0d5c"],
 "Cmd": ["/openhands/micromamba/bin/micromamba", "run", "-n", "openhands", "python", "-m",
         "openhands.runtime.action_execution_server", "30412", "--user-id", "1000"],
 "Image": "docker.openhands.dev/openhands/runtime:0.62-nikolaik",
 "User": "1000:1000",
 "Volumes": {"/workspace": {}, "/data": {}},
 "Entrypoint": [], "WorkingDir": "/openhands/code/",
 "HostConfig": {"NetworkMode": "default",
   "Binds": ["/home/alice/projects:/workspace:rw", "/home/alice/datasets:/data:ro"],
   "PortBindings": {"30412/tcp": [{"HostIp": "127.0.0.1", "HostPort": "30412"}],
                    "44107/tcp": [{"HostIp": "127.0.0.1", "HostPort": "44107"}]},
   "Mounts": []}}`

// openHandsRoots are the mount roots that allow the OpenHands create.
var openHandsRoots = map[string]any{
	"mount_roots": []any{
		map[string]any{"path": "/home/alice/projects", "modes": []any{"ro", "rw"}},
		map[string]any{"path": "/home/alice/datasets", "modes": []any{"ro"}},
	},
}

// openHandsInput is the OpenHands create as the normalizer presents it, and
// the canonical body bytes.
func openHandsInput(t testing.TB) (*input.Input, []byte) {
	t.Helper()
	var body container.CreateRequest
	if err := json.Unmarshal([]byte(openHandsBody), &body); err != nil {
		t.Fatal(err)
	}
	canonical, err := json.Marshal(&body)
	if err != nil {
		t.Fatal(err)
	}
	bind := func(host, target string, ro bool) input.Mount {
		return input.Mount{Origin: "binds", Type: "bind", Source: host, Target: target, HostBind: true,
			HostPath: host, RealPath: host, PathStatus: "resolved", ReadOnly: ro}
	}
	port := func(p string) input.Port {
		return input.Port{ContainerPort: p, Protocol: "tcp", HostIP: "127.0.0.1", HostPort: p, Loopback: true}
	}
	in := &input.Input{
		Operation: "container.create", Method: "POST", Path: "/v1.41/containers/create",
		APIVersion: "1.41", Versioned: true,
		Query:  map[string][]string{"name": {"openhands-runtime-3b8e0d5c"}},
		Caller: proxy.Caller{Known: true, UID: 1000, GID: 1000, PID: 4242, User: "alice", Group: "alice"},
		Body:   json.RawMessage(canonical),
		Container: &input.ContainerFacts{
			Name:  "openhands-runtime-3b8e0d5c",
			Image: body.Image,
			User:  input.UserFacts{Raw: "1000:1000", Source: "request", Value: "1000:1000", UID: 1000, GID: 1000, Resolved: true},
			Mounts: []input.Mount{
				bind("/home/alice/projects", "/workspace", false),
				bind("/home/alice/datasets", "/data", true),
			},
			Ports:    []input.Port{port("30412"), port("44107")},
			Networks: []input.Network{{Ref: "default", Mode: "default", Name: "bridge", ID: "f00dbabe", Found: true}},
			Namespaces: input.Namespaces{
				Network: input.Namespace{Mode: "default"},
				IPC:     input.Namespace{Mode: "private"},
				Cgroup:  input.Namespace{Mode: "private"},
			},
		},
	}
	return in, canonical
}

// staticBuilder stands in for input.Build: it returns a fixed input.
func staticBuilder(in *input.Input, body []byte) Builder {
	return func(_ context.Context, _ *proxy.Request) (*input.Input, []byte, error) {
		return in, body, nil
	}
}

// fakeDaemon answers the normalizer's lookups from memory, as the upstream
// would for the OpenHands case.
type fakeDaemon struct{}

var errNotFound = fmt.Errorf("no such object: %w", input.ErrNotFound)

func (fakeDaemon) InspectImage(_ context.Context, ref string) (*input.ImageInfo, error) {
	if ref == "docker.openhands.dev/openhands/runtime:0.62-nikolaik" {
		return &input.ImageInfo{ID: "sha256:aaa"}, nil
	}
	return nil, errNotFound
}

func (fakeDaemon) InspectContainer(context.Context, string) (*input.ContainerInfo, error) {
	return nil, errNotFound
}

func (fakeDaemon) InspectNetwork(_ context.Context, ref string) (*input.NetworkInfo, error) {
	switch ref {
	case "bridge", "default":
		return &input.NetworkInfo{ID: strings.Repeat("1", 64), Name: "bridge", Driver: "bridge", Scope: "local"}, nil
	case "openhands-network":
		return &input.NetworkInfo{ID: strings.Repeat("4", 64), Name: "openhands-network", Driver: "bridge", Scope: "local"}, nil
	}
	return nil, errNotFound
}

func (fakeDaemon) InspectVolume(context.Context, string) (*input.VolumeInfo, error) {
	return nil, errNotFound
}

// hostRoot is a directory standing for the host's filesystem, with Alice's
// projects and datasets, and /etc.
func hostRoot(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"home/alice/projects", "home/alice/datasets", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// openHandsRequest is the OpenHands create as the classifier hands it over.
func openHandsRequest(body string) *proxy.Request {
	return &proxy.Request{
		ID: "r1",
		Operation: proxy.Operation{Name: "container.create", Method: "POST", Path: "/v1.41/containers/create",
			APIVersion: "1.41", Query: url.Values{"name": {"openhands-runtime-3b8e0d5c"}}, Vars: map[string]string{}, JudgeBody: true},
		Caller: proxy.Caller{Known: true, UID: 1000, GID: 1000, PID: 4242, User: "alice"},
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   []byte(body),
	}
}
