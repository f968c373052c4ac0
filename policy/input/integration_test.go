package input

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// dockerAPI is a minimal client for setting up objects on the real dockerd.
type dockerAPI struct {
	t *testing.T
	c *http.Client
}

func (d dockerAPI) do(method, path string, body any, want int) []byte {
	d.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://docker"+path, r)
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
	return "sp-test-input-" + hex.EncodeToString(b)
}

func realDaemon(t *testing.T) (*HTTPDaemon, dockerAPI) {
	sock := dockertest.Require(t)
	c := dockertest.Client(sock)
	return NewHTTPDaemon(c.Transport, "1.41"), dockerAPI{t: t, c: c}
}

func TestDaemonImageDefaultUser(t *testing.T) {
	d, _ := realDaemon(t)
	opts := Options{Daemon: d, HostFS: HostFS{}}
	f := createFacts(t, "1.41", `{"Image":"`+dockertest.NonRootImage+`"}`, opts)
	if u := f.User; u.Source != "image" || u.UID != 1000 || u.GID != 1000 || u.Root || !u.Resolved {
		t.Errorf("non-root image user: %+v", u)
	}
	f = createFacts(t, "1.41", `{"Image":"`+dockertest.Image+`"}`, opts)
	if u := f.User; u.Source != "image" || !u.Root {
		t.Errorf("root image user: %+v", u)
	}
	_, err := d.InspectImage(context.Background(), "sp-test-input-no-such-image:latest")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("missing image: %v", err)
	}
}

func TestDaemonVolumesFromAndVolumes(t *testing.T) {
	d, api := realDaemon(t)
	hostDir := t.TempDir()
	vol := uniqueName(t)
	api.do("POST", "/v1.41/volumes/create", map[string]any{"Name": vol, "Driver": "local",
		"DriverOpts": map[string]string{"type": "none", "o": "bind", "device": "/etc"}}, http.StatusCreated)
	t.Cleanup(func() { api.do("DELETE", "/v1.41/volumes/"+vol, nil, 0) })

	donor := uniqueName(t)
	api.do("POST", "/v1.41/containers/create?name="+donor, map[string]any{
		"Image": dockertest.Image, "Cmd": []string{"true"},
		"HostConfig": map[string]any{"Binds": []string{hostDir + ":/data:ro", vol + ":/etc-copy"}},
	}, http.StatusCreated)
	t.Cleanup(func() { api.do("DELETE", "/v1.41/containers/"+donor+"?force=1", nil, 0) })

	f := createFacts(t, "1.41", `{"Image":"`+dockertest.Image+`","HostConfig":{"VolumesFrom":["`+donor+`"],"Binds":["`+vol+`:/again:ro"]}}`, Options{Daemon: d})
	got := map[string]Mount{}
	for _, m := range f.Mounts {
		got[m.Origin+" "+m.Target] = m
	}
	if m, ok := got["volumes_from /data"]; !ok || !m.HostBind || m.HostPath != hostDir || !m.ReadOnly || m.PathStatus != PathResolved || m.FromContainer != donor {
		t.Errorf("volumes_from bind: %+v (all %+v)", m, f.Mounts)
	}
	if m, ok := got["volumes_from /etc-copy"]; !ok || !m.HostBind || m.HostPath != "/etc" || m.LocalMount != "bind" || !m.VolumeFound || m.ReadOnly {
		t.Errorf("volumes_from o=bind volume: %+v", m)
	}
	if m, ok := got["binds /again"]; !ok || !m.HostBind || m.HostPath != "/etc" || !m.ReadOnly || m.Driver != "local" || m.DriverOptions["o"] != "bind" {
		t.Errorf("named o=bind volume: %+v", m)
	}
	if _, err := d.InspectVolume(context.Background(), uniqueName(t)); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing volume: %v", err)
	}
	if _, err := d.InspectContainer(context.Background(), uniqueName(t)); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing container: %v", err)
	}
}

func TestDaemonNetworkResolution(t *testing.T) {
	d, api := realDaemon(t)
	name := uniqueName(t)
	var created struct{ ID string }
	if err := json.Unmarshal(api.do("POST", "/v1.41/networks/create", map[string]any{"Name": name, "Driver": "bridge",
		"Labels": map[string]string{OwnerUIDLabel: "1000", OwnerUserLabel: "alice"}}, http.StatusCreated), &created); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.do("DELETE", "/v1.41/networks/"+created.ID, nil, 0) })
	for _, ref := range []string{name, created.ID, created.ID[:12]} {
		f := createFacts(t, "1.41", fmt.Sprintf(`{"Image":"x","HostConfig":{"NetworkMode":%q}}`, ref), Options{Daemon: d})
		if n := f.Networks[0]; !n.Found || n.Name != name || n.ID != created.ID || n.Mode != "named" || n.Driver != "bridge" ||
			n.Owner == nil || *n.Owner != (Owner{Known: true, UID: 1000, User: "alice"}) || n.Labels[OwnerUIDLabel] != "1000" {
			t.Errorf("network by %q: %+v", ref, n)
		}
	}
	// The host network named by ID prefix is the host's namespace.
	var host struct {
		ID string `json:"Id"`
	}
	_ = json.Unmarshal(api.do("GET", "/v1.41/networks/host", nil, http.StatusOK), &host)
	f := createFacts(t, "1.41", fmt.Sprintf(`{"Image":"x","HostConfig":{"NetworkMode":%q}}`, host.ID[:10]), Options{Daemon: d})
	if !f.Namespaces.Network.Host {
		t.Errorf("host network by prefix not flagged: %+v", f.Networks)
	}
	f = createFacts(t, "1.41", `{"Image":"x","HostConfig":{"NetworkMode":"default"}}`, Options{Daemon: d})
	if n := f.Networks[0]; n.Name != "bridge" || !n.Found || n.ID == "" {
		t.Errorf("default network: %+v", n)
	}
	f = createFacts(t, "1.41", `{"Image":"x","HostConfig":{"NetworkMode":"`+uniqueName(t)+`"}}`, Options{Daemon: d})
	if f.Networks[0].Found || f.Networks[0].Owner != nil {
		t.Errorf("missing network found: %+v", f.Networks[0])
	}
}

// TestCanonicalBodyCreatesOnDockerd sends the canonical bytes of the
// OpenHands-like create (trimmed to what this host has) to the real dockerd
// and checks it applied what was judged.
func TestCanonicalBodyCreatesOnDockerd(t *testing.T) {
	d, api := realDaemon(t)
	dir := t.TempDir()
	name := uniqueName(t)
	body := fmt.Sprintf(`{"Image":%q,"Cmd":["true"],"User":"1000:1000","Entrypoint":[],"ExposedPorts":{"30412/tcp":{}},
		"HostConfig":{"NetworkMode":"default","Binds":[%q],"PortBindings":{"30412/tcp":[{"HostIp":"127.0.0.1","HostPort":""}]},"Mounts":[],"Foo":1},
		"NetworkingConfig":{"openhands-network":null}}`, dockertest.Image, dir+":/workspace:ro")
	in, canon, err := Build(context.Background(), request("container.create", "1.41", body), Options{Daemon: d})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://docker/v1.41/containers/create?name="+name, bytes.NewReader(canon))
	req.Header.Set("Content-Type", "application/json")
	resp, err := api.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("dockerd refused the canonical body: %d %s", resp.StatusCode, out)
	}
	t.Cleanup(func() { api.do("DELETE", "/v1.41/containers/"+name+"?force=1", nil, 0) })
	var got struct {
		Config     struct{ User string }
		HostConfig struct {
			Binds        []string
			PortBindings map[string][]struct{ HostIp string }
		}
	}
	_ = json.Unmarshal(api.do("GET", "/v1.41/containers/"+name+"/json", nil, http.StatusOK), &got)
	if got.Config.User != in.Container.User.Value || len(got.HostConfig.Binds) != 1 || got.HostConfig.Binds[0] != dir+":/workspace:ro" ||
		got.HostConfig.PortBindings["30412/tcp"][0].HostIp != "127.0.0.1" {
		t.Errorf("dockerd applied something else: %+v", got)
	}
	t.Logf("canonical body: %d bytes", len(canon))
}
