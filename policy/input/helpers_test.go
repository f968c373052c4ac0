package input

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/sockproxy/sockproxy/proxy"
)

// fakeDaemon is an in-memory Daemon for unit tests and benchmarks; the
// integration tests use the real dockerd.
type fakeDaemon struct {
	images     map[string]*ImageInfo
	containers map[string]*ContainerInfo
	networks   map[string]*NetworkInfo
	volumes    map[string]*VolumeInfo
	fail       error
}

func (f *fakeDaemon) InspectImage(_ context.Context, ref string) (*ImageInfo, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	if v, ok := f.images[ref]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("image %q: %w", ref, ErrNotFound)
}

func (f *fakeDaemon) InspectContainer(_ context.Context, ref string) (*ContainerInfo, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	if v, ok := f.containers[ref]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("container %q: %w", ref, ErrNotFound)
}

func (f *fakeDaemon) InspectNetwork(_ context.Context, ref string) (*NetworkInfo, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	for _, n := range f.networks {
		if n.Name == ref || n.ID == ref || (len(ref) >= 1 && strings.HasPrefix(n.ID, ref)) {
			return n, nil
		}
	}
	return nil, fmt.Errorf("network %q: %w", ref, ErrNotFound)
}

func (f *fakeDaemon) InspectVolume(_ context.Context, name string) (*VolumeInfo, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	if v, ok := f.volumes[name]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("volume %q: %w", name, ErrNotFound)
}

func newFakeDaemon() *fakeDaemon {
	return &fakeDaemon{
		images: map[string]*ImageInfo{
			"docker.openhands.dev/openhands/runtime:0.62-nikolaik": {ID: "sha256:aaa", User: ""},
			"nonroot:latest": {ID: "sha256:bbb", User: "1000:1000"},
		},
		containers: map[string]*ContainerInfo{},
		networks: map[string]*NetworkInfo{
			"bridge":            {ID: "1111111111111111111111111111111111111111111111111111111111111111", Name: "bridge", Driver: "bridge"},
			"host":              {ID: "2222222222222222222222222222222222222222222222222222222222222222", Name: "host", Driver: "host"},
			"none":              {ID: "3333333333333333333333333333333333333333333333333333333333333333", Name: "none", Driver: "null"},
			"openhands-network": {ID: "4444444444444444444444444444444444444444444444444444444444444444", Name: "openhands-network", Driver: "bridge"},
		},
		volumes: map[string]*VolumeInfo{},
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonHeader() http.Header {
	return http.Header{"Content-Type": []string{"application/json"}}
}

// request builds a classified request for op with body.
func request(op, version, body string) *proxy.Request {
	r := &proxy.Request{
		Operation: proxy.Operation{Name: op, Method: http.MethodPost, Path: "/v" + version + "/x", APIVersion: version,
			Query: url.Values{}, Vars: map[string]string{}, JudgeBody: true},
		Header: jsonHeader(),
	}
	if body != "" {
		r.Body = []byte(body)
	}
	return r
}
