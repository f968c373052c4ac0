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
	AllowImageImportURL        bool              `json:"allow_image_import_url"`
	WritableImages             []string          `json:"writable_images"`
	PushableImages             []string          `json:"pushable_images"`
	Build                      BuildConfig       `json:"build"`
	NetworkDrivers             []string          `json:"network_drivers"`
	AllowedNetworkOptions      []string          `json:"allowed_network_options"`
	AllowedNetworkSubnets      []string          `json:"allowed_network_subnets"`
	AllowNetworkConfigFrom     bool              `json:"allow_network_config_from"`
	AllowEndpointStaticIP      bool              `json:"allow_endpoint_static_ip"`
	AllowEndpointAliases       bool              `json:"allow_endpoint_aliases"`
	AllowedEndpointDriverOpts  []string          `json:"allowed_endpoint_driver_opts"`
	AllowedLocalVolumeKinds    []string          `json:"allowed_local_volume_kinds"`
	UpdateLimits               UpdateLimits      `json:"update_limits"`
	AllowedCommitChanges       []string          `json:"allowed_commit_changes"`
	Ownership                  Ownership         `json:"ownership"`
	Profiles                   []Profile         `json:"profiles"`
	Operations                 map[string]string `json:"operations"`
}

// BuildConfig is the build key: what image.build may ask for.
type BuildConfig struct {
	NetworkModes  []string `json:"network_modes"`
	AllowRemote   bool     `json:"allow_remote"`
	AllowBuildKit bool     `json:"allow_buildkit"`
}

// UpdateLimits bound container.update (0: no bound).
type UpdateLimits struct {
	MaxMemory         int64    `json:"max_memory"`
	MaxMemorySwap     int64    `json:"max_memory_swap"`
	MaxNanoCPUs       int64    `json:"max_nano_cpus"`
	MaxCPUShares      int64    `json:"max_cpu_shares"`
	MaxPids           int64    `json:"max_pids"`
	RestartPolicies   []string `json:"restart_policies"`
	MaxRestartRetries int      `json:"max_restart_retries"`
}

// Ownership configures the owner rules.
type Ownership struct {
	Enabled          bool     `json:"enabled"`
	AdminUIDs        []int    `json:"admin_uids"`
	AdminGroups      []string `json:"admin_groups"`
	Unowned          string   `json:"unowned"`
	SharedOperations []string `json:"shared_operations"`
}

// Profile is a per-caller profile: Config is merged over the base settings
// for callers Match names.
type Profile struct {
	Name   string         `json:"name"`
	Match  ProfileMatch   `json:"match"`
	Config map[string]any `json:"config"`
}

// ProfileMatch names callers: any listed uid, primary gid, user name or
// group matches.
type ProfileMatch struct {
	UIDs   []int    `json:"uids"`
	GIDs   []int    `json:"gids"`
	Users  []string `json:"users"`
	Groups []string `json:"groups"`
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
	// A key written without a value (YAML "allow_privileged:") is null:
	// Go would read it as false or empty, but the library's rules would
	// see null, which some read as set, so it is refused here.
	if where := findNull(doc, ""); where != "" {
		return nil, fmt.Errorf("library data (data.sockproxy.config): %s has no value (null): give one, or remove the key to keep its default", where)
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
	for _, c := range cfg.AllowedNetworkSubnets {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return nil, fmt.Errorf("allowed_network_subnets: %q is not a CIDR (e.g. 172.30.0.0/16)", c)
		}
	}
	for _, k := range cfg.AllowedLocalVolumeKinds {
		if !slices.Contains([]string{"tmpfs", "bind", "overlay", "device", "network"}, k) {
			return nil, fmt.Errorf("allowed_local_volume_kinds: %q: use tmpfs, bind, overlay, device or network", k)
		}
	}
	if u := cfg.Ownership.Unowned; u != "admins" && u != "anyone" {
		return nil, fmt.Errorf("ownership.unowned %q: use admins or anyone", u)
	}
	if err := validateProfiles(doc, cfg.Profiles); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// validateProfiles checks each profile: it names someone, and its config
// merged over the base settings is valid (the Rego library merges it the
// same way). Mount roots in a profile's config are normalized in place.
func validateProfiles(doc map[string]any, profiles []Profile) error {
	raw, _ := doc["profiles"].([]any)
	for i, p := range profiles {
		what := fmt.Sprintf("profiles[%d]", i)
		if p.Name != "" {
			what += " (" + p.Name + ")"
		}
		m := p.Match
		if len(m.UIDs)+len(m.GIDs)+len(m.Users)+len(m.Groups) == 0 {
			return fmt.Errorf("%s: match names no uid, gid, user or group, so it matches nobody", what)
		}
		if _, ok := p.Config["profiles"]; ok {
			return fmt.Errorf("%s: config cannot set profiles", what)
		}
		merged, err := jsonDoc(doc) // a deep copy
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		base := merged.(map[string]any)
		base["profiles"] = []any{}
		cfg, _ := raw[i].(map[string]any)["config"].(map[string]any)
		if cfg == nil {
			return fmt.Errorf("%s: config must be a mapping of library settings", what)
		}
		mergeInto(base, cfg)
		if _, err := validateLibraryData(base); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if _, ok := cfg["mount_roots"]; ok {
			cfg["mount_roots"] = base["mount_roots"]
		}
	}
	return nil
}

// findNull returns the path of the first null in v (keys in sorted order,
// so the error names the same key every time), or "" when there is none.
func findNull(v any, at string) string {
	switch v := v.(type) {
	case nil:
		if at == "" {
			return "the document"
		}
		return at
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if at != "" {
				p = at + "." + k
			}
			if where := findNull(v[k], p); where != "" {
				return where
			}
		}
	case []any:
		for i, e := range v {
			if where := findNull(e, fmt.Sprintf("%s[%d]", at, i)); where != "" {
				return where
			}
		}
	}
	return ""
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
