package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/sockproxy/sockproxy/proxy"
)

// fleetRule refuses creates of the images listed in the bundle's data; its
// reason names the bundle release so a test can tell revisions apart.
const fleetRule = `package sockproxy

deny contains sprintf("image %s is blocked by fleet release %s", [input.container.image, data.fleet.release]) if {
	input.operation == "container.create"
	input.container.image in data.fleet.blocked_images
}
`

const fleetRuleTest = `package fleet.tests

import data.sockproxy

test_blocked_image_refused if {
	count(sockproxy.deny) > 0 with input as {"operation": "container.create", "container": {"image": "evil"}}
		with data.fleet.blocked_images as ["evil"]
}
`

// TestBundle is a bundle built in a test: files by path in the archive,
// the data document, the manifest revision.
type testBundle struct {
	modules  map[string]string
	data     map[string]any
	revision string
}

// build writes the bundle as OPA's `opa build` does (.manifest, data.json,
// modules; .signatures.json when key is set: an HS256 JWT over the files'
// SHA-256 hashes, as `opa build --signing-alg HS256 --signing-key`).
func (b testBundle) build(t testing.TB, keyID, key string) []byte {
	t.Helper()
	ob := bundle.Bundle{Data: b.data, Manifest: bundle.Manifest{Revision: b.revision, Roots: &[]string{"fleet", "sockproxy"}}}
	for _, path := range slices.Sorted(maps.Keys(b.modules)) {
		ob.Modules = append(ob.Modules, bundle.ModuleFile{URL: "/" + path, Path: "/" + path, Raw: []byte(b.modules[path])})
	}
	if key != "" {
		if err := ob.GenerateSignature(bundle.NewSigningConfig(key, "HS256", ""), keyID, false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).DisableFormat(true).Write(ob); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bundleServer serves one bundle archive with an ETag (its revision), as a
// bundle server or an object store does, and answers 304 to a client that
// already has it.
type bundleServer struct {
	*httptest.Server
	mu       sync.Mutex
	body     []byte
	etag     string
	requests int
}

func newBundleServer(t testing.TB) *bundleServer {
	s := &bundleServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, etag := s.body, s.etag
		s.requests++
		s.mu.Unlock()
		if r.URL.Path != "/bundles/fleet.tar.gz" || body == nil {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *bundleServer) serve(etag string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.etag = body, `"`+etag+`"`
}

// startTestFleet starts a fleet whose single bundle "fleet" is downloaded
// only when triggered (so that each step of a test is one download).
func startTestFleet(t *testing.T, r *Reloader, srv *bundleServer, extra map[string]any) *Fleet {
	t.Helper()
	bundles := map[string]any{"service": "bundles", "resource": "/bundles/fleet.tar.gz", "trigger": "manual"}
	cfg := map[string]any{
		"services": map[string]any{"bundles": map[string]any{"url": srv.URL}},
		"bundles":  map[string]any{"fleet": bundles},
	}
	for k, v := range extra {
		if k == "signing" {
			bundles[k] = v
			continue
		}
		cfg[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	f, err := StartFleet(ctx, FleetOptions{Config: cfg, ID: "test-host", Reloader: r, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Stop(context.Background())
		cancel()
	})
	return f
}

// download triggers one download of the bundle and returns its status.
func (f *Fleet) download(t *testing.T) bundleplugin.Status {
	t.Helper()
	_ = bundleplugin.Lookup(f.Manager()).Trigger(context.Background()) // failures are in the status
	return f.BundleStatus()["fleet"]
}

func statusError(st bundleplugin.Status) string {
	msg := st.Message
	for _, err := range st.Errors {
		msg += "; " + err.Error()
	}
	return msg
}

// denyReasons decides the OpenHands create under the revision in force.
func denyReasons(t *testing.T, e *Engine) []string {
	t.Helper()
	return e.Decide(context.Background(), createReq).Reasons
}

// A bundle is enforced once downloaded; a new revision replaces it without
// a restart; a bundle that does not compile, or fails its own Rego tests,
// is refused and the previous revision stays in force (and OPA's status
// says why).
func TestFleetBundleRevisions(t *testing.T) {
	in, body := openHandsInput(t)
	e := newEngine(t, Options{Data: openHandsRoots, Build: staticBuilder(in, body)})
	r, _ := newReloader(t, e, nil)
	if res := r.Reload(context.Background(), "start"); res.Err != nil {
		t.Fatal(res.Err)
	}
	srv := newBundleServer(t)
	f := startTestFleet(t, r, srv, nil)
	local := e.Revision()
	if reasons := denyReasons(t, e); len(reasons) != 0 {
		t.Fatalf("the local policy refuses the create: %q", reasons)
	}

	image := in.Container.Image
	v1 := testBundle{revision: "v1",
		modules: map[string]string{"fleet/images.rego": fleetRule, "fleet/images_test.rego": fleetRuleTest},
		data:    map[string]any{"fleet": map[string]any{"release": "r1", "blocked_images": []any{image}}}}
	srv.serve("v1", v1.build(t, "", ""))
	st := f.download(t)
	if st.ActiveRevision != "v1" || st.Code != "" {
		t.Fatalf("bundle v1 not active: %+v (%s)", st, statusError(st))
	}
	want1 := "image " + image + " is blocked by fleet release r1"
	if reasons := denyReasons(t, e); !slices.Equal(reasons, []string{want1}) {
		t.Fatalf("bundle v1 in force, reasons %q, want %q", reasons, want1)
	}
	rev1 := e.Revision()
	if rev1 == local || !slices.Contains(rev1.Modules, BundleFileName("fleet", "/fleet/images.rego")) {
		t.Fatalf("revision %s modules %q: the bundle's module is not in it", rev1.ID, rev1.Modules)
	}

	// A new revision: only the data changes.
	v2 := v1
	v2.revision = "v2"
	v2.data = map[string]any{"fleet": map[string]any{"release": "r2", "blocked_images": []any{image}}}
	srv.serve("v2", v2.build(t, "", ""))
	if st := f.download(t); st.ActiveRevision != "v2" {
		t.Fatalf("bundle v2 not active: %+v (%s)", st, statusError(st))
	}
	want2 := "image " + image + " is blocked by fleet release r2"
	if reasons := denyReasons(t, e); !slices.Equal(reasons, []string{want2}) {
		t.Fatalf("bundle v2 in force, reasons %q, want %q", reasons, want2)
	}
	rev2 := e.Revision()

	for _, c := range []struct {
		name, revision, errText string
		modules                 map[string]string
	}{
		{"does not compile", "v3-broken", "images.rego:", map[string]string{
			"fleet/images.rego":      fleetRule + "\ndeny contains msg if {\n\tmsg := undefined_function(1)\n}\n",
			"fleet/images_test.rego": fleetRuleTest}},
		{"fails its test", "v4-untested", "test_blocked_image_refused", map[string]string{
			"fleet/images.rego":      strings.Replace(fleetRule, `input.operation == "container.create"`, `input.operation == "container.start"`, 1),
			"fleet/images_test.rego": fleetRuleTest}},
	} {
		bad := testBundle{revision: c.revision, modules: c.modules, data: v2.data}
		srv.serve(c.revision, bad.build(t, "", ""))
		st := f.download(t)
		if st.ActiveRevision != "v2" || !strings.Contains(statusError(st), c.errText) {
			t.Errorf("bundle that %s: active %q, status %q; want v2 and an error naming %q", c.name, st.ActiveRevision, statusError(st), c.errText)
		}
		if e.Revision() != rev2 || !slices.Equal(denyReasons(t, e), []string{want2}) {
			t.Errorf("bundle that %s replaced revision v2", c.name)
		}
	}
	if _, failures := r.Counts(); failures != 2 {
		t.Errorf("reload failures %d, want 2 (the two refused bundles)", failures)
	}

	// The same content under another ETag (a server without ETags does
	// this on every poll) is not validated again.
	attempts, _ := r.Counts()
	srv.serve("v2-again", v2.build(t, "", ""))
	if st := f.download(t); st.ActiveRevision != "v2" || e.Revision() != rev2 {
		t.Fatalf("bundle v2 served again: %+v (%s)", st, statusError(st))
	}
	if again, _ := r.Counts(); again != attempts {
		t.Errorf("the unchanged bundle was validated again (%d reload attempts, was %d)", again, attempts)
	}
}

// With signing configured, a bundle signed with the configured key is
// activated; an unsigned one, one signed with another key and one whose
// files changed after signing are refused.
func TestFleetBundleSignatures(t *testing.T) {
	in, body := openHandsInput(t)
	e := newEngine(t, Options{Data: openHandsRoots, Build: staticBuilder(in, body)})
	r, _ := newReloader(t, e, nil)
	if res := r.Reload(context.Background(), "start"); res.Err != nil {
		t.Fatal(res.Err)
	}
	srv := newBundleServer(t)
	const keyID, secret = "fleet-hmac", "correct horse battery staple"
	f := startTestFleet(t, r, srv, map[string]any{
		"keys":    map[string]any{keyID: map[string]any{"algorithm": "HS256", "key": secret}},
		"signing": map[string]any{"keyid": keyID},
	})
	image := in.Container.Image
	good := testBundle{revision: "signed-1",
		modules: map[string]string{"fleet/images.rego": fleetRule},
		data:    map[string]any{"fleet": map[string]any{"release": "signed", "blocked_images": []any{image}}}}
	srv.serve("signed-1", good.build(t, keyID, secret))
	if st := f.download(t); st.ActiveRevision != "signed-1" {
		t.Fatalf("signed bundle not active: %+v (%s)", st, statusError(st))
	}
	want := []string{"image " + image + " is blocked by fleet release signed"}
	if reasons := denyReasons(t, e); !slices.Equal(reasons, want) {
		t.Fatalf("signed bundle in force, reasons %q", reasons)
	}
	signed := e.Revision()

	// Tampered: the signature of the good bundle over other data (the
	// archive a man in the middle would serve to lift the block).
	lifted := good
	lifted.revision = "tampered"
	lifted.data = map[string]any{"fleet": map[string]any{"release": "signed", "blocked_images": []any{}}}
	tampered := tamper(t, good.build(t, keyID, secret), lifted.build(t, "", ""))
	for _, c := range []struct {
		name, etag string
		archive    []byte
	}{
		{"unsigned", "unsigned", lifted.build(t, "", "")},
		{"signed with another key", "other-key", lifted.build(t, keyID, "not the secret")},
		{"tampered after signing", "tampered", tampered},
	} {
		srv.serve(c.etag, c.archive)
		st := f.download(t)
		if st.ActiveRevision != "signed-1" || st.Code == "" {
			t.Errorf("%s bundle: active %q, status code %q (%s); want it refused", c.name, st.ActiveRevision, st.Code, statusError(st))
		}
		if e.Revision() != signed || !slices.Equal(denyReasons(t, e), want) {
			t.Errorf("%s bundle changed the policy in force", c.name)
		}
	}
}

// tamper returns the archive lifted with the .signatures.json of the
// archive signed added: files that do not match their signed hashes.
func tamper(t *testing.T, signed, lifted []byte) []byte {
	t.Helper()
	var sig []byte
	var entries []*tar.Header
	var contents [][]byte
	for i, archive := range [][]byte{signed, lifted} {
		zr, err := gzip.NewReader(bytes.NewReader(archive))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case i == 0 && strings.HasSuffix(h.Name, ".signatures.json"):
				sig = b
			case i == 1:
				entries, contents = append(entries, h), append(contents, b)
			}
		}
	}
	if sig == nil {
		t.Fatal("the signed bundle has no .signatures.json")
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	entries = append(entries, &tar.Header{Name: "/.signatures.json", Mode: 0o644, Typeflag: tar.TypeReg})
	contents = append(contents, sig)
	for i, h := range entries {
		h.Size = int64(len(contents[i]))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(contents[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decisionSink receives OPA's decision log uploads (gzip JSON arrays of
// events), as a remote decision log service does.
type decisionSink struct {
	*httptest.Server
	mu     sync.Mutex
	events []map[string]any
	bad    []string
}

func newDecisionSink(t testing.TB) *decisionSink {
	s := &decisionSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/logs" || r.Header.Get("Content-Encoding") != "gzip" {
			s.bad = append(s.bad, fmt.Sprintf("%s %s (Content-Encoding %q)", r.Method, r.URL.Path, r.Header.Get("Content-Encoding")))
			http.Error(w, "not a decision log upload", http.StatusBadRequest)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		var batch []map[string]any
		if err == nil {
			err = json.NewDecoder(zr).Decode(&batch)
		}
		if err != nil {
			s.bad = append(s.bad, "undecodable upload: "+err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.events = append(s.events, batch...)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *decisionSink) received() ([]map[string]any, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events), slices.Clone(s.bad)
}

// Every audited decision is also a decision log event; events pending when
// the fleet stops are uploaded before Stop returns.
func TestFleetDecisionLogs(t *testing.T) {
	in, body := openHandsInput(t)
	e := newEngine(t, Options{Data: openHandsRoots, Build: staticBuilder(in, body)})
	r, _ := newReloader(t, e, nil)
	sink := newDecisionSink(t)
	cfg := map[string]any{
		"services": map[string]any{"sink": map[string]any{"url": sink.URL}},
		// Reporting far apart: only Stop's flush can upload in time.
		"decision_logs": map[string]any{"service": "sink", "reporting": map[string]any{"min_delay_seconds": 300, "max_delay_seconds": 600}},
		"labels":        map[string]any{"site": "test"},
	}
	var logErrors []error
	f, err := StartFleet(context.Background(), FleetOptions{Config: cfg, ID: "host-7", Reloader: r, Logger: slog.New(slog.DiscardHandler),
		OnLogError: func(err error) { logErrors = append(logErrors, err) }})
	if err != nil {
		t.Fatal(err)
	}
	next := &countingAuditor{}
	a := f.Auditor(next)
	ctx := context.Background()
	req := openHandsRequest(openHandsBody)
	allowed := e.Decide(ctx, req)
	refused := proxy.Decision{Reasons: []string{"privileged is not allowed"}, Revision: allowed.Revision}
	for i, ev := range []*proxy.AuditEvent{
		{Request: withID(req, "req-allow"), Decision: allowed, Outcome: "allow", Status: 201, Start: time.Now()},
		{Request: withID(req, "req-deny"), Decision: refused, Outcome: "deny", Status: 403, Start: time.Now()},
		{Request: withID(req, "req-dry"), Decision: refused, Outcome: "allow", Mode: "dry-run", Status: 201, Start: time.Now()},
	} {
		if err := a.Audit(ev); err != nil || next.n != i+1 {
			t.Fatalf("audit %d: err %v, the wrapped auditor got %d", i, err, next.n)
		}
	}
	if events, _ := sink.received(); len(events) != 0 {
		t.Fatalf("%d events uploaded before the reporting delay", len(events))
	}
	f.Stop(context.Background())

	events, bad := sink.received()
	if len(bad) > 0 || len(logErrors) > 0 {
		t.Fatalf("bad uploads %q, log errors %v", bad, logErrors)
	}
	want := map[string]string{"req-allow": "allow", "req-deny": "deny", "req-dry": "would-deny"}
	if len(events) != len(want) {
		t.Fatalf("%d events uploaded, want %d: %v", len(events), len(want), events)
	}
	for _, ev := range events {
		id, _ := ev["decision_id"].(string)
		result, _ := ev["result"].(map[string]any)
		input, _ := ev["input"].(map[string]any)
		labels, _ := ev["labels"].(map[string]any)
		if result["decision"] != want[id] || ev["revision"] != allowed.Revision || input["operation"] != "container.create" ||
			ev["path"] != "sockproxy/deny" || labels["id"] != "host-7" || labels["site"] != "test" {
			t.Errorf("event %s: %v", id, ev)
		}
		if _, ok := result["warnings"].([]any); !ok {
			t.Errorf("event %s: warnings %v, want a list as in the audit log", id, result["warnings"])
		}
		if want[id] != "allow" && !slices.Equal(anyStrings(result["reasons"]), refused.Reasons) {
			t.Errorf("event %s: reasons %v", id, result["reasons"])
		}
		caller, _ := input["caller"].(map[string]any)
		if caller["user"] != "alice" || caller["uid"] != float64(1000) {
			t.Errorf("event %s: caller %v", id, input["caller"])
		}
	}
}

type countingAuditor struct{ n int }

func (a *countingAuditor) Ready() error                  { return nil }
func (a *countingAuditor) Audit(*proxy.AuditEvent) error { a.n++; return nil }

func withID(r *proxy.Request, id string) *proxy.Request {
	c := *r
	c.ID = id
	return &c
}

func anyStrings(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// OPA's bundle activator is process-wide: once a fleet has registered one,
// a plain rego.New (the tester, policy checks) must still get a store.
func TestFleetLeavesPlainRegoWorking(t *testing.T) {
	in, body := openHandsInput(t)
	e := newEngine(t, Options{Data: openHandsRoots, Build: staticBuilder(in, body)})
	r, _ := newReloader(t, e, nil)
	f, err := StartFleet(context.Background(), FleetOptions{Config: map[string]any{"labels": map[string]any{"site": "test"}}, ID: "host-8", Reloader: r, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.Stop(context.Background())
	rs, err := rego.New(rego.Query("x := 1 + 1")).Eval(context.Background())
	if err != nil || len(rs) != 1 || fmt.Sprint(rs[0].Bindings["x"]) != "2" {
		t.Fatalf("plain rego after a fleet: %v %v", rs, err)
	}
}
