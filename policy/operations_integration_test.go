package policy

// Integration tests of the library's rules for the operations beyond
// container.create: each request goes through the real proxy (router,
// engine with the built-in library, daemon look-ups) to the real dockerd.
// Allowed forms must work on the daemon; forbidden forms must be refused
// with their reason and leave the daemon as it was.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sockproxy/sockproxy/internal/dockertest"
	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
	"github.com/sockproxy/sockproxy/proxy/route"
)

// startPolicyProxy runs the real proxy with the built-in library (data
// merged over its defaults) in front of the real dockerd, as serve wires
// it, and returns a client of the proxy's socket.
func startPolicyProxy(t *testing.T, data map[string]any) docker {
	t.Helper()
	sock := dockertest.Require(t)
	upstream := proxy.Upstream{Address: "unix://" + sock}
	rt, err := upstream.RoundTripper()
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, Options{Data: data, Input: input.Options{Daemon: input.NewHTTPDaemon(rt, "")}})
	p, err := proxy.New(proxy.Config{
		Classifier: route.New(route.Config{MinAPIVersion: route.DefaultMinAPIVersion}),
		Decider:    e, Upstream: upstream, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "sp-ops-") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	ln, err := proxy.ListenUnix(filepath.Join(dir, "proxy.sock"), 0o600, "")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	t.Cleanup(func() {
		if err := p.Shutdown(context.Background()); err != nil {
			t.Errorf("proxy shutdown: %v", err)
		}
		<-served
		os.RemoveAll(dir)
	})
	return docker{t: t, c: dockertest.Client(ln.Addr().String())}
}

// send is a request (to /v1.41 unless path names a version) with a
// content type of the caller's choice (none when empty) and extra header
// lines ("Key: value"); it returns status and body.
func (d docker) send(method, path, contentType string, body []byte, header ...string) (int, []byte) {
	d.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	return d.sendReader(method, path, contentType, r, header...)
}

// sendReader is send with a body reader: one whose length the client
// cannot tell is sent chunked.
func (d docker) sendReader(method, path, contentType string, r io.Reader, header ...string) (int, []byte) {
	d.t.Helper()
	if !strings.HasPrefix(path, "/v1.") {
		path = "/v1.41" + path
	}
	req, err := http.NewRequest(method, "http://docker"+path, r)
	if err != nil {
		d.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	resp, err := d.c.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// on is d reporting to t: subtests and cleanups use their own.
func (d docker) on(t *testing.T) docker {
	d.t = t
	return d
}

// refusal is one forbidden request and the reasons its refusal must name.
type refusal struct {
	name        string
	method      string
	path        string
	contentType string // application/json when a body is given and this is empty
	body        string
	status      int // 403 when 0
	want        []string
	// byRouter: refused by the router, as dockerd would refuse it, before
	// any operation is named (the message has no "sockproxy refused").
	byRouter bool
	// chunked sends the body chunked, with no length.
	chunked bool
}

// expectRefused sends each refusal through the proxy and asserts the
// status and that the message is "sockproxy refused <op>: ..." naming every
// wanted reason; effect, when set, runs after each to show the daemon
// did not act on it.
func expectRefused(t *testing.T, px docker, op string, cases []refusal, effect func(t *testing.T)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			px.t = t
			var body []byte
			ct := tc.contentType
			if tc.body != "" {
				body = []byte(tc.body)
				if ct == "" {
					ct = "application/json"
				}
			}
			var status int
			var out []byte
			if tc.chunked {
				status, out = px.sendReader(tc.method, tc.path, ct, io.MultiReader(bytes.NewReader(body)))
			} else {
				status, out = px.send(tc.method, tc.path, ct, body)
			}
			want := tc.status
			if want == 0 {
				want = http.StatusForbidden
			}
			var msg struct{ Message string }
			_ = json.Unmarshal(out, &msg)
			prefix := "sockproxy refused " + op + ": "
			if tc.byRouter {
				prefix = ""
			}
			if status != want || !strings.HasPrefix(msg.Message, prefix) {
				t.Fatalf("%s %s: HTTP %d %s, want %d and a refusal of %s", tc.method, tc.path, status, out, want, op)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg.Message, w) {
					t.Errorf("refusal %q does not name %q", msg.Message, w)
				}
			}
			if effect != nil {
				effect(t)
			}
		})
	}
}

// inspect decodes a GET of path on the daemon (direct) into v.
func inspect(api docker, path string, v any) {
	api.t.Helper()
	if err := json.Unmarshal(api.do("GET", path, nil, http.StatusOK), v); err != nil {
		api.t.Fatalf("GET %s: %v", path, err)
	}
}

// absent asserts that the daemon has no object at path.
func absent(t *testing.T, api docker, path string) {
	t.Helper()
	api.t = t
	api.do("GET", path, nil, http.StatusNotFound)
}

// tarOf is a tar archive of regular files (name → content).
func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarFile returns the content of name in a tar archive.
func tarFile(t *testing.T, archive []byte, name string) (string, bool) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", false
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b), true
		}
	}
}

// runContainer creates and starts a container on the daemon (direct) and
// removes it when the test ends; it returns the container's ID.
func runContainer(t *testing.T, api docker, name string, body string, start bool) string {
	t.Helper()
	var created struct{ ID string }
	if err := json.Unmarshal(api.do("POST", "/containers/create?name="+name, []byte(body), http.StatusCreated), &created); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.on(t).do("DELETE", "/containers/"+created.ID+"?force=1", nil, http.StatusNoContent) })
	if start {
		api.do("POST", "/containers/"+created.ID+"/start", nil, http.StatusNoContent)
	}
	return created.ID
}

func imageID(api docker, ref string) string {
	var img struct{ ID string }
	inspect(api, "/images/"+ref+"/json", &img)
	return img.ID
}

func TestOperationsThroughProxy(t *testing.T) {
	sock := dockertest.Require(t)
	api := docker{t: t, c: dockertest.Client(sock)}
	prefix := uniqueName(t)

	// Networks first: their cleanup must run after the containers are gone.
	netAllowed, netOther := prefix+"-net-ok", prefix+"-net-other"
	var otherNet struct{ ID string }
	for _, n := range []string{netAllowed, netOther} {
		out := api.do("POST", "/networks/create", []byte(`{"Name": "`+n+`"}`), http.StatusCreated)
		if n == netOther {
			_ = json.Unmarshal(out, &otherNet)
		}
		t.Cleanup(func() { api.on(t).do("DELETE", "/networks/"+n, nil, http.StatusNoContent) })
	}

	// Volumes too: a plain one, and one binding a host directory.
	volDir := t.TempDir()
	if err := os.Chmod(volDir, 0o755); err != nil {
		t.Fatal(err)
	}
	plainVol, bindVol := prefix+"-plain", prefix+"-bindvol"
	for _, v := range []string{`{"Name": "` + plainVol + `"}`, `{"Name": "` + bindVol + `", "DriverOpts": {"type": "none", "o": "bind", "device": "` + volDir + `"}}`} {
		api.do("POST", "/volumes/create", []byte(v), http.StatusCreated)
	}
	t.Cleanup(func() {
		api.on(t).do("DELETE", "/volumes/"+plainVol, nil, http.StatusNoContent)
		api.on(t).do("DELETE", "/volumes/"+bindVol, nil, http.StatusNoContent)
	})

	// Two containers run for the whole test: one as the image's root,
	// one as uid 1000 with no-new-privileges and the plain volume.
	rootCtr := runContainer(t, api, prefix+"-root", `{"Image": "`+dockertest.Image+`", "Cmd": ["sleep", "600"]}`, true)
	userCtr := runContainer(t, api, prefix+"-user", `{"Image": "`+dockertest.NonRootImage+`", "Cmd": ["sleep", "600"],
		"HostConfig": {"SecurityOpt": ["no-new-privileges"], "Binds": ["`+plainVol+`:/plain"]}}`, true)

	hardened := startPolicyProxy(t, map[string]any{
		"allowed_networks": []any{"default", "bridge", "none", netAllowed},
		"update_limits": map[string]any{
			"max_memory": 256 << 20, "max_nano_cpus": 1_000_000_000, "max_cpu_shares": 1024, "max_pids": 100,
			"restart_policies": []any{"no", "on-failure"}, "max_restart_retries": 3,
		},
	})
	px := hardened

	t.Run("exec.create", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		execIDs := func(ctr string) []string {
			var c struct{ ExecIDs []string }
			inspect(api, "/containers/"+ctr+"/json", &c)
			return c.ExecIDs
		}
		for _, tc := range []struct{ name, ctr, body string }{
			{"empty User is the container's non-root user", userCtr, `{"Cmd": ["id", "-u"], "AttachStdout": true}`},
			{"explicit non-root User in a root container", rootCtr, `{"Cmd": ["id", "-u"], "AttachStdout": true, "User": "1000:1000"}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				px.t = t
				var created struct{ ID string }
				if err := json.Unmarshal(px.do("POST", "/containers/"+tc.ctr+"/exec", []byte(tc.body), http.StatusCreated), &created); err != nil {
					t.Fatal(err)
				}
				out := px.do("POST", "/exec/"+created.ID+"/start", []byte(`{"Detach": false, "Tty": true}`), http.StatusOK)
				if got := strings.TrimSpace(string(out)); got != "1000" {
					t.Fatalf("exec ran as uid %q, want 1000", got)
				}
			})
		}
		// Created by someone else: the proxy refuses privileged creates.
		privCtr := runContainer(t, api, prefix+"-priv", `{"Image": "`+dockertest.NonRootImage+`", "Cmd": ["sleep", "600"], "HostConfig": {"Privileged": true}}`, true)
		api.t = t
		snapshot := func() map[string][]string {
			return map[string][]string{rootCtr: execIDs(rootCtr), userCtr: execIDs(userCtr), privCtr: execIDs(privCtr)}
		}
		before := snapshot()
		expectRefused(t, px, "exec.create", []refusal{
			{name: "container's user is root", method: "POST", path: "/containers/" + rootCtr + "/exec", body: `{"Cmd": ["id"]}`,
				want: []string{"exec user root (uid 0, the container's user) not allowed: set User to a non-root uid"}},
			{name: "User 0:0", method: "POST", path: "/containers/" + userCtr + "/exec", body: `{"Cmd": ["id"], "User": "0:0"}`,
				want: []string{"exec user 0:0 (uid 0) not allowed: set User to a non-root uid"}},
			{name: "User root by name", method: "POST", path: "/containers/" + userCtr + "/exec", body: `{"Cmd": ["id"], "User": "root"}`,
				want: []string{"exec user root (uid 0) not allowed"}},
			{name: "privileged", method: "POST", path: "/containers/" + userCtr + "/exec", body: `{"Cmd": ["id"], "Privileged": true}`,
				want: []string{"exec privileged is not allowed: it gives the process every capability of the host"}},
			{name: "non-root exec in a privileged container", method: "POST", path: "/containers/" + privCtr + "/exec", body: `{"Cmd": ["id"], "User": "1000:1000"}`,
				want: []string{"exec into container " + privCtr + " is not allowed: it runs privileged"}},
			{name: "container by name prefix of the root container", method: "POST", path: "/containers/" + rootCtr[:12] + "/exec", body: `{"Cmd": ["id"], "User": ""}`,
				want: []string{"exec user root (uid 0, the container's user) not allowed"}},
		}, func(t *testing.T) {
			api.t = t
			now := snapshot()
			if !reflect.DeepEqual(now, before) {
				t.Fatalf("a refused exec.create made an exec instance: exec IDs %v, were %v", now, before)
			}
		})
	})

	t.Run("container.start", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		ctr := runContainer(t, api, prefix+"-start", `{"Image": "`+dockertest.NonRootImage+`", "Cmd": ["sleep", "600"]}`, false)
		hostConfig := `{"Binds": ["/:/host"], "Privileged": true, "PidMode": "host"}`
		expectRefused(t, px, "container.start", []refusal{
			{name: "HostConfig body", method: "POST", path: "/containers/" + ctr + "/start", body: hostConfig, status: http.StatusBadRequest,
				want: []string{"starting a container with a request body was removed in API 1.24; send no body"}},
			{name: "HostConfig body as text/plain", method: "POST", path: "/containers/" + ctr + "/start", contentType: "text/plain", body: hostConfig, status: http.StatusBadRequest,
				want: []string{"starting a container with a request body was removed in API 1.24"}},
			{name: "chunked HostConfig body", method: "POST", path: "/containers/" + ctr + "/start", body: hostConfig, chunked: true, status: http.StatusBadRequest,
				want: []string{"starting a container with a request body was removed in API 1.24"}},
			{name: "API 1.23, where the body replaces the HostConfig", method: "POST", path: "/v1.23/containers/" + ctr + "/start", body: hostConfig, status: http.StatusBadRequest, byRouter: true,
				want: []string{"client version 1.23 is too old. Minimum supported API version is 1.24"}},
		}, func(t *testing.T) {
			api.t = t
			var c struct {
				State      struct{ Status string }
				HostConfig struct {
					Binds      []string
					Privileged bool
					PidMode    string
				}
			}
			inspect(api, "/containers/"+ctr+"/json", &c)
			if c.State.Status != "created" || c.HostConfig.Binds != nil || c.HostConfig.Privileged || c.HostConfig.PidMode != "" {
				t.Fatalf("after a refused start the container is %s with %+v", c.State.Status, c.HostConfig)
			}
		})
		px.t, api.t = t, t
		px.do("POST", "/containers/"+ctr+"/start", []byte("{}"), http.StatusNoContent) // short bodies are dropped
		var c struct{ State struct{ Running bool } }
		inspect(api, "/containers/"+ctr+"/json", &c)
		if !c.State.Running {
			t.Fatal("container not running after an allowed start")
		}
	})

	t.Run("network.connect", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		networks := func() []string {
			var c struct {
				NetworkSettings struct{ Networks map[string]any }
			}
			inspect(api, "/containers/"+userCtr+"/json", &c)
			return slices.Sorted(maps.Keys(c.NetworkSettings.Networks))
		}
		before := networks()
		connect := func(ep string) string { return `{"Container": "` + userCtr + `", "EndpointConfig": ` + ep + `}` }
		allowedText := "only default, bridge, none, " + netAllowed + " allowed"
		expectRefused(t, px, "network.connect", []refusal{
			{name: "network not allowed", method: "POST", path: "/networks/" + netOther + "/connect", body: connect(`{}`),
				want: []string{"network " + netOther + " is not allowed: " + allowedText}},
			{name: "network by ID prefix", method: "POST", path: "/networks/" + otherNet.ID[:12] + "/connect", body: connect(`{}`),
				want: []string{fmt.Sprintf("network %s (%s) is not allowed: %s", otherNet.ID[:12], netOther, allowedText)}},
			{name: "host network", method: "POST", path: "/networks/host/connect", body: connect(`{}`),
				want: []string{"network host is not allowed: it shares the host's network namespace"}},
			{name: "static address on an allowed network", method: "POST", path: "/networks/" + netAllowed + "/connect", body: connect(`{"IPAMConfig": {"IPv4Address": "172.31.99.9"}}`),
				want: []string{"network.connect with a static address (ipv4 172.31.99.9) is not allowed: set allow_endpoint_static_ip"}},
			{name: "links on an allowed network", method: "POST", path: "/networks/" + netAllowed + "/connect", body: connect(`{"Links": ["` + rootCtr + `:peer"]}`),
				want: []string{"network.connect with links " + rootCtr + ":peer is not allowed: links reach into other containers"}},
		}, func(t *testing.T) {
			api.t = t
			if now := networks(); !reflect.DeepEqual(now, before) {
				t.Fatalf("a refused connect changed the container's networks: %v, were %v", now, before)
			}
		})
		px.t, api.t = t, t
		px.do("POST", "/networks/"+netAllowed+"/connect", []byte(connect(`{"Aliases": ["sandbox"]}`)), http.StatusOK)
		if now := networks(); !slices.Contains(now, netAllowed) {
			t.Fatalf("after an allowed connect the container is on %v", now)
		}
	})

	t.Run("network.create", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		name := prefix + "-newnet"
		create := func(rest string) string { return `{"Name": "` + name + `"` + rest + `}` }
		options := "allowed_network_options are com.docker.network.driver.mtu, com.docker.network.bridge.enable_icc, com.docker.network.bridge.enable_ip_masquerade, com.docker.network.container_iface_prefix"
		expectRefused(t, px, "network.create", []refusal{
			{name: "macvlan", method: "POST", path: "/networks/create", body: create(`, "Driver": "macvlan", "Options": {"parent": "eth0"}`),
				want: []string{"network driver macvlan is not allowed: network_drivers are bridge", "network option parent=eth0 is not allowed: " + options}},
			{name: "ipvlan", method: "POST", path: "/networks/create", body: create(`, "Driver": "ipvlan", "Options": {"parent": "eth0", "ipvlan_mode": "l2"}`),
				want: []string{"network driver ipvlan is not allowed: network_drivers are bridge"}},
			{name: "bridge on a host interface", method: "POST", path: "/networks/create", body: create(`, "Options": {"com.docker.network.bridge.name": "docker0"}`),
				want: []string{"network option com.docker.network.bridge.name=docker0 is not allowed"}},
			{name: "bridge publishing on all interfaces", method: "POST", path: "/networks/create", body: create(`, "Driver": "bridge", "Options": {"com.docker.network.bridge.host_binding_ipv4": "0.0.0.0"}`),
				want: []string{"network option com.docker.network.bridge.host_binding_ipv4=0.0.0.0 is not allowed"}},
			{name: "custom subnet", method: "POST", path: "/networks/create", body: create(`, "IPAM": {"Config": [{"Subnet": "10.231.0.0/24"}]}`),
				want: []string{"network address range 10.231.0.0/24 is not allowed: allowed_network_subnets are none"}},
			{name: "IPAM driver", method: "POST", path: "/networks/create", body: create(`, "IPAM": {"Driver": "sp-ipam"}`),
				want: []string{"network IPAM driver sp-ipam is not allowed: only the default"}},
			{name: "ConfigFrom", method: "POST", path: "/networks/create", body: create(`, "ConfigFrom": {"Network": "` + netOther + `"}`),
				want: []string{"network.create with ConfigFrom " + netOther + " is not allowed"}},
		}, func(t *testing.T) { absent(t, api, "/networks/"+name) })
		px.t, api.t = t, t
		px.do("POST", "/networks/create", []byte(create(`, "Driver": "bridge", "Options": {"com.docker.network.driver.mtu": "1400"}`)), http.StatusCreated)
		t.Cleanup(func() { api.on(t).do("DELETE", "/networks/"+name, nil, http.StatusNoContent) })
		var n struct{ Options map[string]string }
		inspect(api, "/networks/"+name, &n)
		if n.Options["com.docker.network.driver.mtu"] != "1400" {
			t.Fatalf("created network has options %v", n.Options)
		}
	})

	t.Run("volume.create", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		name := prefix + "-vol"
		create := func(rest string) string { return `{"Name": "` + name + `"` + rest + `}` }
		expectRefused(t, px, "volume.create", []refusal{
			{name: "bind of a host path", method: "POST", path: "/volumes/create", body: create(`, "DriverOpts": {"type": "none", "o": "bind", "device": "/etc"}`),
				want: []string{"volume " + name + ": local driver options device=/etc,o=bind,type=none binds a host path: allowed_local_volume_kinds are tmpfs"}},
			{name: "host device", method: "POST", path: "/volumes/create", body: create(`, "DriverOpts": {"type": "ext4", "device": "/dev/sda1"}`),
				want: []string{"volume " + name + ": local driver options device=/dev/sda1,type=ext4 mounts a host device"}},
			{name: "network share", method: "POST", path: "/volumes/create", body: create(`, "DriverOpts": {"type": "nfs", "o": "addr=10.0.0.1,rw", "device": ":/export"}`),
				want: []string{"mounts a network share", "local driver option o=addr=10.0.0.1,rw names a network server (addr=): not allowed"}},
			{name: "overlay of host paths", method: "POST", path: "/volumes/create", body: create(`, "DriverOpts": {"type": "overlay", "device": "overlay", "o": "lowerdir=/etc,upperdir=/tmp/u,workdir=/tmp/w"}`),
				want: []string{"overlays host paths"}},
			{name: "driver not allowed", method: "POST", path: "/volumes/create", body: create(`, "Driver": "sp-no-such-driver"`),
				want: []string{"volume driver sp-no-such-driver is not allowed: only local and volume_drivers (none)"}},
		}, func(t *testing.T) { absent(t, api, "/volumes/"+name) })
		for i, opts := range []string{``, `, "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}`} {
			px.t, api.t = t, t
			v := fmt.Sprintf("%s-%d", name, i)
			px.do("POST", "/volumes/create", []byte(`{"Name": "`+v+`"`+opts+`}`), http.StatusCreated)
			t.Cleanup(func() { api.on(t).do("DELETE", "/volumes/"+v, nil, http.StatusNoContent) })
			var vol struct{ Name string }
			inspect(api, "/volumes/"+v, &vol)
		}
	})

	t.Run("container.update", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		type hostConfig struct {
			Memory, NanoCpus, CpuShares, CpuQuota, KernelMemory int64
			PidsLimit                                           *int64
			RestartPolicy                                       struct {
				Name              string
				MaximumRetryCount int
			}
		}
		state := func() hostConfig {
			var c struct{ HostConfig hostConfig }
			inspect(api, "/containers/"+rootCtr+"/json", &c)
			return c.HostConfig
		}
		before := state()
		path := "/containers/" + rootCtr + "/update"
		expectRefused(t, px, "container.update", []refusal{
			{name: "memory over the bound", method: "POST", path: path, body: `{"Memory": 1073741824}`,
				want: []string{"container.update memory 1073741824 is over update_limits.max_memory 268435456"}},
			{name: "CPUs over the bound", method: "POST", path: path, body: `{"NanoCpus": 4000000000}`,
				want: []string{"container.update nano_cpus 4000000000 is over update_limits.max_nano_cpus 1000000000"}},
			{name: "CPU quota around the bound", method: "POST", path: path, body: `{"CpuQuota": 400000, "CpuPeriod": 100000}`,
				want: []string{"container.update cpu_quota is not allowed while update_limits.max_nano_cpus is set: use NanoCpus"}},
			{name: "CPU shares over the bound", method: "POST", path: path, body: `{"CpuShares": 4096}`,
				want: []string{"container.update cpu_shares 4096 is over update_limits.max_cpu_shares 1024"}},
			{name: "unlimited pids", method: "POST", path: path, body: `{"PidsLimit": -1}`,
				want: []string{"container.update pids_limit -1 is not within update_limits.max_pids 100"}},
			{name: "pids over the bound", method: "POST", path: path, body: `{"PidsLimit": 1000}`,
				want: []string{"container.update pids_limit 1000 is not within update_limits.max_pids 100"}},
			{name: "restart policy not allowed", method: "POST", path: path, body: `{"RestartPolicy": {"Name": "always"}}`,
				want: []string{"container.update restart policy always is not allowed: update_limits.restart_policies are no, on-failure"}},
			{name: "restart retries over the bound", method: "POST", path: path, body: `{"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 10}}`,
				want: []string{"container.update restart retries 10 are over update_limits.max_restart_retries 3"}},
			{name: "a field dockerd does not apply on update", method: "POST", path: path, body: `{"KernelMemory": 8388608, "Memory": 67108864}`,
				want: []string{"container.update sets KernelMemory: only Memory"}},
			{name: "no body", method: "POST", path: path,
				want: []string{"container.update without a body: nothing to judge, refused"}},
		}, func(t *testing.T) {
			api.t = t
			if now := state(); !reflect.DeepEqual(now, before) {
				t.Fatalf("a refused update changed the container: %+v, was %+v", now, before)
			}
		})
		px.t, api.t = t, t
		px.do("POST", path, []byte(`{"Memory": 134217728, "MemorySwap": 268435456, "NanoCpus": 500000000, "CpuShares": 512, "PidsLimit": 50,
			"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}`), http.StatusOK)
		now := state()
		if now.Memory != 134217728 || now.NanoCpus != 500000000 || now.CpuShares != 512 || now.PidsLimit == nil || *now.PidsLimit != 50 ||
			now.RestartPolicy.Name != "on-failure" || now.RestartPolicy.MaximumRetryCount != 2 {
			t.Fatalf("after an allowed update the container has %+v", now)
		}
	})

	t.Run("container.archive and export", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		hostDir := t.TempDir()
		if err := os.Chmod(hostDir, 0o755); err != nil { // as a user's project directory
			t.Fatal(err)
		}
		bindCtr := runContainer(t, api, prefix+"-bind", `{"Image": "`+dockertest.NonRootImage+`", "Cmd": ["sleep", "600"],
			"HostConfig": {"SecurityOpt": ["no-new-privileges"], "Binds": ["`+hostDir+`:/workspace:rw"]}}`, true)
		volCtr := runContainer(t, api, prefix+"-vol", `{"Image": "`+dockertest.NonRootImage+`", "Cmd": ["sleep", "600"],
			"HostConfig": {"SecurityOpt": ["no-new-privileges"], "Binds": ["`+bindVol+`:/data"]}}`, true)
		// A setuid root shell: written where a non-root exec, or a host
		// user, could run it.
		var setuid bytes.Buffer
		tw := tar.NewWriter(&setuid)
		_ = tw.WriteHeader(&tar.Header{Name: "sp-suid", Mode: 0o4755, Size: 2, Typeflag: tar.TypeReg})
		_, _ = io.WriteString(tw, "#!")
		_ = tw.Close()
		archivePath := func(ctr, dir string) string { return "/containers/" + ctr + "/archive?path=" + dir }
		expectRefused(t, px, "container.archive.put", []refusal{
			{name: "container without no-new-privileges", method: "PUT", path: archivePath(rootCtr, "/tmp"), contentType: "application/x-tar", body: setuid.String(),
				want: []string{"archive put into container " + rootCtr + " is not allowed: it does not run with no-new-privileges"}},
			{name: "container with a writable host bind", method: "PUT", path: archivePath(bindCtr, "/workspace"), contentType: "application/x-tar", body: setuid.String(),
				want: []string{"archive put into container " + bindCtr + " is not allowed: host path " + hostDir + " is mounted writable at /workspace, and an archive is written there as root"}},
			{name: "writable host bind reached through the root", method: "PUT", path: archivePath(bindCtr, "/"), contentType: "application/x-tar", body: "",
				want: []string{"host path " + hostDir + " is mounted writable at /workspace"}},
			{name: "container with a writable volume binding a host path", method: "PUT", path: archivePath(volCtr, "/data"), contentType: "application/x-tar", body: setuid.String(),
				want: []string{"archive put into container " + volCtr + " is not allowed: volume " + bindVol + ", mounted writable at /data, binds a host path (local driver options), and an archive is written there as root"}},
		}, func(t *testing.T) {
			api.t = t
			api.do("HEAD", archivePath(rootCtr, "/tmp/sp-suid"), nil, http.StatusNotFound)
			for _, dir := range []string{hostDir, volDir} {
				if _, err := os.Stat(filepath.Join(dir, "sp-suid")); !os.IsNotExist(err) {
					t.Fatalf("a refused archive put wrote into the host directory %s: %v", dir, err)
				}
			}
		})
		px.t, api.t = t, t
		for _, dir := range []string{"/tmp", "/plain"} { // the container's own files and a plain volume
			px.do("PUT", archivePath(userCtr, dir), tarOf(t, map[string]string{"sp-file": "through the proxy\n"}), http.StatusOK)
			got, ok := tarFile(t, px.do("GET", archivePath(userCtr, dir+"/sp-file"), nil, http.StatusOK), "sp-file")
			if !ok || got != "through the proxy\n" {
				t.Fatalf("archive get of the file put into %s: %q (found %v)", dir, got, ok)
			}
		}
		if _, ok := tarFile(t, px.do("GET", "/containers/"+userCtr+"/export", nil, http.StatusOK), "tmp/sp-file"); !ok {
			t.Fatal("the export of the container has no tmp/sp-file")
		}
	})

	t.Run("image writes refused by default", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		ref := prefix + "-img"
		rootID := imageID(api, dockertest.Image)
		unchanged := func(t *testing.T) {
			api.t = t
			absent(t, api, "/images/"+ref+":latest/json")
			if id := imageID(api, dockertest.Image); id != rootID {
				t.Fatalf("%s now points at %s, was %s", dockertest.Image, id, rootID)
			}
		}
		for _, tc := range []struct {
			op    string
			cases []refusal
		}{
			{"container.commit", []refusal{{name: "commit", method: "POST", path: "/commit?container=" + userCtr + "&repo=" + ref,
				want: []string{"operation container.commit is refused by the policy (operations: deny)"}}}},
			{"image.tag", []refusal{{name: "tag", method: "POST", path: "/images/" + dockertest.NonRootImage + "/tag?repo=" + ref,
				want: []string{"operation image.tag is refused by the policy (operations: deny)"}}}},
			{"image.load", []refusal{{name: "load", method: "POST", path: "/images/load", contentType: "application/x-tar", body: string(savedAs(t, api, dockertest.NonRootImage, ref+":latest")),
				want: []string{"operation image.load is refused by the policy (operations: deny)"}}}},
			{"image.create", []refusal{
				{name: "import from the body", method: "POST", path: "/images/create?fromSrc=-&repo=" + ref, body: string(tarOf(t, map[string]string{"f": "x"})), contentType: "application/x-tar",
					want: []string{"image import (fromSrc=-) is not allowed: set allow_image_import"}},
				{name: "import from a URL", method: "POST", path: "/images/create?fromSrc=http://127.0.0.1:9/x.tar&repo=" + ref,
					want: []string{"image import from a URL (fromSrc=http://127.0.0.1:9/x.tar) is not allowed: the daemon would fetch it"}},
			}},
			{"image.build", []refusal{{name: "build", method: "POST", path: "/build?t=" + ref, contentType: "application/x-tar", body: string(buildContext(t)),
				want: []string{"operation image.build is refused by the policy (operations: deny)"}}}},
		} {
			expectRefused(t, px, tc.op, tc.cases, unchanged)
		}
	})

	t.Run("refused by default", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		var infoBefore struct {
			Swarm struct{ LocalNodeState string }
		}
		inspect(api, "/info", &infoBefore)
		pluginsBefore := api.do("GET", "/plugins", nil, http.StatusOK)
		deny := func(op, method, path, body string) refusal {
			return refusal{name: op, method: method, path: path, body: body,
				want: []string{"operation " + op + " is refused by the policy (operations: deny)"}}
		}
		for _, tc := range []refusal{
			deny("plugin.privileges", "GET", "/plugins/privileges?remote=sp-test/plugin", ""),
			deny("plugin.pull", "POST", "/plugins/pull?remote=sp-test/plugin&name=sp-test-plugin", `[{"Name": "mount", "Value": ["/"]}]`),
			deny("plugin.create", "POST", "/plugins/create?name=sp-test-plugin", ""),
			deny("plugin.enable", "POST", "/plugins/sp-test-plugin/enable", ""),
			deny("swarm.inspect", "GET", "/swarm", ""),
			deny("swarm.init", "POST", "/swarm/init", `{"ListenAddr": "127.0.0.1:2377", "AdvertiseAddr": "127.0.0.1"}`),
			deny("swarm.join", "POST", "/swarm/join", `{"ListenAddr": "127.0.0.1:2377", "RemoteAddrs": ["127.0.0.1:2378"], "JoinToken": "x"}`),
			deny("service.list", "GET", "/services", ""),
			deny("service.create", "POST", "/services/create", `{"Name": "sp-test-svc", "TaskTemplate": {"ContainerSpec": {"Image": "`+dockertest.Image+`"}}}`),
			deny("task.list", "GET", "/tasks", ""),
			deny("secret.list", "GET", "/secrets", ""),
			deny("secret.create", "POST", "/secrets/create", `{"Name": "sp-test-secret", "Data": "aGk="}`),
			deny("config.list", "GET", "/configs", ""),
			deny("config.create", "POST", "/configs/create", `{"Name": "sp-test-config", "Data": "aGk="}`),
			deny("node.list", "GET", "/nodes", ""),
			deny("session", "POST", "/session", ""),
			deny("grpc", "POST", "/grpc", ""),
		} {
			expectRefused(t, px, tc.name, []refusal{tc}, nil)
		}
		// BuildKit's session and gRPC endpoints upgrade to h2c: no tunnel.
		for _, op := range []string{"session", "grpc"} {
			status, out := px.send("POST", "/"+op, "", nil, "Connection: Upgrade", "Upgrade: h2c", "X-Docker-Expose-Session-Uuid: sp-test")
			if status != http.StatusForbidden || !strings.Contains(string(out), "operation "+op+" is refused by the policy") {
				t.Errorf("POST /%s with Upgrade: h2c: HTTP %d %s", op, status, out)
			}
		}
		api.t = t
		var infoAfter struct {
			Swarm struct{ LocalNodeState string }
		}
		inspect(api, "/info", &infoAfter)
		if infoAfter.Swarm.LocalNodeState != infoBefore.Swarm.LocalNodeState {
			t.Errorf("swarm state %q, was %q", infoAfter.Swarm.LocalNodeState, infoBefore.Swarm.LocalNodeState)
		}
		if after := api.do("GET", "/plugins", nil, http.StatusOK); !bytes.Equal(after, pluginsBefore) {
			t.Errorf("plugins %s, were %s", after, pluginsBefore)
		}
	})

}

// Where the settings open an operation (commit, tag, build, import, load,
// bind volumes), its allowed form works and the library still refuses
// what they do not open, leaving the daemon as it was.
func TestOperationsConfiguredThroughProxy(t *testing.T) {
	sock := dockertest.Require(t)
	api := docker{t: t, c: dockertest.Client(sock)}
	prefix := uniqueName(t)
	volRoot := t.TempDir()
	opened := startPolicyProxy(t, map[string]any{
		"operations": map[string]any{"container.commit": "judge", "image.tag": "judge", "image.build": "judge", "image.load": "allow"},
		// Sandbox images by name, and sandbox tags of any image.
		"writable_images":            []any{prefix + "-*", "*:" + prefix + "-*"},
		"allow_image_import":         true,
		"allowed_local_volume_kinds": []any{"tmpfs", "bind"},
		"mount_roots":                []any{map[string]any{"path": volRoot, "modes": []any{"ro", "rw"}}},
	})
	px := opened
	writable := "writable_images are " + prefix + "-*, *:" + prefix + "-*"
	removeImage := func(ref string) { t.Cleanup(func() { api.on(t).do("DELETE", "/images/"+ref, nil, http.StatusOK) }) }

	// victim stands for a reference other rules trust (the images
	// containers may be created from): no refused request may re-point it.
	victim := "sp-test-victim-" + strings.TrimPrefix(prefix, "sp-test-policy-")
	api.do("POST", "/images/"+dockertest.NonRootImage+"/tag?repo="+victim+"&tag=latest", nil, http.StatusCreated)
	removeImage(victim + ":latest")
	victimID := imageID(api, victim+":latest")
	untouched := func(refs ...string) func(t *testing.T) {
		return func(t *testing.T) {
			api := api.on(t)
			if id := imageID(api, victim+":latest"); id != victimID {
				t.Fatalf("%s:latest now points at %s, was %s", victim, id, victimID)
			}
			for _, ref := range refs {
				absent(t, api, "/images/"+ref+"/json")
			}
		}
	}
	userCtr := runContainer(t, api, prefix+"-user", `{"Image": "`+dockertest.NonRootImage+`", "Cmd": ["sleep", "600"]}`, true)
	q := url.QueryEscape

	t.Run("image.tag", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		path := "/images/" + dockertest.Image + "/tag?"
		expectRefused(t, px, "image.tag", []refusal{
			{name: "re-point a trusted reference", method: "POST", path: path + "repo=" + victim + "&tag=latest",
				want: []string{"image.tag would write the image reference " + victim + ":latest: " + writable}},
			{name: "tag in repo replaced by the tag parameter", method: "POST", path: path + "repo=" + q(victim+":"+prefix+"-x") + "&tag=latest",
				want: []string{"image.tag would write the image reference " + victim + ":latest: " + writable}},
			{name: "no repo", method: "POST", path: path + "tag=latest",
				want: []string{"image.tag without repo: refused"}},
		}, untouched())
		px.t, api.t = t, t
		for _, ref := range []string{prefix + "-tagged:v1", victim + ":" + prefix + "-v1"} {
			repo, tag, _ := strings.Cut(ref, ":")
			px.do("POST", path+"repo="+repo+"&tag="+tag, nil, http.StatusCreated)
			removeImage(ref)
			if imageID(api, ref) != imageID(api, dockertest.Image) {
				t.Fatalf("%s does not point at %s", ref, dockertest.Image)
			}
		}
	})

	t.Run("container.commit", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		path := "/commit?container=" + userCtr + "&repo="
		ref := prefix + "-commit"
		expectRefused(t, px, "container.commit", []refusal{
			{name: "re-point a trusted reference", method: "POST", path: path + victim + "&tag=latest",
				want: []string{"container.commit would write the image reference " + victim + ":latest: " + writable}},
			{name: "root user in the config", method: "POST", path: path + ref, body: `{"User": "0"}`,
				want: []string{"commit with User 0 (uid 0) not allowed: the image's containers would run as root"}},
			{name: "USER root change", method: "POST", path: path + ref + "&changes=" + q("USER root"),
				want: []string{`commit change "USER root" makes the image's user root: not allowed`}},
			{name: "USER root on a second line", method: "POST", path: path + ref + "&changes=" + q("ENV A=1\nUSER root"),
				want: []string{`commit change "ENV A=1\nUSER root" holds a line break: dockerd reads every line as an instruction`}},
			{name: "quoted root user", method: "POST", path: path + ref + "&changes=" + q(`USER "root"`),
				want: []string{`commit change "USER \"root\"": the user is not a plain name or uid[:gid]`}},
			{name: "root user from a variable", method: "POST", path: path + ref + "&changes=" + q("ENV X=0") + "&changes=" + q("USER $X"),
				want: []string{`commit change "USER $X": the user is not a plain name or uid[:gid]`}},
			{name: "instruction not allowed", method: "POST", path: path + ref + "&changes=" + q("ONBUILD RUN id"),
				want: []string{`commit change "ONBUILD RUN id" is not allowed: allowed_commit_changes are CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, STOPSIGNAL`}},
		}, untouched(ref+":latest"))
		px.t, api.t = t, t
		px.do("POST", path+ref+"&tag=v1&changes="+q("ENV SP_TEST=1"), []byte(`{"User": "1000:1000"}`), http.StatusCreated)
		removeImage(ref + ":v1")
		var img struct{ Config struct{ User string } }
		inspect(api, "/images/"+ref+":v1/json", &img)
		if img.Config.User != "1000:1000" {
			t.Fatalf("committed image's user %q", img.Config.User)
		}
	})

	t.Run("image.load allowed", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		ref := prefix + "-loaded:latest"
		px.do("POST", "/images/load?quiet=1", savedAs(t, api, dockertest.NonRootImage, ref), http.StatusOK)
		removeImage(ref)
		if imageID(api, ref) != imageID(api, dockertest.NonRootImage) {
			t.Fatalf("%s is not the loaded image", ref)
		}
	})

	t.Run("image import", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		rootfs := string(tarOf(t, map[string]string{"hello": "imported through the proxy\n"}))
		ref := prefix + "-imported"
		expectRefused(t, px, "image.create", []refusal{
			{name: "re-point a trusted reference", method: "POST", path: "/images/create?fromSrc=-&repo=" + victim, contentType: "application/x-tar", body: rootfs,
				want: []string{"image import would write " + victim + ":latest: " + writable}},
			{name: "from a URL", method: "POST", path: "/images/create?fromSrc=" + q("http://127.0.0.1:9/x.tar") + "&repo=" + ref,
				want: []string{"image import from a URL (fromSrc=http://127.0.0.1:9/x.tar) is not allowed: the daemon would fetch it"}},
		}, untouched(ref+":latest"))
		px.t, api.t = t, t
		px.do("POST", "/images/create?fromSrc=-&repo="+ref+"&tag=v1", []byte(rootfs), http.StatusOK)
		removeImage(ref + ":v1")
		imageID(api, ref+":v1")
	})

	t.Run("image.build", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		ctx := string(buildContext(t))
		ref := prefix + "-built"
		refuse := func(name, query string, want ...string) refusal {
			return refusal{name: name, method: "POST", path: "/build?" + query, contentType: "application/x-tar", body: ctx, want: want}
		}
		cases := []refusal{
			refuse("host network", "t="+ref+"&networkmode=host", "build networkmode host is not allowed: build.network_modes are , default, bridge, none"),
			refuse("another container's network", "t="+ref+"&networkmode="+q("container:"+userCtr), "build networkmode container:"+userCtr+" is not allowed"),
			refuse("remote context", "t="+ref+"&remote="+q("https://127.0.0.1:9/ctx.git"), "build from a remote context (remote=https://127.0.0.1:9/ctx.git) is not allowed: the daemon would fetch it"),
			refuse("re-point a trusted reference", "t="+ref+"&t="+victim, "build would write the image reference "+victim+":latest: "+writable),
			refuse("BuildKit", "t="+ref+"&version=2", "BuildKit builds (version=2) are not allowed"),
			refuse("cgroup parent", "t="+ref+"&cgroupparent="+q("/"), "build cgroupparent / is not allowed"),
			{name: "form body over the query", method: "POST", path: "/build?t=" + ref + "&networkmode=default", contentType: "application/x-www-form-urlencoded", body: "networkmode=host",
				want: []string{"image.build with a form-encoded body (Content-Type: application/x-www-form-urlencoded): its parameters would override the query the policy judged"}},
		}
		expectRefused(t, px, "image.build", cases, untouched(ref+":latest"))
		px.t, api.t = t, t
		out := px.do("POST", "/build?t="+ref+":v1&networkmode=default", []byte(ctx), http.StatusOK)
		removeImage(ref + ":v1")
		if bytes.Contains(out, []byte("errorDetail")) {
			t.Fatalf("build failed: %s", out)
		}
		imageID(api, ref+":v1")
	})

	t.Run("volume.create binds under mount_roots", func(t *testing.T) {
		px, api := px.on(t), api.on(t)
		name := prefix + "-vol"
		bind := func(device string) string {
			return `{"Name": "` + name + `", "DriverOpts": {"type": "none", "o": "bind", "device": "` + device + `"}}`
		}
		expectRefused(t, px, "volume.create", []refusal{
			{name: "outside the roots", method: "POST", path: "/volumes/create", body: bind("/etc"),
				want: []string{"volume " + name + ": host path /etc is not under an allowed root"}},
			{name: "out of a root by ..", method: "POST", path: "/volumes/create", body: bind(volRoot + "/../../../../../../etc"),
				want: []string{"volume " + name + ": host path /etc is not under an allowed root"}},
			{name: "device still refused", method: "POST", path: "/volumes/create", body: `{"Name": "` + name + `", "DriverOpts": {"type": "ext4", "device": "/dev/sda1"}}`,
				want: []string{"mounts a host device: allowed_local_volume_kinds are tmpfs, bind"}},
		}, func(t *testing.T) { absent(t, api, "/volumes/"+name) })
		px.t, api.t = t, t
		px.do("POST", "/volumes/create", []byte(bind(volRoot)), http.StatusCreated)
		t.Cleanup(func() { api.on(t).do("DELETE", "/volumes/"+name, nil, http.StatusNoContent) })
		var v struct{ Options map[string]string }
		inspect(api, "/volumes/"+name, &v)
		if v.Options["device"] != volRoot {
			t.Fatalf("volume options %v", v.Options)
		}
	})
}

// savedAs is the docker save archive of ref with its tags replaced by
// newRef: loading it would create newRef.
func savedAs(t *testing.T, api docker, ref, newRef string) []byte {
	t.Helper()
	saved := api.do("GET", "/images/"+ref+"/get", nil, http.StatusOK)
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(saved)), tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch h.Name {
		case "repositories":
			continue // the legacy tag list: manifest.json is enough
		case "manifest.json":
			var m []map[string]any
			if err := json.Unmarshal(content, &m); err != nil {
				t.Fatal(err)
			}
			for _, e := range m {
				e["RepoTags"] = []string{newRef}
			}
			if content, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
			h.Size = int64(len(content))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(content); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// buildContext is a classic-builder context that makes a one-file image.
func buildContext(t *testing.T) []byte {
	return tarOf(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY f /f\n", "f": "built through the proxy\n"})
}
