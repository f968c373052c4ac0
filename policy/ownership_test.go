package policy

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
)

// Owner labels follow the policy in force: off by default, written once a
// reload enables ownership (a data file, as a watched reload sees it), or
// a profile does, and gone again when it is off.
func TestOwnerLabelsFollowThePolicy(t *testing.T) {
	dir := t.TempDir()
	e := newEngine(t, Options{Dirs: []string{dir}})
	alice := proxy.Caller{Known: true, UID: 1000, GID: 1000, User: "alice"}
	create := func(op, body string) string {
		t.Helper()
		req := &proxy.Request{ID: "r", Caller: alice, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body),
			Operation: proxy.Operation{Name: op, Method: "POST", APIVersion: "1.41", JudgeBody: true}}
		d := e.Decide(context.Background(), req)
		if d.Body == nil {
			t.Fatalf("%s: no canonical body: %v", op, d.Reasons)
		}
		return string(d.Body)
	}
	labelled := `"io.sockproxy.owner.uid":"1000","io.sockproxy.owner.user":"alice"`
	check := func(when string, want bool) {
		t.Helper()
		for op, body := range map[string]string{
			"container.create": `{"Image": "busybox", "Labels": {"io.sockproxy.owner.uid": "0"}}`,
			"network.create":   `{"Name": "n"}`,
			"volume.create":    `{"Name": "v"}`,
		} {
			got := create(op, body)
			if strings.Contains(got, labelled) != want {
				t.Errorf("%s: %s: owner labels written %v, want %v: %s", when, op, !want, want, got)
			}
		}
	}
	check("by default", false)

	conf := filepath.Join(dir, "sockproxy", "config")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(conf, "data.yaml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	write("ownership:\n  enabled: true\n")
	check("after a reload enabling ownership", true)
	write("profiles:\n  - name: ci\n    match: {uids: [2000]}\n    config: {ownership: {enabled: true}}\n")
	check("with ownership enabled by a profile", true)
	write("ownership:\n  enabled: false\n")
	check("after a reload disabling it", false)
}

// The decision of a list under ownership carries the filter the library
// asks for; admins, other operations and ownership off get none.
func TestDecisionCarriesTheOwnerFilter(t *testing.T) {
	on := map[string]any{"ownership": map[string]any{"enabled": true}}
	alice := proxy.Caller{Known: true, UID: 1000, GID: 1000, User: "alice"}
	root := proxy.Caller{Known: true}
	for _, c := range []struct {
		data   map[string]any
		op     string
		caller proxy.Caller
		want   string // "": no filter; "whole" or "line"
	}{
		{on, "container.list", alice, "whole"},
		{on, "network.list", alice, "whole"},
		{on, "volume.list", alice, "whole"},
		{on, "system.events", alice, "line"},
		{on, "container.list", root, ""},
		{on, "image.list", alice, ""},
		{nil, "container.list", alice, ""},
	} {
		e := newEngine(t, Options{Data: c.data})
		d := e.Decide(context.Background(), &proxy.Request{ID: "r", Caller: c.caller, Operation: proxy.Operation{Name: c.op, Method: "GET"}})
		if !d.Allow {
			t.Errorf("%s by uid %d: refused: %v", c.op, c.caller.UID, d.Reasons)
			continue
		}
		got := ""
		switch {
		case d.Filter == nil:
		case d.Filter.Whole != nil && d.Filter.Line == nil:
			got = "whole"
		case d.Filter.Line != nil && d.Filter.Whole == nil:
			got = "line"
		default:
			got = "malformed"
		}
		if got != c.want {
			t.Errorf("%s by uid %d (data %v): filter %q, want %q", c.op, c.caller.UID, c.data, got, c.want)
		}
		if c.want != "" && d.Facts["filter"] != "io.sockproxy.owner.uid in [1000] (unowned kept: false)" {
			t.Errorf("%s: filter fact %v", c.op, d.Facts["filter"])
		}
	}
}

// A filter for an operation whose answer sockproxy cannot read is an
// error (Decide then refuses) rather than an unfiltered answer.
func TestUnknownFilterRefuses(t *testing.T) {
	e := newEngine(t, Options{})
	if f, err := e.responseFilter("image.list", &FilterSpec{Label: input.OwnerUIDLabel}); err == nil || !strings.Contains(err.Error(), "cannot filter") {
		t.Errorf("filter for image.list: %v, %v", f, err)
	}
	if _, err := filterSpec([]any{map[string]any{"label": "x", "valeus": []any{}}}); err == nil {
		t.Error("a misspelt filter key was accepted")
	}
}

var aliceOnly = newOwnerMatch(&FilterSpec{Label: input.OwnerUIDLabel, Values: []string{"1000"}})

func TestFilterList(t *testing.T) {
	body := `[{"Id":"a","Labels":{"io.sockproxy.owner.uid":"1000"}},{"Id":"b","Labels":{"io.sockproxy.owner.uid":"1001"}},` +
		`{"Id":"c","Labels":{}},{"Id":"d","Labels":null},{"Id":"e","Labels":{"io.sockproxy.owner.uid":""}}]` + "\n"
	got, err := filterList([]byte(body), aliceOnly)
	if err != nil || string(got) != `[{"Id":"a","Labels":{"io.sockproxy.owner.uid":"1000"}}]`+"\n" {
		t.Errorf("filterList: %s, %v", got, err)
	}
	withUnowned := newOwnerMatch(&FilterSpec{Label: input.OwnerUIDLabel, Values: []string{"1000"}, IncludeUnowned: true})
	got, err = filterList([]byte(body), withUnowned)
	want := `[{"Id":"a","Labels":{"io.sockproxy.owner.uid":"1000"}},{"Id":"c","Labels":{}},{"Id":"d","Labels":null},{"Id":"e","Labels":{"io.sockproxy.owner.uid":""}}]` + "\n"
	if err != nil || string(got) != want {
		t.Errorf("filterList with unowned: %s, %v", got, err)
	}
	for _, bad := range []string{`{"Id":"a"}`, `[1]`, `[{"Id":"a"`, ``} {
		if got, err := filterList([]byte(bad), aliceOnly); err == nil {
			t.Errorf("filterList(%q) = %s: no error", bad, got)
		}
	}
	got, err = filterVolumes([]byte(`{"Volumes":[{"Name":"x","Labels":{"io.sockproxy.owner.uid":"1001"}},{"Name":"y","Labels":{"io.sockproxy.owner.uid":"1000"}}],"Warnings":null}`+"\n"), aliceOnly)
	if err != nil || string(got) != `{"Volumes":[{"Name":"y","Labels":{"io.sockproxy.owner.uid":"1000"}}],"Warnings":null}`+"\n" {
		t.Errorf("filterVolumes: %s, %v", got, err)
	}
	got, err = filterVolumes([]byte(`{"Volumes":null,"Warnings":null}`), aliceOnly)
	if err != nil || string(got) != `{"Volumes":null,"Warnings":null}`+"\n" {
		t.Errorf("filterVolumes of none: %s, %v", got, err)
	}
}

// Container events are judged by the labels they carry; events of objects
// without owners pass; what is not an event does not.
func TestEventFilterLines(t *testing.T) {
	f := &eventFilter{match: aliceOnly, cache: map[string]bool{}}
	for line, want := range map[string]bool{
		`{"Type":"container","Action":"start","Actor":{"ID":"a","Attributes":{"io.sockproxy.owner.uid":"1000","name":"x"}}}`: true,
		`{"Type":"container","Action":"start","Actor":{"ID":"b","Attributes":{"io.sockproxy.owner.uid":"1001","name":"y"}}}`: false,
		`{"Type":"container","Action":"start","Actor":{"ID":"c","Attributes":{"name":"z"}}}`:                                 false,
		`{"Type":"image","Action":"pull","Actor":{"ID":"busybox","Attributes":{}}}`:                                          true,
		`{"Type":"network","Action":"create","Actor":{"ID":"n1","Attributes":{"name":"n"}}}`:                                 false, // no daemon: owner unknown
		`{"status":"start","id":"a"}`: false,
		`not json`:                    false,
		``:                            false,
	} {
		if got := f.keep(context.Background(), []byte(line)); got != want {
			t.Errorf("keep(%s) = %v, want %v", line, got, want)
		}
	}
}

// The read-only monitoring example of docs/ownership.md: an ownership
// admin in its profile, so its lists are whole, and refused every change
// by its rule; other callers' lists stay filtered.
func TestMonitoringProfileExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/ownership.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	start := strings.Index(text, "```rego\n# /etc/sockproxy/policy/read_only.rego\n")
	if start < 0 {
		t.Fatal("docs/ownership.md: the read_only.rego example is gone")
	}
	module := text[start+len("```rego\n"):]
	module = module[:strings.Index(module, "```")]
	dir := writeFiles(t, map[string]string{"read_only.rego": module})
	e := newEngine(t, Options{Dirs: []string{dir}, Data: map[string]any{
		"ownership": map[string]any{"enabled": true},
		"profiles": []any{map[string]any{
			"name": "monitoring", "match": map[string]any{"uids": []any{990}},
			"config": map[string]any{"ownership": map[string]any{"admin_uids": []any{0, 990}}},
		}},
	}})
	monitor := proxy.Caller{Known: true, UID: 990, GID: 990}
	alice := proxy.Caller{Known: true, UID: 1000, GID: 1000}
	decide := func(c proxy.Caller, op, method string) proxy.Decision {
		return e.Decide(context.Background(), &proxy.Request{ID: "r", Caller: c, Operation: proxy.Operation{Name: op, Method: method}})
	}
	if d := decide(monitor, "container.list", "GET"); !d.Allow || d.Filter != nil {
		t.Errorf("monitor's container.list: allow=%v filter=%v %v", d.Allow, d.Filter != nil, d.Reasons)
	}
	if d := decide(monitor, "system.events", "GET"); !d.Allow || d.Filter != nil {
		t.Errorf("monitor's events: allow=%v filter=%v %v", d.Allow, d.Filter != nil, d.Reasons)
	}
	if d := decide(monitor, "container.prune", "POST"); d.Allow || !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.Contains(r, "read-only monitoring profile") }) {
		t.Errorf("monitor's container.prune: allow=%v %v", d.Allow, d.Reasons)
	}
	if d := decide(alice, "container.list", "GET"); !d.Allow || d.Filter == nil {
		t.Errorf("alice's container.list: allow=%v filter=%v %v", d.Allow, d.Filter != nil, d.Reasons)
	}
}
