package toolkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sockproxy/sockproxy/policy/input"
)

// StaticDaemon answers the input builder's daemon lookups from a file
// instead of a running dockerd, to evaluate requests offline. Keys are the
// references a request uses (names or IDs); an object is also found by its
// ID, its Name, or a unique ID prefix, as dockerd finds it.
type StaticDaemon struct {
	Images     map[string]input.ImageInfo     `json:"images"`
	Containers map[string]input.ContainerInfo `json:"containers"`
	Networks   map[string]input.NetworkInfo   `json:"networks"`
	Volumes    map[string]input.VolumeInfo    `json:"volumes"`
}

var _ input.Daemon = (*StaticDaemon)(nil)

// LoadFacts reads a facts file (YAML or JSON): images, containers, networks
// and volumes keyed by reference, with the fields of input.ImageInfo,
// input.ContainerInfo, input.NetworkInfo and input.VolumeInfo (matched
// case-insensitively: ID, User, Mounts, NetworkMode, Driver, Options, ...).
func LoadFacts(path string) (*StaticDaemon, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("facts file: %w", err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("facts file %s: %w", path, err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("facts file %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var d StaticDaemon
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("facts file %s: %w (top-level keys: images, containers, networks, volumes)", path, err)
	}
	return &d, nil
}

func find[T any](m map[string]T, kind, ref string, id, name func(*T) string) (*T, error) {
	if v, ok := m[ref]; ok {
		return &v, nil
	}
	var prefix []*T
	for k := range m {
		v := m[k]
		if id(&v) == ref || name(&v) == ref || strings.TrimPrefix(name(&v), "/") == ref {
			return &v, nil
		}
		if len(ref) >= 1 && strings.HasPrefix(strings.TrimPrefix(id(&v), "sha256:"), ref) {
			prefix = append(prefix, &v)
		}
	}
	if len(prefix) == 1 {
		return prefix[0], nil
	}
	return nil, fmt.Errorf("%s %s: %w (not in the facts file)", kind, ref, input.ErrNotFound)
}

// InspectImage implements input.Daemon.
func (d *StaticDaemon) InspectImage(_ context.Context, ref string) (*input.ImageInfo, error) {
	return find(d.Images, "image", ref, func(v *input.ImageInfo) string { return v.ID }, func(*input.ImageInfo) string { return "" })
}

// InspectContainer implements input.Daemon.
func (d *StaticDaemon) InspectContainer(_ context.Context, ref string) (*input.ContainerInfo, error) {
	return find(d.Containers, "container", ref, func(v *input.ContainerInfo) string { return v.ID }, func(v *input.ContainerInfo) string { return v.Name })
}

// InspectNetwork implements input.Daemon.
func (d *StaticDaemon) InspectNetwork(_ context.Context, ref string) (*input.NetworkInfo, error) {
	return find(d.Networks, "network", ref, func(v *input.NetworkInfo) string { return v.ID }, func(v *input.NetworkInfo) string { return v.Name })
}

// InspectVolume implements input.Daemon.
func (d *StaticDaemon) InspectVolume(_ context.Context, name string) (*input.VolumeInfo, error) {
	return find(d.Volumes, "volume", name, func(*input.VolumeInfo) string { return "" }, func(v *input.VolumeInfo) string { return v.Name })
}
