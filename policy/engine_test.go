package policy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
	"github.com/sockproxy/sockproxy/proxy/route"
)

func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e, err := NewEngine(context.Background(), opts)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	return e
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var createReq = &proxy.Request{ID: "r1", Operation: proxy.Operation{Name: "container.create", Method: "POST", JudgeBody: true}}

func TestDecideOpenHandsCreateAllowed(t *testing.T) {
	in, body := openHandsInput(t)
	e := newEngine(t, Options{Data: openHandsRoots, Build: staticBuilder(in, body)})
	d := e.Decide(context.Background(), createReq)
	if !d.Allow {
		t.Fatalf("refused: %v", d.Reasons)
	}
	if string(d.Body) != string(body) {
		t.Errorf("forwarded body is not the canonical body")
	}
	if d.Revision == "" || d.Revision != e.Revision().ID {
		t.Errorf("revision %q, engine has %q", d.Revision, e.Revision().ID)
	}
	want := map[string]any{
		"image":    "docker.openhands.dev/openhands/runtime:0.62-nikolaik",
		"user":     "1000:1000",
		"mounts":   []string{"bind /home/alice/projects:/workspace:rw", "bind /home/alice/datasets:/data:ro"},
		"ports":    []string{"127.0.0.1:30412->30412/tcp", "127.0.0.1:44107->44107/tcp"},
		"networks": []string{"bridge"},
		"warnings": []string{"mount /home/alice/datasets:/data is read-only but not recursively: mounts below it stay writable"},
	}
	if !reflect.DeepEqual(d.Facts, want) {
		t.Errorf("facts:\n got %#v\nwant %#v", d.Facts, want)
	}
}

func TestDecideRefusesWithEveryReasonSorted(t *testing.T) {
	in, body := openHandsInput(t)
	in.Container.Ports[0].HostIP, in.Container.Ports[0].AllInterfaces, in.Container.Ports[0].Loopback = "0.0.0.0", true, false
	in.Container.User = input.UserFacts{Source: "image", UID: 0, GID: 0, Root: true, Resolved: true}
	in.Container.Mounts = append(in.Container.Mounts, input.Mount{Origin: "binds", Type: "bind", Source: "/etc", Target: "/host",
		HostBind: true, HostPath: "/etc", RealPath: "/etc", PathStatus: "resolved"})
	e := newEngine(t, Options{Data: openHandsRoots, Build: staticBuilder(in, body)})
	d := e.Decide(context.Background(), createReq)
	if d.Allow || d.Status != http.StatusForbidden {
		t.Fatalf("allow=%v status=%d, want a 403 refusal", d.Allow, d.Status)
	}
	want := []string{
		"mount /etc:/host is not under an allowed root",
		"port 30412/tcp binds 0.0.0.0: only 127.0.0.1, ::1 allowed",
		"user root (uid 0, the image's default) not allowed: set User to a non-root uid",
	}
	if !slices.Equal(d.Reasons, want) {
		t.Fatalf("reasons:\n got %q\nwant %q", d.Reasons, want)
	}
	wantMsg := "sockproxy: mount /etc:/host is not under an allowed root; port 30412/tcp binds 0.0.0.0: only 127.0.0.1, ::1 allowed; user root (uid 0, the image's default) not allowed: set User to a non-root uid"
	if got := Message(d.Reasons); got != wantMsg {
		t.Errorf("Message:\n got %q\nwant %q", got, wantMsg)
	}
}

func TestDefaultProfileRefusesHostBinds(t *testing.T) {
	in, body := openHandsInput(t)
	e := newEngine(t, Options{Build: staticBuilder(in, body)})
	d := e.Decide(context.Background(), createReq)
	want := []string{
		"mount /home/alice/datasets:/data is not under an allowed root",
		"mount /home/alice/projects:/workspace is not under an allowed root",
	}
	if d.Allow || !slices.Equal(d.Reasons, want) {
		t.Fatalf("allow=%v reasons=%q, want %q", d.Allow, d.Reasons, want)
	}
}

func TestDecideInputErrorIs400(t *testing.T) {
	e := newEngine(t, Options{Build: func(context.Context, *proxy.Request) (*input.Input, []byte, error) {
		return nil, nil, errors.New(`body: key "hostconfig" is not spelled as dockerd's field "HostConfig"`)
	}})
	d := e.Decide(context.Background(), createReq)
	if d.Allow || d.Status != http.StatusBadRequest || len(d.Reasons) != 1 || !strings.Contains(d.Reasons[0], "HostConfig") {
		t.Fatalf("got allow=%v status=%d reasons=%q, want a 400 naming the key", d.Allow, d.Status, d.Reasons)
	}
}

func TestUserModulesAddToDenyAndWarn(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"team.rego": `package sockproxy

deny contains "containers need an owner label" if {
	input.operation == "container.create"
	not input.container.labels.owner
}

warn contains sprintf("created by uid %d", [input.caller.uid]) if input.operation == "container.create"
`,
		"team_test.rego": "package sockproxy\n\nthis is not rego and must not be loaded",
	})
	in, body := openHandsInput(t)
	e := newEngine(t, Options{Dirs: []string{dir}, Data: openHandsRoots, Build: staticBuilder(in, body)})
	res := e.Evaluate(context.Background(), in, body)
	if res.Allow || !slices.Equal(res.Deny, []string{"containers need an owner label"}) {
		t.Fatalf("deny %q, want the user module's message", res.Deny)
	}
	if !slices.Contains(res.Warn, "created by uid 1000") {
		t.Errorf("warn %q lacks the user module's warning", res.Warn)
	}
	if !slices.Contains(e.Revision().Modules, filepath.Join(dir, "team.rego")) {
		t.Errorf("modules %q lack the user module", e.Revision().Modules)
	}
}

func TestModuleThatDoesNotCompileStopsStartup(t *testing.T) {
	for name, text := range map[string]string{
		"parse":   "package sockproxy\n\ndeny contains msg if {\n\tmsg := \n}\n",
		"compile": "package sockproxy\n\n\ndeny contains msg if {\n\tmsg := undefined_function(1)\n}\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"bad.rego": text})
			_, err := NewEngine(context.Background(), Options{Dirs: []string{dir}})
			if err == nil {
				t.Fatal("NewEngine accepted a broken module")
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, "bad.rego")+":") {
				t.Errorf("error does not name file:line: %v", err)
			}
		})
	}
}

func TestDataFilesAndInlineDataMerge(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"data.yaml": "sockproxy:\n  config:\n    mount_roots: [{path: /home/alice/projects, modes: [ro, rw]}]\n    allowed_networks: [openhands-network]\n",
		// dir/teams/data.json lands at data.teams.
		"teams/data.json": `{"owners": ["alice"]}`,
	})
	e := newEngine(t, Options{Dirs: []string{dir}, Data: map[string]any{"allowed_networks": []any{"default"}}})
	rev := e.Revision()
	if got := rev.Library.MountRoots; len(got) != 1 || got[0].Path != "/home/alice/projects" {
		t.Errorf("mount roots from the data file: %+v", got)
	}
	if got := rev.Library.AllowedNetworks; !slices.Equal(got, []string{"default"}) {
		t.Errorf("inline data must win over data files: allowed_networks %q", got)
	}
	if !rev.Library.RequireNonRoot || !slices.Equal(rev.Library.AllowedHostIPs, []string{"127.0.0.1", "::1"}) {
		t.Errorf("defaults lost in the merge: %+v", rev.Library)
	}
	teams, _ := rev.Data["teams"].(map[string]any)
	if teams == nil || teams["owners"] == nil {
		t.Errorf("data.teams missing: %v", rev.Data)
	}
}

func TestInvalidLibraryData(t *testing.T) {
	cases := map[string]struct {
		data map[string]any
		want string
	}{
		"unknown key":       {map[string]any{"mount_root": []any{}}, `unknown key "mount_root"`},
		"wrong type":        {map[string]any{"require_non_root": "yes"}, "require_non_root"},
		"relative root":     {map[string]any{"mount_roots": []any{map[string]any{"path": "data", "modes": []any{"ro"}}}}, "must be an absolute host path"},
		"bad mode":          {map[string]any{"mount_roots": []any{map[string]any{"path": "/data", "modes": []any{"rx"}}}}, `mode "rx"`},
		"duplicate root":    {map[string]any{"mount_roots": []any{map[string]any{"path": "/data/", "modes": []any{"ro"}}, map[string]any{"path": "/data", "modes": []any{"rw"}}}}, "listed twice"},
		"unknown root key":  {map[string]any{"mount_roots": []any{map[string]any{"path": "/data", "mode": []any{"ro"}}}}, `unknown field "mode"`},
		"bad action":        {map[string]any{"operations": map[string]any{"plugin.pull": "maybe"}}, `plugin.pull: "maybe"`},
		"bad ip":            {map[string]any{"allowed_host_ips": []any{"localhost"}}, `"localhost" is neither`},
		"bad namespace":     {map[string]any{"allowed_host_namespaces": []any{"network"}}, `"network" is not a namespace`},
		"cap spelling":      {map[string]any{"allowed_capabilities": []any{"CAP_NET_ADMIN"}}, "without CAP_"},
		"volumes_from mode": {map[string]any{"volumes_from": "allow"}, "volumes_from"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewEngine(context.Background(), Options{Data: tc.data})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestEvaluationErrorFailsClosed(t *testing.T) {
	dir := writeFiles(t, map[string]string{"conflict.rego": `package sockproxy

conflict := 1 if input.operation
conflict := 2 if input.operation

deny contains "never" if conflict == 3
`})
	in, body := openHandsInput(t)
	e := newEngine(t, Options{Dirs: []string{dir}, Data: openHandsRoots, Build: staticBuilder(in, body)})
	d := e.Decide(context.Background(), createReq)
	if d.Allow || d.Status != http.StatusInternalServerError || len(d.Reasons) != 1 ||
		!strings.Contains(d.Reasons[0], "policy evaluation failed") || !strings.Contains(d.Reasons[0], "fail closed") {
		t.Fatalf("allow=%v status=%d reasons=%q, want a fail-closed refusal", d.Allow, d.Status, d.Reasons)
	}
}

func TestEvaluationTimeoutFailsClosed(t *testing.T) {
	// Some 25 million iterations: seconds of work against a 1ms budget.
	dir := writeFiles(t, map[string]string{"slow.rego": `package sockproxy

deny contains "never" if {
	some i in numbers.range(1, 5000)
	some j in numbers.range(1, 5000)
	i * j < 0
}
`})
	in, body := openHandsInput(t)
	e := newEngine(t, Options{Dirs: []string{dir}, Data: openHandsRoots, EvalTimeout: time.Millisecond, Build: staticBuilder(in, body)})
	d := e.Decide(context.Background(), createReq)
	if d.Allow || len(d.Reasons) != 1 || !strings.Contains(d.Reasons[0], "policy evaluation timed out after 1ms: refused (fail closed)") {
		t.Fatalf("allow=%v reasons=%q, want a timeout refusal", d.Allow, d.Reasons)
	}
}

func TestUndefinedResultFailsClosed(t *testing.T) {
	in, _ := openHandsInput(t)
	rev, err := Compile(context.Background(), Source{Data: openHandsRoots})
	if err != nil {
		t.Fatal(err)
	}
	// A revision whose query names a document nobody defines.
	res := undefinedRevision(t, rev).Evaluate(context.Background(), in, nil, time.Second)
	if res.Allow || !strings.Contains(res.Failure, "undefined") {
		t.Fatalf("got %+v, want an undefined-result refusal", res)
	}
}

func TestRevisionHashFollowsContent(t *testing.T) {
	ctx := context.Background()
	a, err := Compile(ctx, Source{Data: openHandsRoots})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Compile(ctx, Source{Data: openHandsRoots})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(ctx, Source{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash != b.Hash {
		t.Errorf("same source, different hashes: %s %s", a.Hash, b.Hash)
	}
	if a.Hash == c.Hash {
		t.Errorf("different data, same hash %s", a.Hash)
	}
	if len(a.ID) != 12 || !strings.HasPrefix(a.Hash, a.ID) {
		t.Errorf("ID %q is not the hash's prefix", a.ID)
	}
}

func TestReloadSwapsOnlyOnSuccess(t *testing.T) {
	dir := writeFiles(t, map[string]string{"extra.rego": "package sockproxy\n\ndeny contains \"one\" if input.operation == \"container.list\"\n"})
	e := newEngine(t, Options{Dirs: []string{dir}})
	first := e.Revision()
	if err := os.WriteFile(filepath.Join(dir, "extra.rego"), []byte("package sockproxy\n\ndeny contains \"two\" if input.operation == \"container.list\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := e.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if second.Hash == first.Hash || e.Revision() != second {
		t.Fatal("reload did not swap in the new revision")
	}
	list := &input.Input{Operation: "container.list", Method: "GET"}
	if res := e.Evaluate(context.Background(), list, nil); !slices.Equal(res.Deny, []string{"two"}) {
		t.Fatalf("deny %q after reload", res.Deny)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.rego"), []byte("package sockproxy\n\ndeny contains"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reload(context.Background()); err == nil {
		t.Fatal("reload accepted a broken module")
	}
	if e.Revision() != second {
		t.Fatal("a failed reload replaced the revision in force")
	}
}

// Every operation the route table knows has an explicit action in the
// library's operations table, and the table names no other operation.
func TestOperationsTableCoversRouteTable(t *testing.T) {
	ops := DefaultLibraryData()["operations"].(map[string]any)
	routes := route.OperationNames()
	for _, name := range routes {
		if _, ok := ops[name]; !ok {
			t.Errorf("operation %s has no default action in rego/defaults.yaml", name)
		}
	}
	for name := range ops {
		if !slices.Contains(routes, name) {
			t.Errorf("rego/defaults.yaml names operation %s, which the route table does not know", name)
		}
	}
}

func TestMessage(t *testing.T) {
	if got := Message([]string{"a", "b"}); got != "sockproxy: a; b" {
		t.Errorf("Message = %q", got)
	}
	if got := Message(nil); got != "sockproxy: refused" {
		t.Errorf("Message(nil) = %q", got)
	}
}

// The whole decision with the real normalizer: the OpenHands create through
// input.Build (host paths resolved in a stand-in host root, lookups answered
// by a fake daemon) is allowed and forwarded canonically; a bind of /etc
// and a port on all interfaces are refused.
func TestDecideWithInputBuild(t *testing.T) {
	e := newEngine(t, Options{Data: openHandsRoots, Input: input.Options{Daemon: fakeDaemon{}, HostFS: input.HostFS{Root: hostRoot(t)}}})
	d := e.Decide(context.Background(), openHandsRequest(openHandsBody))
	if !d.Allow {
		t.Fatalf("refused: %v", d.Reasons)
	}
	if len(d.Body) == 0 || d.Facts["user"] != "1000:1000" {
		t.Fatalf("body %q facts %v", d.Body, d.Facts)
	}

	hostile := strings.Replace(openHandsBody, `"/home/alice/datasets:/data:ro"`, `"/etc:/host:ro"`, 1)
	hostile = strings.Replace(hostile, `{"HostIp": "127.0.0.1", "HostPort": "30412"}`, `{"HostIp": "", "HostPort": "30412"}`, 1)
	d = e.Decide(context.Background(), openHandsRequest(hostile))
	want := []string{
		"mount /etc:/host is not under an allowed root",
		"port 30412/tcp binds all interfaces (empty HostIp): only 127.0.0.1, ::1 allowed",
	}
	if d.Allow || d.Status != http.StatusForbidden || !slices.Equal(d.Reasons, want) {
		t.Fatalf("allow=%v status=%d reasons=%q, want %q", d.Allow, d.Status, d.Reasons, want)
	}

	d = e.Decide(context.Background(), openHandsRequest(strings.Replace(openHandsBody, `"HostConfig"`, `"hostconfig"`, 1)))
	if d.Allow || d.Status != http.StatusBadRequest {
		t.Fatalf("a mis-cased key: allow=%v status=%d reasons=%q, want 400", d.Allow, d.Status, d.Reasons)
	}
}

// Decisions run concurrently with reloads: each sees one whole revision.
func TestConcurrentDecideAndReload(t *testing.T) {
	in, body := openHandsInput(t)
	e := newEngine(t, Options{Data: openHandsRoots, Build: staticBuilder(in, body)})
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			if _, err := e.Reload(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 200 {
		if d := e.Decide(ctx, createReq); !d.Allow || d.Revision == "" {
			t.Fatalf("allow=%v revision=%q reasons=%q", d.Allow, d.Revision, d.Reasons)
		}
	}
	<-done
}
