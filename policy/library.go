package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"path"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	sprego "github.com/sockproxy/sockproxy/rego"
)

// LibraryConfig is data.sockproxy.config, the settings of the built-in
// library (docs/configuration.md documents every key). It exists to validate
// the user's data: the library itself reads the merged document.
type LibraryConfig struct {
	MountRoots                 []MountRoot       `json:"mount_roots"`
	AllowUnresolvedPaths       bool              `json:"allow_unresolved_paths"`
	AllowedMountTypes          []string          `json:"allowed_mount_types"`
	VolumeDrivers              []string          `json:"volume_drivers"`
	VolumesFrom                string            `json:"volumes_from"`
	RequireNonRoot             bool              `json:"require_non_root"`
	AllowedUIDs                []int             `json:"allowed_uids"`
	AllowedGIDs                []int             `json:"allowed_gids"`
	AllowUnresolvedUsers       bool              `json:"allow_unresolved_users"`
	AllowedHostIPs             []string          `json:"allowed_host_ips"`
	AllowPublishAll            bool              `json:"allow_publish_all"`
	AllowedNetworks            []string          `json:"allowed_networks"`
	AllowedHostNamespaces      []string          `json:"allowed_host_namespaces"`
	AllowedContainerNamespaces []string          `json:"allowed_container_namespaces"`
	AllowPrivileged            bool              `json:"allow_privileged"`
	AllowedCapabilities        []string          `json:"allowed_capabilities"`
	AllowedDevices             []string          `json:"allowed_devices"`
	AllowedDeviceCgroupRules   []string          `json:"allowed_device_cgroup_rules"`
	AllowDeviceRequests        bool              `json:"allow_device_requests"`
	AllowedUnconfined          []string          `json:"allowed_unconfined"`
	AllowedSecurityOptions     []string          `json:"allowed_security_options"`
	AllowMaskedPathsOverride   bool              `json:"allow_masked_paths_override"`
	AllowReadonlyPathsOverride bool              `json:"allow_readonly_paths_override"`
	AllowedRuntimes            []string          `json:"allowed_runtimes"`
	AllowedCgroupParents       []string          `json:"allowed_cgroup_parents"`
	AllowedSysctls             []string          `json:"allowed_sysctls"`
	AllowedLogDrivers          []string          `json:"allowed_log_drivers"`
	AllowedImages              []string          `json:"allowed_images"`
	AllowImageImport           bool              `json:"allow_image_import"`
	Operations                 map[string]string `json:"operations"`
}

// MountRoot is a host directory binds may expose, with the modes allowed
// at and under it.
type MountRoot struct {
	Path  string   `json:"path"`
	Modes []string `json:"modes"`
}

// DefaultLibraryData returns the library's default settings as a JSON-like
// document (a fresh copy each call).
func DefaultLibraryData() map[string]any {
	var doc map[string]any
	if err := yaml.Unmarshal(sprego.DefaultData(), &doc); err != nil {
		panic("policy: the embedded rego/defaults.yaml does not parse: " + err.Error())
	}
	out, err := jsonDoc(doc)
	if err != nil {
		panic("policy: the embedded rego/defaults.yaml: " + err.Error())
	}
	return out.(map[string]any)
}

// namespaceKinds are the keys of input.container.namespaces that
// allowed_host_namespaces and allowed_container_namespaces may name.
var namespaceKinds = []string{"pid", "ipc", "uts", "userns", "cgroupns"}

// validateLibraryData checks the merged data.sockproxy.config, normalizes
// mount root paths (clean, no trailing slash) in place, and returns it typed.
// Unknown keys are errors: a misspelt setting would otherwise be ignored.
func validateLibraryData(doc map[string]any) (*LibraryConfig, error) {
	known := DefaultLibraryData()
	for key := range doc {
		if _, ok := known[key]; !ok {
			return nil, fmt.Errorf("unknown key %q in the library data (data.sockproxy.config): check its spelling in docs/configuration.md", key)
		}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("library data: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var cfg LibraryConfig
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("library data (data.sockproxy.config): %w", err)
	}

	seen := map[string]bool{}
	roots := make([]any, 0, len(cfg.MountRoots))
	for i, r := range cfg.MountRoots {
		if !path.IsAbs(r.Path) {
			return nil, fmt.Errorf("mount_roots[%d].path %q: must be an absolute host path", i, r.Path)
		}
		r.Path = path.Clean(r.Path)
		if seen[r.Path] {
			return nil, fmt.Errorf("mount_roots[%d].path %q: listed twice; give each root once with all its modes", i, r.Path)
		}
		seen[r.Path] = true
		for _, m := range r.Modes {
			if m != "ro" && m != "rw" {
				return nil, fmt.Errorf("mount_roots[%d] (%s): mode %q: use ro or rw", i, r.Path, m)
			}
		}
		if r.Modes == nil {
			r.Modes = []string{}
		}
		cfg.MountRoots[i] = r
		modes := make([]any, len(r.Modes))
		for j, m := range r.Modes {
			modes[j] = m
		}
		roots = append(roots, map[string]any{"path": r.Path, "modes": modes})
	}
	doc["mount_roots"] = roots

	if cfg.VolumesFrom != "deny" && cfg.VolumesFrom != "judge" {
		return nil, fmt.Errorf("volumes_from %q: use deny or judge", cfg.VolumesFrom)
	}
	for _, ip := range cfg.AllowedHostIPs {
		if net.ParseIP(ip) == nil {
			if _, _, err := net.ParseCIDR(ip); err != nil {
				return nil, fmt.Errorf("allowed_host_ips: %q is neither an IP address nor a CIDR", ip)
			}
		}
	}
	for _, name := range append(slices.Clone(cfg.AllowedHostNamespaces), cfg.AllowedContainerNamespaces...) {
		if !slices.Contains(namespaceKinds, name) {
			return nil, fmt.Errorf("allowed_host_namespaces/allowed_container_namespaces: %q is not a namespace: use %s (the network is judged by allowed_networks)", name, strings.Join(namespaceKinds, ", "))
		}
	}
	for _, c := range cfg.AllowedCapabilities {
		if c != strings.ToUpper(c) || strings.HasPrefix(c, "CAP_") {
			return nil, fmt.Errorf("allowed_capabilities: %q: write capabilities upper case without CAP_ (e.g. NET_ADMIN), as the input normalizes them", c)
		}
	}
	var bad []string
	for op, action := range cfg.Operations {
		if action != "allow" && action != "deny" && action != "judge" {
			bad = append(bad, fmt.Sprintf("%s: %q", op, action))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("operations: use allow, deny or judge, not %s", strings.Join(bad, ", "))
	}
	return &cfg, nil
}

// mergeInto merges src over dst: objects key by key, recursively; anything
// else in src replaces what dst has.
func mergeInto(dst, src map[string]any) {
	for k, sv := range src {
		if sm, ok := sv.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeInto(dm, sm)
				continue
			}
			cp := map[string]any{}
			mergeInto(cp, sm)
			dst[k] = cp
			continue
		}
		dst[k] = sv
	}
}

// jsonDoc turns a YAML-decoded value into the types encoding/json produces
// (map[string]any, []any, float64/json.Number, string, bool, nil).
func jsonDoc(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not a JSON document (keys must be strings): %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}
