package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/policy"
)

// The shipped example loads, and its policy compiles with the library.
func TestExampleLoads(t *testing.T) {
	cfg, err := Load("../docs/sockproxy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.Path != "/run/sockproxy/docker.sock" || cfg.Listen.Mode != 0o660 || cfg.Listen.Group != "openhands" {
		t.Errorf("listen: %+v", cfg.Listen)
	}
	if cfg.Limits.BodyBytes != 1<<20 || cfg.Policy.EvalTimeout != time.Second || cfg.Policy.Mode != "enforce" {
		t.Errorf("limits %+v policy %+v", cfg.Limits, cfg.Policy)
	}
	rev, err := policy.Compile(context.Background(), policy.Source{Dirs: cfg.Policy.Dirs, Data: cfg.Policy.Data})
	if err != nil {
		t.Fatalf("the example's policy does not compile: %v", err)
	}
	if len(rev.Library.MountRoots) != 3 || rev.Library.MountRoots[0].Path != "/home/alice/projects" {
		t.Errorf("mount roots: %+v", rev.Library.MountRoots)
	}
	if !rev.Library.RequireNonRoot {
		t.Error("the example must keep require_non_root")
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n", "---\n"} {
		cfg, err := Parse([]byte(doc), "empty.yaml")
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if cfg.Upstream.URL != DefaultUpstream || cfg.Policy.Mode != "enforce" || cfg.Limits.BodyBytes != DefaultBodyBytes || cfg.API.MinVersion != "1.24" {
			t.Errorf("%q: not the defaults: %+v", doc, cfg)
		}
	}
}

func TestErrorsNameKeyAndLine(t *testing.T) {
	cases := map[string]struct{ doc, want string }{
		"unknown top":       {"listen:\n  path: /x.sock\nupstrem:\n  url: unix:///a\n", `line 3: unknown key "upstrem" at the top level`},
		"unknown nested":    {"listen:\n  path: /x.sock\n  permissions: 0600\n", `line 3: unknown key "permissions" in listen`},
		"unknown deep":      {"upstream:\n  tls:\n    ca_file: x\n", `line 3: unknown key "ca_file" in upstream.tls`},
		"duplicate":         {"log:\n  level: info\n  level: debug\n", `"level" already defined`},
		"bad mode":          {"listen:\n  mode: rw-rw----\n", `line 2: mode "rw-rw----" is not an octal`},
		"bad size":          {"limits:\n  body_bytes: lots\n", `line 2: "lots" is not a size`},
		"bad duration":      {"policy:\n  eval_timeout: fast\n", "line 2"},
		"policy mode":       {"policy:\n  mode: audit\n", `policy.mode: "audit": use enforce or dry-run`},
		"version floor":     {"api:\n  min_version: \"1.12\"\n", "api.min_version: 1.12 is below 1.24"},
		"version syntax":    {"api:\n  min_version: latest\n", `api.min_version: "latest" is not an API version`},
		"default below min": {"api:\n  min_version: \"1.40\"\n  default_version: \"1.30\"\n", "api.default_version: 1.30 is below api.min_version 1.40"},
		"upstream scheme":   {"upstream:\n  url: http://docker\n", `upstream.url: scheme "http"`},
		"tls on unix":       {"upstream:\n  tls:\n    ca: ca.pem\n", "upstream.tls: applies to a tcp:// upstream only"},
		"cert without key":  {"upstream:\n  url: tcp://d:2376\n  tls:\n    cert: c.pem\n", "cert and key go together"},
		"relative listen":   {"listen:\n  path: docker.sock\n", `listen.path: "docker.sock" must be an absolute path`},
		"log level":         {"log:\n  level: verbose\n", `log.level: "verbose"`},
		"two documents":     {"log:\n  level: info\n---\nlog:\n  level: debug\n", "more than one YAML document"},
		"timeout zero":      {"policy:\n  eval_timeout: 0s\n", "policy.eval_timeout"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "sockproxy.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "sockproxy.yaml: ") {
				t.Fatalf("error %v, want one naming the file and containing %q", err, tc.want)
			}
		})
	}
}

func TestPolicyDataIsFreeForm(t *testing.T) {
	cfg, err := Parse([]byte("policy:\n  data:\n    mount_roots:\n      - {path: /data, modes: [ro]}\n    anything_else: {nested: [1, 2]}\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The config file does not judge the library's keys: the policy does
	// when it loads (unknown library keys fail there, with their name).
	if _, ok := cfg.Policy.Data["anything_else"]; !ok {
		t.Fatalf("data: %v", cfg.Policy.Data)
	}
	_, err = policy.Compile(context.Background(), policy.Source{Data: cfg.Policy.Data})
	if err == nil || !strings.Contains(err.Error(), `unknown key "anything_else"`) {
		t.Fatalf("policy accepted an unknown library key: %v", err)
	}
}

func TestRelativePathsFollowTheFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sockproxy.yaml")
	if err := os.WriteFile(file, []byte("policy:\n  dirs: [rules]\naudit:\n  path: audit.jsonl\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.Dirs[0] != filepath.Join(dir, "rules") || cfg.Audit.Path != filepath.Join(dir, "audit.jsonl") {
		t.Errorf("dirs %q audit %q", cfg.Policy.Dirs, cfg.Audit.Path)
	}
}

func TestByteSizes(t *testing.T) {
	for in, want := range map[string]ByteSize{"1048576": 1 << 20, "1MiB": 1 << 20, "512 KiB": 512 << 10, "2MB": 2_000_000, "10B": 10} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1TB", "1.5MiB", "lots"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}

func TestModeSpellings(t *testing.T) {
	for doc, want := range map[string]FileMode{"listen:\n  mode: \"0660\"\n": 0o660, "listen:\n  mode: 0600\n": 0o600, "listen:\n  mode: 0o640\n": 0o640} {
		cfg, err := Parse([]byte(doc), "c.yaml")
		if err != nil || cfg.Listen.Mode != want {
			t.Errorf("%q: mode %o, %v; want %o", doc, cfg.Listen.Mode, err, want)
		}
	}
}

func TestOperationsKeys(t *testing.T) {
	cfg, err := Parse([]byte(`
policy:
  watch: false
  watch_debounce: 1s
metrics:
  listen: 127.0.0.1:9323
opa:
  services:
    acme: {url: "https://bundles.example.com"}
  bundles:
    site: {service: acme, resource: bundles/site.tar.gz, signing: {keyid: site}}
  keys:
    site: {algorithm: HS256, key: secret}
  decision_logs: {service: acme}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.Watch || cfg.Policy.WatchDebounce != time.Second || cfg.Metrics.Listen != "127.0.0.1:9323" || cfg.Metrics.Mode != 0o600 {
		t.Errorf("policy %+v metrics %+v", cfg.Policy, cfg.Metrics)
	}
	bundles, _ := cfg.OPA["bundles"].(map[string]any)
	if site, _ := bundles["site"].(map[string]any); site["resource"] != "bundles/site.tar.gz" {
		t.Errorf("opa section not kept as given: %v", cfg.OPA)
	}
	if d := Default(); !d.Policy.Watch || d.Metrics.Listen != "" {
		t.Errorf("defaults: watch %v, metrics %q", d.Policy.Watch, d.Metrics.Listen)
	}
	for text, key := range map[string]string{
		"metrics: {listen: '0.0.0.0:9323'}":               "metrics.listen",
		"metrics: {listen: ':9323'}":                      "metrics.listen",
		"metrics: {listen: 'metrics.sock'}":               "metrics.listen",
		"opa: {bundle: {service: x}}":                     "opa.bundle",
		"opa: {discovery: {service: x}}":                  "opa.discovery",
		"opa: {server: {}}":                               "opa.server",
		"opa: {decision_logs: {reporting: {}}}":           "opa.decision_logs",
		"policy: {watch_debounce: 0s}":                    "policy.watch_debounce",
		"metrics: {listen: /run/m.sock, mode: '0'}":       "metrics.mode",
		"metrics: {listen: /run/m.sock, wat: 1}":          "wat",
		"opa: {decision_logs: {console: true}}\nextra: 1": "extra",
	} {
		if _, err := Parse([]byte(text), "t.yaml"); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: err %v, want one naming %s", text, err, key)
		}
	}
	if _, err := Parse([]byte("opa: {decision_logs: {console: true}}"), "t.yaml"); err != nil {
		t.Errorf("console decision logs need no service: %v", err)
	}
}

func TestChangedKeys(t *testing.T) {
	a, b := Default(), Default()
	b.Policy.Mode = "dry-run"
	b.Policy.Data = map[string]any{"allow_root": true}
	b.Listen.Path = "/run/other.sock"
	b.OPA = map[string]any{"bundles": map[string]any{}}
	got := strings.Join(ChangedKeys(a, b), ",")
	if got != "listen.path,policy.mode,policy.data,opa" {
		t.Errorf("changed %s", got)
	}
	if len(ChangedKeys(a, Default())) != 0 {
		t.Error("equal configurations differ")
	}
}
