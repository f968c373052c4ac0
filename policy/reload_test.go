package policy

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
)

const ownerRule = `package sockproxy

deny contains "containers need an owner label" if {
	input.operation == "container.create"
	not input.container.labels.owner
}
`

const ownerRuleTest = `package sockproxy_test

import data.sockproxy

test_unlabelled_create_refused if {
	"containers need an owner label" in sockproxy.deny with input as {"operation": "container.create", "container": {"labels": {}}}
}
`

func newReloader(t *testing.T, e *Engine, dirs []string) (*Reloader, *[]ReloadResult) {
	t.Helper()
	var seen []ReloadResult
	r := NewReloader(ReloaderOptions{Engine: e, Dirs: dirs, Data: openHandsRoots, Logger: slog.New(slog.DiscardHandler),
		Observe: func(res ReloadResult) { seen = append(seen, res) }})
	return r, &seen
}

// A module that does not compile, or a user test that fails, is refused
// with file:line; the revision in force does not change and the failure is
// counted.
func TestReloadRefusesBrokenPolicyAndFailingTests(t *testing.T) {
	dir := writeFiles(t, map[string]string{"team.rego": ownerRule, "team_test.rego": ownerRuleTest})
	in, body := openHandsInput(t)
	e := newEngine(t, Options{Dirs: []string{dir}, Data: openHandsRoots, Build: staticBuilder(in, body)})
	r, seen := newReloader(t, e, []string{dir})
	ctx := context.Background()

	res := r.Reload(ctx, "start")
	if res.Err != nil || res.Tests.User != 1 || res.Tests.Library == 0 {
		t.Fatalf("a good policy: err=%v tests=%+v", res.Err, res.Tests)
	}
	good := e.Revision()

	// A syntax error on line 4.
	broken := filepath.Join(dir, "team.rego")
	if err := os.WriteFile(broken, []byte(ownerRule+"\ndeny contains msg if {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = r.Reload(ctx, "files changed")
	if res.Err == nil || !strings.Contains(res.Err.Error(), broken+":") {
		t.Fatalf("broken module: err=%v, want one naming %s:line", res.Err, broken)
	}
	if e.Revision() != good || res.Revision != good {
		t.Fatalf("the broken policy replaced the revision in force")
	}
	if d := e.Decide(ctx, createReq); d.Allow || !slices.Equal(d.Reasons, []string{"containers need an owner label"}) {
		t.Fatalf("the old revision no longer decides: allow=%v reasons=%q", d.Allow, d.Reasons)
	}

	// A rule that compiles but breaks the user's own test.
	if err := os.WriteFile(broken, []byte(strings.Replace(ownerRule, "owner label", "owner", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	res = r.Reload(ctx, "files changed")
	testFile := filepath.Join(dir, "team_test.rego")
	if res.Err == nil || !strings.Contains(res.Err.Error(), testFile+":5: sockproxy_test.test_unlabelled_create_refused: FAIL") {
		t.Fatalf("failing test: err=%v", res.Err)
	}
	if e.Revision() != good {
		t.Fatal("a revision that fails its tests was swapped in")
	}

	// Fixed: the new revision goes in.
	if err := os.WriteFile(broken, []byte(ownerRule+"\nwarn contains \"noted\" if input.operation == \"container.create\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = r.Reload(ctx, "files changed")
	if res.Err != nil || !res.Changed || e.Revision() == good {
		t.Fatalf("fixed policy: err=%v changed=%v", res.Err, res.Changed)
	}
	attempts, failures := r.Counts()
	if attempts != 4 || failures != 2 || len(*seen) != 4 || (*seen)[1].Err == nil || (*seen)[3].Err != nil {
		t.Fatalf("attempts=%d failures=%d observed=%d", attempts, failures, len(*seen))
	}
	if r.Last().Revision != e.Revision() {
		t.Error("Last does not report the revision in force")
	}
}

// New library data (a config reload) is kept only when its candidate is
// put in force.
func TestSetSourceKeepsDataOnlyOnSuccess(t *testing.T) {
	in, body := openHandsInput(t)
	e := newEngine(t, Options{Data: openHandsRoots, Build: staticBuilder(in, body)})
	r, _ := newReloader(t, e, nil)
	ctx := context.Background()
	if res := r.SetSource(ctx, "config", nil, map[string]any{"no_such_setting": true}); res.Err == nil {
		t.Fatal("invalid library data accepted")
	}
	if d := e.Decide(ctx, createReq); !d.Allow {
		t.Fatalf("the old data no longer decides: %q", d.Reasons)
	}
	if res := r.SetSource(ctx, "config", nil, map[string]any{}); res.Err != nil || !res.Changed {
		t.Fatalf("valid data: %v", res.Err)
	}
	// Without the OpenHands mount roots the create is refused.
	if d := e.Decide(ctx, createReq); d.Allow {
		t.Fatal("new data not in force")
	}
	// A plain reload keeps the new data.
	if res := r.Reload(ctx, "SIGHUP"); res.Err != nil || res.Changed {
		t.Fatalf("reload after SetSource: err=%v changed=%v", res.Err, res.Changed)
	}
}

// A decision that started before a swap finishes under the revision it
// started with: the builder holds the decision between loading the
// revision and evaluating while a reload swaps in a stricter policy.
func TestInFlightDecisionKeepsItsRevision(t *testing.T) {
	dir := writeFiles(t, map[string]string{"empty.json": "{}"})
	in, body := openHandsInput(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var held bool
	build := func(ctx context.Context, req *proxy.Request) (*input.Input, []byte, error) {
		if req.ID == "held" && !held {
			held = true
			close(entered)
			<-release
		}
		return in, body, nil
	}
	e := newEngine(t, Options{Dirs: []string{dir}, Data: openHandsRoots, Build: build})
	r, _ := newReloader(t, e, []string{dir})
	old := e.Revision()

	decided := make(chan proxy.Decision, 1)
	go func() {
		decided <- e.Decide(context.Background(), &proxy.Request{ID: "held", Operation: createReq.Operation})
	}()
	<-entered
	if err := os.WriteFile(filepath.Join(dir, "team.rego"), []byte(ownerRule), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := r.Reload(context.Background(), "files changed"); res.Err != nil || !res.Changed {
		t.Fatalf("reload: err=%v changed=%v", res.Err, res.Changed)
	}
	close(release)
	d := <-decided
	if !d.Allow || d.Revision != old.ID {
		t.Fatalf("in-flight decision: allow=%v revision=%s reasons=%q, want allowed by %s", d.Allow, d.Revision, d.Reasons, old.ID)
	}
	d = e.Decide(context.Background(), createReq)
	if d.Allow || d.Revision != e.Revision().ID || d.Revision == old.ID {
		t.Fatalf("a new decision: allow=%v revision=%s, want refused by the new revision", d.Allow, d.Revision)
	}
}

// The watcher reports a batch for module and data edits, new
// subdirectories and the watched config file, and nothing for other files.
func TestWatcherReportsPolicyAndConfigChanges(t *testing.T) {
	dir := writeFiles(t, map[string]string{"team.rego": ownerRule})
	cfgDir := t.TempDir()
	cfgPath := filepath.Join(cfgDir, "sockproxy.yaml")
	if err := os.WriteFile(cfgPath, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(20*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Set([]string{dir}, []string{cfgPath}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batches := make(chan []string, 16)
	go w.Run(ctx, func(changed []string) { batches <- changed })

	next := func(what string) []string {
		t.Helper()
		select {
		case b := <-batches:
			return b
		case <-time.After(30 * time.Second):
			t.Fatalf("no change reported after %s", what)
			return nil
		}
	}
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Ignored files produce nothing; the policy edit after them is the
	// whole next batch.
	write(filepath.Join(dir, "notes.txt"), "x")
	write(filepath.Join(cfgDir, "other.yaml"), "x")
	write(filepath.Join(dir, "team.rego"), ownerRule+"# edited\n")
	if b := next("a module edit"); !slices.Equal(b, []string{filepath.Join(dir, "team.rego")}) {
		t.Fatalf("batch %q", b)
	}

	sub := filepath.Join(dir, "teams")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if b := next("a new subdirectory"); !slices.Contains(b, sub) {
		t.Fatalf("batch %q", b)
	}
	write(filepath.Join(sub, "data.json"), `{"a": 1}`)
	if b := next("a data file in the new subdirectory"); !slices.Contains(b, filepath.Join(sub, "data.json")) {
		t.Fatalf("batch %q", b)
	}

	// The config saved the way editors do: a new file renamed over it.
	tmp := filepath.Join(cfgDir, ".sockproxy.yaml.swp")
	write(tmp, "policy: {mode: dry-run}\n")
	if err := os.Rename(tmp, cfgPath); err != nil {
		t.Fatal(err)
	}
	if b := next("the config renamed over"); !slices.Equal(b, []string{cfgPath}) {
		t.Fatalf("batch %q", b)
	}
}
