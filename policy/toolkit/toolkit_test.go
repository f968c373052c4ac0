package toolkit

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/policy/input"
)

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A user rule's message is attributed to the user's file and line, and a
// library message to the library rule that made it and those that passed
// it on.
func TestExplainAttributesMessagesToRules(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "extra.rego", "package sockproxy\n\n# no info for anyone\ndeny contains \"info is off\" if {\n\tinput.operation == \"system.info\"\n}\n")
	p, err := Load(context.Background(), policy.Source{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := p.Explain(context.Background(), &input.Input{Operation: "system.info", Method: "GET", Path: "/info"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Result.Allow || len(ex.Deny) != 1 || ex.Deny[0].Message != "info is off" {
		t.Fatalf("explanation %+v", ex)
	}
	want := RuleRef{Rule: "data.sockproxy.deny", File: filepath.Join(dir, "extra.rego"), Line: 4}
	if len(ex.Deny[0].Rules) != 1 || ex.Deny[0].Rules[0] != want {
		t.Fatalf("rules %+v, want %+v", ex.Deny[0].Rules, want)
	}

	ex, err = p.Explain(context.Background(), &input.Input{Operation: "image.push", Method: "POST", Path: "/images/x/push"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Deny) != 1 || len(ex.Deny[0].Rules) == 0 || ex.Deny[0].Rules[0].File != "rego/sockproxy.rego" {
		t.Fatalf("image.push: %+v", ex.Deny)
	}
}

func TestUnifiedDiff(t *testing.T) {
	got := UnifiedDiff("f.rego", "a\nb\nc\n", "a\nB\nc\n")
	want := "--- f.rego\n+++ f.rego (formatted)\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
	if got != want {
		t.Fatalf("diff:\n%s\nwant:\n%s", got, want)
	}
}

func record(id, decision, op, method, path string, facts map[string]any, reasons ...string) audit.Record {
	return audit.Record{RequestID: id, Decision: decision, Mode: "dry-run", Operation: op, Method: method, Path: path, Facts: facts, Reasons: reasons}
}

// Learn widens what the records needed, narrows the image and uid lists to
// what was seen, and leaves privilege, root, every-interface ports,
// sensitive paths and bypass operations for review.
func TestLearnProposal(t *testing.T) {
	rev, err := policy.Compile(context.Background(), policy.Source{})
	if err != nil {
		t.Fatal(err)
	}
	recs := []audit.Record{
		record("r1", "would-deny", "container.create", "POST", "/v1.41/containers/create", map[string]any{
			"image": "runtime:1", "user": "1000:1000",
			"mounts":   []any{"bind /work/a:/workspace:rw", "bind /data/link=>/data/real:/data:ro", "bind /etc:/host-etc:ro", "volume cache:/cache:rw"},
			"ports":    []any{"127.0.0.2:8080->80/tcp", "*:9090->90/tcp"},
			"networks": []any{"sandbox-net"},
		},
			"mount /work/a:/workspace is not under an allowed root",
			"mount /data/link:/data is not under an allowed root (it resolves to /data/real)",
			"mount /etc:/host-etc is not under an allowed root",
			"port 80/tcp binds 127.0.0.2: only 127.0.0.1, ::1 allowed",
			"port 90/tcp binds all interfaces (empty HostIp): only 127.0.0.1, ::1 allowed",
			"network sandbox-net is not allowed: only default, bridge, none allowed"),
		record("r2", "would-deny", "container.create", "POST", "/v1.41/containers/create", map[string]any{
			"image": "runtime:1", "user": "root (uid 0) from image", "privileged": true},
			"privileged is not allowed: it gives the container every capability and device of the host",
			"user root (uid 0, the image's default) not allowed: set User to a non-root uid"),
		record("r3", "would-deny", "container.prune", "POST", "/v1.41/containers/prune", map[string]any{},
			"operation container.prune is refused by the policy (operations: deny)"),
		record("r4", "would-deny", "image.build", "POST", "/v1.41/build", map[string]any{},
			"operation image.build is refused by the policy (operations: deny)"),
		record("r5", "allow", "network.connect", "POST", "/v1.41/networks/other-net/connect", map[string]any{}),
		record("r6", "error", "", "GET", "/nope", nil),
	}
	p := Learn(rev.Library, recs)
	if p.Used != 5 || p.WouldDeny != 4 {
		t.Errorf("used %d would-deny %d", p.Used, p.WouldDeny)
	}
	wantRoots := []policy.MountRoot{{Path: "/data/real", Modes: []string{"ro"}}, {Path: "/work/a", Modes: []string{"rw"}}}
	if !slices.EqualFunc(p.MountRoots, wantRoots, func(a, b policy.MountRoot) bool { return a.Path == b.Path && slices.Equal(a.Modes, b.Modes) }) {
		t.Errorf("mount roots %+v", p.MountRoots)
	}
	if !slices.Equal(p.AllowedUIDs, []int{1000}) || !slices.Equal(p.AllowedGIDs, []int{1000}) {
		t.Errorf("uids %v gids %v", p.AllowedUIDs, p.AllowedGIDs)
	}
	if !slices.Equal(p.AllowedImages, []string{"runtime:1"}) || !slices.Equal(p.AllowedHostIPs, []string{"127.0.0.1", "127.0.0.2", "::1"}) {
		t.Errorf("images %v host ips %v", p.AllowedImages, p.AllowedHostIPs)
	}
	if !slices.Equal(p.AllowedNetworks, []string{"bridge", "default", "none", "other-net", "sandbox-net"}) {
		t.Errorf("networks %v", p.AllowedNetworks)
	}
	if len(p.Operations) != 1 || p.Operations["container.prune"] != "allow" {
		t.Errorf("operations %v", p.Operations)
	}
	var left []string
	for _, r := range p.Remaining {
		left = append(left, r.Reason)
	}
	slices.Sort(left)
	wantLeft := []string{
		"mount /etc:/host-etc is not under an allowed root",
		"operation image.build is refused by the policy (operations: deny)",
		"port 90/tcp binds all interfaces (empty HostIp): only 127.0.0.1, ::1 allowed",
		"privileged is not allowed: it gives the container every capability and device of the host",
		"user root (uid 0, the image's default) not allowed: set User to a non-root uid",
	}
	if !slices.Equal(left, wantLeft) {
		t.Errorf("remaining:\n%s\nwant:\n%s", strings.Join(left, "\n"), strings.Join(wantLeft, "\n"))
	}
	y := p.YAML([]string{"audit.log"})
	for _, want := range []string{"policy:\n  data:\n", `- path: "/work/a"  # observed rw 1×`, "container.prune: allow  # 1×", "NOT LIFTED", "image.build"} {
		if !strings.Contains(y, want) {
			t.Errorf("YAML lacks %q:\n%s", want, y)
		}
	}
}

// A create rebuilt from its audit facts carries what the facts say.
func TestReplaySpecRebuildsCreate(t *testing.T) {
	r := record("r1", "would-deny", "container.create", "POST", "/v1.41/containers/create?name=x", map[string]any{
		"image": "img", "user": "1000:1000", "mounts": []any{"bind /a=>/b:/w:rw"}, "ports": []any{"*:80->80/tcp"},
		"networks": []any{"n1", "n2"}, "privileged": true})
	spec, rebuilt := ReplaySpec(&r, nil)
	if !rebuilt {
		t.Fatal("not rebuilt")
	}
	want := `{"HostConfig":{"Binds":["/a:/w:rw"],"NetworkMode":"n1","PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"80"}]},"Privileged":true},"NetworkingConfig":{"EndpointsConfig":{"n2":{}}},"ExposedPorts":{"80/tcp":{}},"Image":"img","User":"1000:1000"}`
	if got := string(spec.Body); !sameJSON(t, got, want) {
		t.Fatalf("body %s\nwant %s", got, want)
	}
}

func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// A volume.create with a plugin driver (the live test cannot create one:
// dockerd waits 15 s for a missing plugin) and one on a host device.
func TestLearnVolumeDrivers(t *testing.T) {
	recs := []audit.Record{
		{RequestID: "r1", Decision: audit.DecisionWouldDeny, Operation: "volume.create",
			Reasons: []string{"volume driver nfsplugin is not allowed: only local and volume_drivers (none)"},
			Facts:   map[string]any{"volume": map[string]any{"name": "a", "driver": "nfsplugin", "local_mount": ""}}},
		{RequestID: "r2", Decision: audit.DecisionWouldDeny, Operation: "volume.create",
			Reasons: []string{"volume b: local driver options device=/dev/sdb,type=ext4 mounts a host device: allowed_local_volume_kinds are tmpfs"},
			Facts:   map[string]any{"volume": map[string]any{"name": "b", "driver": "local", "local_mount": "device"}}},
	}
	p := Learn(&policy.LibraryConfig{AllowedLocalVolumeKinds: []string{"tmpfs"}, Operations: map[string]string{"volume.create": "judge"}}, recs)
	if !slices.Equal(p.VolumeDrivers, []string{"nfsplugin"}) || p.AllowedLocalVolumeKinds != nil {
		t.Fatalf("volume drivers %v, kinds %v", p.VolumeDrivers, p.AllowedLocalVolumeKinds)
	}
	if len(p.Remaining) != 1 || !strings.Contains(p.Remaining[0].Reason, "host device") {
		t.Fatalf("remaining %+v", p.Remaining)
	}
	if y := p.YAML(nil); !strings.Contains(y, "volume_drivers:\n      - \"nfsplugin\"  # 1×") {
		t.Fatalf("yaml:\n%s", y)
	}
}

// An update record, as decoded from the log (numbers as float64), comes
// back as a body that sets the same fields: MaxInt64 (2^63 in float64) is
// clamped, and each field named in other is set.
func TestReplaySpecRebuildsUpdate(t *testing.T) {
	r := audit.Record{Operation: "container.update", Method: "POST", Path: "/v1.41/containers/c/update",
		Facts: map[string]any{"update": map[string]any{"memory": float64(math.MaxInt64), "pids_limit": float64(0),
			"restart_policy": map[string]any{"name": "on-failure", "maximum_retry_count": float64(3)},
			"other":          []any{"Devices", "Ulimits", "CgroupParent", "OomKillDisable"}}}}
	spec, rebuilt := ReplaySpec(&r, nil)
	var got container.UpdateConfig
	if err := json.Unmarshal(spec.Body, &got); err != nil || !rebuilt {
		t.Fatalf("rebuilt %v, body %s: %v", rebuilt, spec.Body, err)
	}
	if got.Memory != math.MaxInt64 || got.PidsLimit == nil || *got.PidsLimit != 0 || got.RestartPolicy.MaximumRetryCount != 3 ||
		len(got.Devices) == 0 || len(got.Ulimits) == 0 || got.CgroupParent == "" || got.OomKillDisable == nil || got.CPUShares != 0 {
		t.Fatalf("body %s decodes to %+v", spec.Body, got)
	}
}
