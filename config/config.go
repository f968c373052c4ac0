// Package config reads sockproxy's YAML configuration file strictly: an
// unknown or repeated key is an error naming it and its line, and every
// value is checked before the proxy starts. docs/configuration.md documents
// every key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file.
type Config struct {
	Listen   Listen   `yaml:"listen"`
	Upstream Upstream `yaml:"upstream"`
	Policy   Policy   `yaml:"policy"`
	Limits   Limits   `yaml:"limits"`
	API      API      `yaml:"api"`
	Log      Log      `yaml:"log"`
	Audit    Audit    `yaml:"audit"`
	Metrics  Metrics  `yaml:"metrics"`
	// OPA is an OPA configuration (services, bundles, decision_logs, keys,
	// status, labels), as OPA's own config file has it: policy and data
	// from bundle servers, decisions to a remote decision log. Passed to
	// OPA's plugins as is; docs/fleet.md.
	OPA map[string]any `yaml:"opa"`
	// ShutdownTimeout is how long in-flight requests and streams may go on
	// after SIGTERM/SIGINT before they are cut.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Listen is where clients connect.
type Listen struct {
	// Path of the Unix socket ("" means the serve command's default).
	Path string `yaml:"path"`
	// Mode of the socket file (octal in YAML: "0660").
	Mode FileMode `yaml:"mode"`
	// Group (name or gid) that owns the socket; "" keeps the process's group.
	Group string `yaml:"group"`
	// TCP is an extra TCP address (host:port); its callers are anonymous.
	TCP string `yaml:"tcp"`
}

// Upstream is the dockerd that judged requests are forwarded to.
type Upstream struct {
	// URL is unix:///path/docker.sock or tcp://host:port.
	URL string `yaml:"url"`
	TLS TLS    `yaml:"tls"`
}

// TLS are the client settings for a tcp:// upstream (PEM files).
type TLS struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Policy configures the decision engine.
type Policy struct {
	// Mode is "enforce" (refusals are refused) or "dry-run" (refusals are
	// logged and audited but forwarded, to learn what an application needs).
	Mode string `yaml:"mode"`
	// Dirs hold user Rego modules and data files, loaded with the library.
	Dirs []string `yaml:"dirs"`
	// Data is the built-in library's configuration, merged over its defaults
	// at data.sockproxy.config (its keys are checked when the policy loads).
	Data map[string]any `yaml:"data"`
	// EvalTimeout bounds one evaluation; a timeout refuses.
	EvalTimeout time.Duration `yaml:"eval_timeout"`
	// Watch reloads the policy when a file in Dirs or the configuration
	// file changes (SIGHUP reloads either way).
	Watch bool `yaml:"watch"`
	// WatchDebounce is how long the files must be quiet before a reload.
	WatchDebounce time.Duration `yaml:"watch_debounce"`
}

// Limits bound what the proxy reads.
type Limits struct {
	// BodyBytes is the largest judged request body; larger ones get 413.
	BodyBytes ByteSize `yaml:"body_bytes"`
}

// API concerns Engine API versions.
type API struct {
	// MinVersion is the oldest API version whose judged requests are
	// accepted (never below 1.24: older versions give bodies other meanings).
	MinVersion string `yaml:"min_version"`
	// DefaultVersion is the version dockerd applies to unversioned paths;
	// "" means the upstream's own, learned at start.
	DefaultVersion string `yaml:"default_version"`
}

// Log configures the process log (not the audit log).
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// Audit configures the audit log (one JSON record per request).
type Audit struct {
	Path       string `yaml:"path"`
	Stdout     bool   `yaml:"stdout"`
	MaxSizeMB  int    `yaml:"max_size_mb"`
	MaxBackups int    `yaml:"max_backups"`
	Compress   bool   `yaml:"compress"`
	Sync       bool   `yaml:"sync"`
	FailOpen   bool   `yaml:"fail_open"`
}

// Metrics configures the metrics and health listener.
type Metrics struct {
	// Listen is a Unix socket path or a loopback host:port serving
	// /metrics and /healthz; "" serves nothing.
	Listen string `yaml:"listen"`
	// Mode of the socket file (octal).
	Mode FileMode `yaml:"mode"`
	// Group (name or gid) that owns the socket.
	Group string `yaml:"group"`
}

// OPAKeys are the sections of the opa configuration sockproxy runs.
var OPAKeys = []string{"services", "bundles", "decision_logs", "keys", "status", "labels", "persistence_directory"}

// Defaults of the settings a file may leave out.
const (
	DefaultUpstream        = "unix:///var/run/docker.sock"
	DefaultSocketMode      = FileMode(0o660)
	DefaultBodyBytes       = ByteSize(1 << 20)
	DefaultEvalTimeout     = time.Second
	DefaultMinAPIVersion   = "1.24"
	DefaultShutdownTimeout = 10 * time.Second
	DefaultWatchDebounce   = 300 * time.Millisecond
	DefaultMetricsMode     = FileMode(0o600)
)

// Default is the configuration with no file: the built-in hardened policy
// in enforce mode.
func Default() *Config {
	return &Config{
		Listen:          Listen{Mode: DefaultSocketMode},
		Upstream:        Upstream{URL: DefaultUpstream},
		Policy:          Policy{Mode: "enforce", EvalTimeout: DefaultEvalTimeout, Watch: true, WatchDebounce: DefaultWatchDebounce},
		Limits:          Limits{BodyBytes: DefaultBodyBytes},
		API:             API{MinVersion: DefaultMinAPIVersion},
		Log:             Log{Level: "info", Format: "text"},
		Metrics:         Metrics{Mode: DefaultMetricsMode},
		ShutdownTimeout: DefaultShutdownTimeout,
	}
}

// Load reads the configuration file at path over the defaults and checks
// it. Relative policy directories and audit/TLS paths are taken relative to
// the file's directory.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(raw, path)
	if err != nil {
		return nil, err
	}
	cfg.resolvePaths(filepath.Dir(path))
	return cfg, nil
}

// Parse reads a configuration document over the defaults and checks it;
// name is how errors call the document (its file name).
func Parse(raw []byte, name string) (*Config, error) {
	cfg := Default()
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil // an empty file: all defaults
		}
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: more than one YAML document; put everything in one", name)
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		return cfg, nil
	}
	if err := checkKeys(doc, reflect.TypeOf(*cfg), ""); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := doc.Decode(cfg); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

// checkKeys walks a mapping against the struct it fills: a key the struct
// does not have is an error with its line (yaml.v3 reports duplicate keys
// itself). Maps of free-form data (policy.data) are not walked.
func checkKeys(n *yaml.Node, t reflect.Type, at string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return nil
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = f.Type
		names = append(names, tag)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			where := "at the top level"
			if at != "" {
				where = "in " + at
			}
			return fmt.Errorf("line %d: unknown key %q %s (known: %s)", k.Line, k.Value, where, strings.Join(names, ", "))
		}
		if err := checkKeys(v, ft, join(at, k.Value)); err != nil {
			return err
		}
	}
	return nil
}

func join(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

// Validate checks every value and says which key is wrong and why.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Listen.Path != "" && !filepath.IsAbs(c.Listen.Path) {
		bad("listen.path", "%q must be an absolute path", c.Listen.Path)
	}
	if c.Listen.Mode&^0o777 != 0 || c.Listen.Mode == 0 {
		bad("listen.mode", "%04o is not a permission mode between 0001 and 0777", uint32(c.Listen.Mode))
	}
	if c.Listen.TCP != "" {
		if _, _, err := net.SplitHostPort(c.Listen.TCP); err != nil {
			bad("listen.tcp", "%q is not host:port", c.Listen.TCP)
		}
	}
	u, err := url.Parse(c.Upstream.URL)
	switch {
	case err != nil || c.Upstream.URL == "":
		bad("upstream.url", "%q is not a URL; use unix:///var/run/docker.sock or tcp://host:port", c.Upstream.URL)
	case u.Scheme == "unix":
		if u.Path == "" {
			bad("upstream.url", "%q names no socket path", c.Upstream.URL)
		}
		if c.Upstream.TLS != (TLS{}) {
			bad("upstream.tls", "applies to a tcp:// upstream only, not %s", c.Upstream.URL)
		}
	case u.Scheme == "tcp" || u.Scheme == "https":
		if u.Host == "" {
			bad("upstream.url", "%q names no host:port", c.Upstream.URL)
		}
	default:
		bad("upstream.url", "scheme %q: use unix:// or tcp://", u.Scheme)
	}
	if (c.Upstream.TLS.Cert == "") != (c.Upstream.TLS.Key == "") {
		bad("upstream.tls", "cert and key go together: give both or neither")
	}
	switch c.Policy.Mode {
	case "enforce", "dry-run":
	default:
		bad("policy.mode", "%q: use enforce or dry-run", c.Policy.Mode)
	}
	for i, d := range c.Policy.Dirs {
		if d == "" {
			bad(fmt.Sprintf("policy.dirs[%d]", i), "empty path")
		}
	}
	if c.Policy.EvalTimeout <= 0 || c.Policy.EvalTimeout > time.Minute {
		bad("policy.eval_timeout", "%s: give a duration between 1ms and 1m (e.g. 1s)", c.Policy.EvalTimeout)
	}
	if c.Limits.BodyBytes <= 0 {
		bad("limits.body_bytes", "must be positive (e.g. 1MiB)")
	}
	if !validVersion(c.API.MinVersion) {
		bad("api.min_version", "%q is not an API version like 1.41", c.API.MinVersion)
	} else if versionLess(c.API.MinVersion, "1.24") {
		bad("api.min_version", "%s is below 1.24, the oldest version sockproxy judges (older versions let a start request replace the HostConfig)", c.API.MinVersion)
	}
	if c.API.DefaultVersion != "" {
		if !validVersion(c.API.DefaultVersion) {
			bad("api.default_version", "%q is not an API version like 1.41", c.API.DefaultVersion)
		} else if validVersion(c.API.MinVersion) && versionLess(c.API.DefaultVersion, c.API.MinVersion) {
			bad("api.default_version", "%s is below api.min_version %s", c.API.DefaultVersion, c.API.MinVersion)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q: use text or json", c.Log.Format)
	}
	if c.Audit.MaxSizeMB < 0 || c.Audit.MaxBackups < 0 {
		bad("audit", "max_size_mb and max_backups cannot be negative")
	}
	if c.ShutdownTimeout < 0 {
		bad("shutdown_timeout", "cannot be negative")
	}
	if c.Policy.WatchDebounce <= 0 || c.Policy.WatchDebounce > time.Minute {
		bad("policy.watch_debounce", "%s: give a duration between 1ms and 1m (e.g. 300ms)", c.Policy.WatchDebounce)
	}
	if c.Metrics.Listen != "" {
		if err := checkLocalAddress(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "%v", err)
		}
	}
	if c.Metrics.Mode&^0o777 != 0 || c.Metrics.Mode == 0 {
		bad("metrics.mode", "%04o is not a permission mode between 0001 and 0777", uint32(c.Metrics.Mode))
	}
	for key := range c.OPA {
		switch {
		case slices.Contains(OPAKeys, key):
		case key == "bundle":
			bad("opa.bundle", "the single legacy bundle is not supported: name it under opa.bundles")
		case key == "discovery":
			bad("opa.discovery", "not supported: a discovery bundle could replace this configuration remotely; configure bundles and decision_logs here")
		default:
			bad("opa."+key, "not an OPA section sockproxy runs (known: %s)", strings.Join(OPAKeys, ", "))
		}
	}
	if _, ok := c.OPA["decision_logs"]; ok {
		if _, ok := c.OPA["services"]; !ok {
			if dl, _ := c.OPA["decision_logs"].(map[string]any); dl == nil || dl["console"] != true {
				bad("opa.decision_logs", "needs a service to upload to (opa.services) or console: true")
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Config) resolvePaths(base string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	for i, d := range c.Policy.Dirs {
		c.Policy.Dirs[i] = abs(d)
	}
	c.Audit.Path = abs(c.Audit.Path)
	c.Upstream.TLS.CA = abs(c.Upstream.TLS.CA)
	c.Upstream.TLS.Cert = abs(c.Upstream.TLS.Cert)
	c.Upstream.TLS.Key = abs(c.Upstream.TLS.Key)
	if dir, ok := c.OPA["persistence_directory"].(string); ok {
		c.OPA["persistence_directory"] = abs(dir)
	}
}

// checkLocalAddress accepts an absolute socket path or host:port on a
// loopback address: metrics and health tell what the policy refuses and
// whether auditing works, which is not for other hosts.
func checkLocalAddress(addr string) error {
	if filepath.IsAbs(addr) {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("%q is neither an absolute socket path nor host:port", addr)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: use 127.0.0.1, [::1], localhost or a socket path", host)
	}
	return nil
}

// validVersion: MAJOR.MINOR with decimal parts, as dockerd's API versions.
func validVersion(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(major, 10, 16)
	_, err2 := strconv.ParseUint(minor, 10, 16)
	return err1 == nil && err2 == nil
}

// versionLess compares part by part as integers, as dockerd does.
func versionLess(a, b string) bool {
	am, an, _ := strings.Cut(a, ".")
	bm, bn, _ := strings.Cut(b, ".")
	ai, _ := strconv.Atoi(am)
	bi, _ := strconv.Atoi(bm)
	if ai != bi {
		return ai < bi
	}
	aj, _ := strconv.Atoi(an)
	bj, _ := strconv.Atoi(bn)
	return aj < bj
}

// FileMode is a permission mode written in octal ("0660" or 0660).
type FileMode fs.FileMode

// UnmarshalYAML reads the mode as octal whatever YAML thinks of the digits.
func (m *FileMode) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimPrefix(strings.TrimPrefix(n.Value, "0o"), "0O")
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: mode %q is not an octal permission mode like \"0660\"", n.Line, n.Value)
	}
	*m = FileMode(v)
	return nil
}

// ByteSize is a size in bytes: a number, or a number with a unit
// (KiB, MiB, GiB, KB, MB, GB, B).
type ByteSize int64

// UnmarshalYAML reads "1MiB", "512KiB", "1048576".
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %q is not a size (e.g. 1MiB, 512KiB, 1048576)", n.Line, n.Value)
	}
	*b = v
	return nil
}

// ParseByteSize reads a size with an optional unit.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return ByteSize(n * mult), nil
}

// LiveKeys are the keys a running sockproxy applies when the configuration
// file changes; a change to any other key is logged as needing a restart.
var LiveKeys = []string{"policy.mode", "policy.dirs", "policy.data", "policy.eval_timeout"}

// ChangedKeys lists the keys whose values differ between a and b, as
// dotted paths of the file ("listen.path", "policy.data", "opa").
func ChangedKeys(a, b *Config) []string {
	var out []string
	va, vb := reflect.ValueOf(*a), reflect.ValueOf(*b)
	t := va.Type()
	for i := range t.NumField() {
		name := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		fa, fb := va.Field(i), vb.Field(i)
		if fa.Kind() != reflect.Struct {
			if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
				out = append(out, name)
			}
			continue
		}
		for j := range fa.NumField() {
			sub := strings.Split(fa.Type().Field(j).Tag.Get("yaml"), ",")[0]
			if !reflect.DeepEqual(fa.Field(j).Interface(), fb.Field(j).Interface()) {
				out = append(out, name+"."+sub)
			}
		}
	}
	return out
}
