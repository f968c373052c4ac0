package route

import (
	"bufio"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sockproxy/sockproxy/proxy"
)

type vars = map[string]string

// newRequest parses method and target the way the proxy's HTTP server does,
// so the target reaches the classifier exactly as a client sent it.
func newRequest(tb testing.TB, method, target string) *http.Request {
	tb.Helper()
	req, err := readRequest(method, target)
	if err != nil {
		tb.Fatalf("parse %s %s: %v", method, target, err)
	}
	return req
}

func readRequest(method, target string) (*http.Request, error) {
	return http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + target + " HTTP/1.1\r\nHost: d\r\n\r\n")))
}

// everyRoute has one request per table entry, with the operation and
// variables dockerd's router gives it.
var everyRoute = []struct {
	method, path, name string
	vars               vars
}{
	{"GET", "/containers/web/checkpoints", "checkpoint.list", vars{"name": "web"}},
	{"POST", "/containers/web/checkpoints", "checkpoint.create", vars{"name": "web"}},
	{"DELETE", "/containers/web/checkpoints/cp1", "checkpoint.delete", vars{"name": "web", "checkpoint": "cp1"}},
	{"HEAD", "/containers/web/archive", "container.archive.head", vars{"name": "web"}},
	{"GET", "/containers/json", "container.list", nil},
	{"GET", "/containers/web/export", "container.export", vars{"name": "web"}},
	{"GET", "/containers/web/changes", "container.changes", vars{"name": "web"}},
	{"GET", "/containers/web/json", "container.inspect", vars{"name": "web"}},
	{"GET", "/containers/web/top", "container.top", vars{"name": "web"}},
	{"GET", "/containers/web/logs", "container.logs", vars{"name": "web"}},
	{"GET", "/containers/web/stats", "container.stats", vars{"name": "web"}},
	{"GET", "/containers/web/attach/ws", "container.attach.ws", vars{"name": "web"}},
	{"GET", "/exec/abc123/json", "exec.inspect", vars{"id": "abc123"}},
	{"GET", "/containers/web/archive", "container.archive.get", vars{"name": "web"}},
	{"POST", "/containers/create", "container.create", nil},
	{"POST", "/containers/web/kill", "container.kill", vars{"name": "web"}},
	{"POST", "/containers/web/pause", "container.pause", vars{"name": "web"}},
	{"POST", "/containers/web/unpause", "container.unpause", vars{"name": "web"}},
	{"POST", "/containers/web/restart", "container.restart", vars{"name": "web"}},
	{"POST", "/containers/web/start", "container.start", vars{"name": "web"}},
	{"POST", "/containers/web/stop", "container.stop", vars{"name": "web"}},
	{"POST", "/containers/web/wait", "container.wait", vars{"name": "web"}},
	{"POST", "/containers/web/resize", "container.resize", vars{"name": "web"}},
	{"POST", "/containers/web/attach", "container.attach", vars{"name": "web"}},
	{"POST", "/containers/web/exec", "exec.create", vars{"name": "web"}},
	{"POST", "/exec/web/start", "exec.start", vars{"name": "web"}},
	{"POST", "/exec/web/resize", "exec.resize", vars{"name": "web"}},
	{"POST", "/containers/web/rename", "container.rename", vars{"name": "web"}},
	{"POST", "/containers/web/update", "container.update", vars{"name": "web"}},
	{"POST", "/containers/prune", "container.prune", nil},
	{"POST", "/commit", "container.commit", nil},
	{"PUT", "/containers/web/archive", "container.archive.put", vars{"name": "web"}},
	{"DELETE", "/containers/web", "container.delete", vars{"name": "web"}},
	{"GET", "/images/json", "image.list", nil},
	{"GET", "/images/search", "image.search", nil},
	{"GET", "/images/get", "image.get.all", nil},
	{"GET", "/images/web/get", "image.get", vars{"name": "web"}},
	{"GET", "/images/web/history", "image.history", vars{"name": "web"}},
	{"GET", "/images/web/json", "image.inspect", vars{"name": "web"}},
	{"POST", "/images/load", "image.load", nil},
	{"POST", "/images/create", "image.create", nil},
	{"POST", "/images/web/push", "image.push", vars{"name": "web"}},
	{"POST", "/images/web/tag", "image.tag", vars{"name": "web"}},
	{"POST", "/images/prune", "image.prune", nil},
	{"DELETE", "/images/web", "image.delete", vars{"name": "web"}},
	{"OPTIONS", "/any/where", "system.options", vars{"anyroute": "any/where"}},
	{"GET", "/_ping", "system.ping", nil},
	{"HEAD", "/_ping", "system.ping", nil},
	{"GET", "/events", "system.events", nil},
	{"GET", "/info", "system.info", nil},
	{"GET", "/version", "system.version", nil},
	{"GET", "/system/df", "system.df", nil},
	{"POST", "/auth", "system.auth", nil},
	{"GET", "/volumes", "volume.list", nil},
	{"GET", "/volumes/web", "volume.inspect", vars{"name": "web"}},
	{"POST", "/volumes/create", "volume.create", nil},
	{"POST", "/volumes/prune", "volume.prune", nil},
	{"PUT", "/volumes/web", "volume.update", vars{"name": "web"}},
	{"DELETE", "/volumes/web", "volume.delete", vars{"name": "web"}},
	{"POST", "/build", "image.build", nil},
	{"POST", "/build/prune", "image.build.prune", nil},
	{"POST", "/build/cancel", "image.build.cancel", nil},
	{"POST", "/session", "session", nil},
	{"POST", "/swarm/init", "swarm.init", nil},
	{"POST", "/swarm/join", "swarm.join", nil},
	{"POST", "/swarm/leave", "swarm.leave", nil},
	{"GET", "/swarm", "swarm.inspect", nil},
	{"GET", "/swarm/unlockkey", "swarm.unlockkey", nil},
	{"POST", "/swarm/update", "swarm.update", nil},
	{"POST", "/swarm/unlock", "swarm.unlock", nil},
	{"GET", "/services", "service.list", nil},
	{"GET", "/services/abc123", "service.inspect", vars{"id": "abc123"}},
	{"POST", "/services/create", "service.create", nil},
	{"POST", "/services/abc123/update", "service.update", vars{"id": "abc123"}},
	{"DELETE", "/services/abc123", "service.delete", vars{"id": "abc123"}},
	{"GET", "/services/abc123/logs", "service.logs", vars{"id": "abc123"}},
	{"GET", "/nodes", "node.list", nil},
	{"GET", "/nodes/abc123", "node.inspect", vars{"id": "abc123"}},
	{"DELETE", "/nodes/abc123", "node.delete", vars{"id": "abc123"}},
	{"POST", "/nodes/abc123/update", "node.update", vars{"id": "abc123"}},
	{"GET", "/tasks", "task.list", nil},
	{"GET", "/tasks/abc123", "task.inspect", vars{"id": "abc123"}},
	{"GET", "/tasks/abc123/logs", "task.logs", vars{"id": "abc123"}},
	{"GET", "/secrets", "secret.list", nil},
	{"POST", "/secrets/create", "secret.create", nil},
	{"DELETE", "/secrets/abc123", "secret.delete", vars{"id": "abc123"}},
	{"GET", "/secrets/abc123", "secret.inspect", vars{"id": "abc123"}},
	{"POST", "/secrets/abc123/update", "secret.update", vars{"id": "abc123"}},
	{"GET", "/configs", "config.list", nil},
	{"POST", "/configs/create", "config.create", nil},
	{"DELETE", "/configs/abc123", "config.delete", vars{"id": "abc123"}},
	{"GET", "/configs/abc123", "config.inspect", vars{"id": "abc123"}},
	{"POST", "/configs/abc123/update", "config.update", vars{"id": "abc123"}},
	{"GET", "/plugins", "plugin.list", nil},
	{"GET", "/plugins/web/json", "plugin.inspect", vars{"name": "web"}},
	{"GET", "/plugins/privileges", "plugin.privileges", nil},
	{"DELETE", "/plugins/web", "plugin.delete", vars{"name": "web"}},
	{"POST", "/plugins/web/enable", "plugin.enable", vars{"name": "web"}},
	{"POST", "/plugins/web/disable", "plugin.disable", vars{"name": "web"}},
	{"POST", "/plugins/pull", "plugin.pull", nil},
	{"POST", "/plugins/web/push", "plugin.push", vars{"name": "web"}},
	{"POST", "/plugins/web/upgrade", "plugin.upgrade", vars{"name": "web"}},
	{"POST", "/plugins/web/set", "plugin.set", vars{"name": "web"}},
	{"POST", "/plugins/create", "plugin.create", nil},
	{"GET", "/distribution/web/json", "distribution.inspect", vars{"name": "web"}},
	{"GET", "/networks", "network.list", nil},
	{"GET", "/networks/", "network.list", nil},
	{"GET", "/networks/abc123", "network.inspect", vars{"id": "abc123"}},
	{"POST", "/networks/create", "network.create", nil},
	{"POST", "/networks/abc123/connect", "network.connect", vars{"id": "abc123"}},
	{"POST", "/networks/abc123/disconnect", "network.disconnect", vars{"id": "abc123"}},
	{"POST", "/networks/prune", "network.prune", nil},
	{"DELETE", "/networks/abc123", "network.delete", vars{"id": "abc123"}},
	{"GET", "/debug/vars", "debug.vars", nil},
	{"GET", "/debug/pprof/", "debug.pprof.index", nil},
	{"GET", "/debug/pprof/cmdline", "debug.pprof.cmdline", nil},
	{"GET", "/debug/pprof/profile", "debug.pprof.profile", nil},
	{"GET", "/debug/pprof/symbol", "debug.pprof.symbol", nil},
	{"GET", "/debug/pprof/trace", "debug.pprof.trace", nil},
	{"GET", "/debug/pprof/heap", "debug.pprof.lookup", vars{"name": "heap"}},
	{"POST", "/grpc", "grpc", nil},
}

func TestClassifyEveryRoute(t *testing.T) {
	r := New(Config{})
	covered := map[[2]string]bool{}
	for _, tc := range everyRoute {
		for _, prefix := range []string{"", "/v1.24", "/v1.41", "/v1.51"} {
			target := prefix + tc.path
			op, err := r.Classify(newRequest(t, tc.method, target))
			if err != nil {
				t.Errorf("%s %s: %v", tc.method, target, err)
				continue
			}
			if op.Name != tc.name || !maps.Equal(op.Vars, tc.vars) {
				t.Errorf("%s %s = %s %v, want %s %v", tc.method, target, op.Name, op.Vars, tc.name, tc.vars)
			}
			if want := strings.TrimPrefix(prefix, "/v"); op.APIVersion != want {
				t.Errorf("%s %s: APIVersion %q, want %q", tc.method, target, op.APIVersion, want)
			}
			if op.Method != tc.method || op.Path != target {
				t.Errorf("%s %s: Method %q Path %q", tc.method, target, op.Method, op.Path)
			}
			s := findSpec(t, op)
			if op.JudgeBody != s.JudgeBody || op.Hijack != s.Hijack || op.Stream != s.Stream {
				t.Errorf("%s %s: flags %v/%v/%v differ from spec %+v", tc.method, target, op.JudgeBody, op.Hijack, op.Stream, s)
			}
			covered[[2]string{s.Method, s.Path}] = true
		}
	}
	for _, s := range Operations() {
		if !covered[[2]string{s.Method, s.Path}] {
			t.Errorf("no test request reaches %s %s (%s): add one or find what shadows it", s.Method, s.Path, s.Name)
		}
	}
}

// findSpec returns the table entry op was classified by: the one whose
// method and template give back op's path.
func findSpec(tb testing.TB, op proxy.Operation) OperationSpec {
	tb.Helper()
	rest := strings.TrimPrefix(op.Path, "/v"+op.APIVersion)
	if op.APIVersion == "" {
		rest = op.Path
	}
	for _, s := range Operations() {
		if s.Name == op.Name && s.Method == op.Method && expand(s.Path, op.Vars) == mustUnescape(tb, rest) {
			return s
		}
	}
	tb.Fatalf("no table entry named %s serves %s %s with vars %v", op.Name, op.Method, op.Path, op.Vars)
	return OperationSpec{}
}

func mustUnescape(tb testing.TB, p string) string {
	u, err := url.PathUnescape(p)
	if err != nil {
		tb.Fatalf("unescape %q: %v", p, err)
	}
	return u
}

var templateVar = regexp.MustCompile(`\{([^}:]+)(?::([^}]*))?\}`)

// expand fills a route template with variables.
func expand(tpl string, vars map[string]string) string {
	return templateVar.ReplaceAllStringFunc(tpl, func(v string) string {
		return vars[templateVar.FindStringSubmatch(v)[1]]
	})
}

// Outcomes of a request at dockerd, and at the classifier.
const (
	routed   = "routed"   // a handler runs; the classifier names the operation
	unclean  = "unclean"  // dockerd: 301 to the clean path; classifier: 400
	notFound = "notfound" // dockerd: 404 page not found; classifier: 404
	noMethod = "nomethod" // dockerd: 404 page not found; classifier: 405
	badVer   = "version"  // dockerd and classifier: 400 client version ...
	badQuery = "query"    // classifier only: 400 invalid query string
)

// outcome sorts the classifier's answer into one of the outcomes above.
func outcome(tb testing.TB, err error) string {
	tb.Helper()
	if err == nil {
		return routed
	}
	re, ok := err.(*proxy.RouteError)
	if !ok {
		tb.Fatalf("Classify returned %T, want *proxy.RouteError: %v", err, err)
	}
	switch {
	case re.Status == http.StatusBadRequest && strings.Contains(re.Message, "is not clean"):
		return unclean
	case re.Status == http.StatusBadRequest && strings.HasPrefix(re.Message, "client version "):
		return badVer
	case re.Status == http.StatusBadRequest && strings.HasPrefix(re.Message, "invalid query string"):
		return badQuery
	case re.Status == http.StatusNotFound && re.Message == "page not found":
		return notFound
	case re.Status == http.StatusMethodNotAllowed:
		return noMethod
	}
	tb.Fatalf("unexpected refusal %d %q", re.Status, re.Message)
	return ""
}

// pathTricks are requests a proxy might read differently from dockerd, with
// how dockerd routes them. Those marked live were checked against dockerd
// 20.10 (API 1.41) with curl --path-as-is.
var pathTricks = []struct {
	method, target string
	want           string // outcome
	name           string
	vars           vars
	version        string
	message        string // for refusals, when it matters
}{
	// Percent-decoded matching: an encoded letter reaches the route it spells
	// (live: 200 []), an encoded "/" splits segments (live: "No such
	// container: a/b").
	{"GET", "/v1.41/containers/%6Aso%6E", routed, "container.list", nil, "1.41", ""},
	{"GET", "/v1.41/containers/a%2Fb/json", routed, "container.inspect", vars{"name": "a/b"}, "1.41", ""},
	{"POST", "/v1.41/containers/nonexist%2Fx/start", routed, "container.start", vars{"name": "nonexist/x"}, "1.41", ""},
	{"GET", "/%761.41/containers/json", routed, "container.list", nil, "1.41", ""},
	{"GET", "/v1%2E41/containers/json", routed, "container.list", nil, "1.41", ""},
	{"GET", "/containers/%C3%A9/json", routed, "container.inspect", vars{"name": "é"}, "", ""},
	{"POST", "/v1.41/exec/%61%62/start", routed, "exec.start", vars{"name": "ab"}, "1.41", ""},
	// {name:.*} takes slashes, and mux takes the first registered route.
	{"GET", "/containers/a/b/json", routed, "container.inspect", vars{"name": "a/b"}, "", ""},
	{"GET", "/containers/json/json", routed, "container.inspect", vars{"name": "json"}, "", ""},
	{"DELETE", "/containers/create", routed, "container.delete", vars{"name": "create"}, "", ""},
	{"DELETE", "/containers/json", routed, "container.delete", vars{"name": "json"}, "", ""},
	{"DELETE", "/containers/json/", routed, "container.delete", vars{"name": "json/"}, "", ""},
	{"POST", "/containers/prune/start", routed, "container.start", vars{"name": "prune"}, "", ""},
	{"POST", "/containers/create/start", routed, "container.start", vars{"name": "create"}, "", ""},
	{"GET", "/containers/x/start/json", routed, "container.inspect", vars{"name": "x/start"}, "", ""},
	{"GET", "/containers/x/checkpoints", routed, "checkpoint.list", vars{"name": "x"}, "", ""},
	{"DELETE", "/containers/x/checkpoints/cp", routed, "checkpoint.delete", vars{"name": "x", "checkpoint": "cp"}, "", ""},
	{"DELETE", "/containers/a/b/checkpoints/cp", routed, "container.delete", vars{"name": "a/b/checkpoints/cp"}, "", ""},
	{"POST", "/images/reg.io:5000/a/b/push", routed, "image.push", vars{"name": "reg.io:5000/a/b"}, "", ""},
	{"GET", "/images/x/push/json", routed, "image.inspect", vars{"name": "x/push"}, "", ""},
	{"POST", "/images/x/json/push", routed, "image.push", vars{"name": "x/json"}, "", ""},
	{"GET", "/images/get/get", routed, "image.get", vars{"name": "get"}, "", ""},
	{"GET", "/images/json/json", routed, "image.inspect", vars{"name": "json"}, "", ""},
	{"DELETE", "/images/sha256:abc", routed, "image.delete", vars{"name": "sha256:abc"}, "", ""},
	{"GET", "/networks/a/b", routed, "network.inspect", vars{"id": "a/b"}, "", ""},
	{"GET", "/networks/create", routed, "network.inspect", vars{"id": "create"}, "", ""},
	{"DELETE", "/networks/", routed, "network.delete", vars{"id": ""}, "", ""},
	{"GET", "/volumes/", routed, "volume.inspect", vars{"name": ""}, "", ""},
	{"GET", "/volumes/create", routed, "volume.inspect", vars{"name": "create"}, "", ""},
	{"GET", "/debug/pprof/heap", routed, "debug.pprof.lookup", vars{"name": "heap"}, "", ""},
	{"GET", "/v1.41/containers/abc./json", routed, "container.inspect", vars{"name": "abc."}, "1.41", ""},
	// A newline: mux's ".*" does not match it, "[^/]+" does.
	{"GET", "/v1.41/containers/a%0Ab/json", notFound, "", nil, "", ""},
	{"GET", "/services/a%0Ab", routed, "service.inspect", vars{"id": "a\nb"}, "", ""},
	// Not clean once decoded: dockerd answers 301 (live), the proxy 400.
	{"GET", "/v1.41/containers//json", unclean, "", nil, "", `request path "/v1.41/containers//json" is not clean (dockerd would redirect it to "/v1.41/containers/json"); send the clean path`},
	{"GET", "/v1.41/containers/./json", unclean, "", nil, "", ""},
	{"GET", "/v1.41/containers/x/../json", unclean, "", nil, "", ""},
	{"GET", "/v1.41/containers/%2e%2e/json", unclean, "", nil, "", ""},
	{"GET", "/v1.41/containers/a%2F%2Fb/json", unclean, "", nil, "", ""},
	{"GET", "/v1.41/containers/a%2F..%2Fjson", unclean, "", nil, "", ""},
	{"GET", "//v1.41/networks", unclean, "", nil, "", ""},
	{"GET", "/v1.41/containers/json/.", unclean, "", nil, "", ""},
	{"GET", "/..", unclean, "", nil, "", ""},
	{"OPTIONS", "*", unclean, "", nil, "", ""},
	// Version prefixes, compared part by part as integers.
	{"GET", "/v1.41.0/containers/json", routed, "container.list", nil, "1.41.0", ""},
	{"GET", "/v01.41/containers/json", routed, "container.list", nil, "01.41", ""},
	{"GET", "/v0001.0024/containers/json", routed, "container.list", nil, "0001.0024", ""},
	{"GET", "/v1.51/containers/json", routed, "container.list", nil, "1.51", ""},
	{"GET", "/v1.24/_ping", routed, "system.ping", nil, "1.24", ""},
	{"GET", "/v1/containers/json", badVer, "", nil, "", "client version 1 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
	{"GET", "/v./containers/json", badVer, "", nil, "", "client version . is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
	{"GET", "/v1.12/containers/json", badVer, "", nil, "", "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
	{"GET", "/v1.23.99/containers/json", badVer, "", nil, "", ""},
	{"GET", "/v1..41/containers/json", badVer, "", nil, "", ""},
	{"GET", "/v1.52/containers/json", badVer, "", nil, "", "client version 1.52 is too new. Maximum supported API version is 1.51"},
	{"GET", "/v1.51.1/containers/json", badVer, "", nil, "", "client version 1.51.1 is too new. Maximum supported API version is 1.51"},
	{"GET", "/v2/containers/json", badVer, "", nil, "", ""},
	{"GET", "/v1.99999999999999999999/containers/json", badVer, "", nil, "", ""},
	{"GET", "/v1.x/containers/json", notFound, "", nil, "", ""},
	{"GET", "/v/containers/json", notFound, "", nil, "", ""},
	{"GET", "/V1.41/containers/json", notFound, "", nil, "", ""},
	{"GET", "/v1.41", notFound, "", nil, "", ""},
	{"GET", "/v1.41/", notFound, "", nil, "", ""},
	// dockerd checks the version only once a route matched.
	{"GET", "/v1.12/nothing", notFound, "", nil, "", ""},
	// Unknown routes.
	{"GET", "/nothing", notFound, "", nil, "", ""},
	{"GET", "/", notFound, "", nil, "", ""},
	// DELETE /containers/{name:.*} serves every path under /containers/, so
	// these are "method not allowed" to the proxy (404 from dockerd).
	{"GET", "/containers/json/", noMethod, "", nil, "", ""},
	{"GET", "/v1.41/containers/json.", noMethod, "", nil, "", ""},
	{"POST", "/v1.41/containers/x/copy", noMethod, "", nil, "", ""},
	{"GET", "/containers", notFound, "", nil, "", ""},
	{"GET", "/debug/pprof/a/b", notFound, "", nil, "", ""},
	{"POST", "/v1.41/images/x/copy", noMethod, "", nil, "", ""},
	{"POST", "/v1.41/plugins", noMethod, "", nil, "", ""},
	{"PUT", "/v1.41/swarm", noMethod, "", nil, "", ""},
	// Methods dockerd does not serve on a known path (dockerd: 404).
	{"PATCH", "/v1.41/containers/json", noMethod, "", nil, "", "page not found: dockerd serves no PATCH route for /v1.41/containers/json"},
	{"HEAD", "/v1.41/containers/json", noMethod, "", nil, "", ""},
	{"get", "/_ping", noMethod, "", nil, "", ""},
	{"POST", "/containers/x/attach/ws", noMethod, "", nil, "", ""},
	{"PUT", "/containers/x/json", noMethod, "", nil, "", ""},
	{"POST", "/volumes/x", noMethod, "", nil, "", ""},
	// HEAD is served on /_ping and the archive only.
	{"HEAD", "/_ping", routed, "system.ping", nil, "", ""},
	{"HEAD", "/v1.41/_ping", routed, "system.ping", nil, "1.41", ""},
	{"HEAD", "/containers/x/archive", routed, "container.archive.head", vars{"name": "x"}, "", ""},
	// OPTIONS is served on every path, its version checked.
	{"OPTIONS", "/v1.41/whatever", routed, "system.options", vars{"anyroute": "whatever"}, "1.41", ""},
	{"OPTIONS", "/v1.11/whatever", badVer, "", nil, "", ""},
	{"OPTIONS", "/v1.x/foo", routed, "system.options", vars{"anyroute": "v1.x/foo"}, "", ""},
	{"OPTIONS", "/", routed, "system.options", vars{"anyroute": ""}, "", ""},
	{"OPTIONS", "/containers/json", routed, "system.options", vars{"anyroute": "containers/json"}, "", ""},
	// Queries.
	{"GET", "/containers/json?a=%zz", badQuery, "", nil, "", ""},
	{"GET", "/containers/json?all=1;size=1", badQuery, "", nil, "", ""},
}

func TestPathTricks(t *testing.T) {
	r := New(Config{})
	for _, tc := range pathTricks {
		op, err := r.Classify(newRequest(t, tc.method, tc.target))
		got := outcome(t, err)
		if got != tc.want {
			t.Errorf("%s %s: %s (%v, %v), want %s", tc.method, tc.target, got, op.Name, err, tc.want)
			continue
		}
		if tc.message != "" && (err == nil || err.Error() != tc.message) {
			t.Errorf("%s %s: message %v, want %q", tc.method, tc.target, err, tc.message)
		}
		if got != routed {
			continue
		}
		if op.Name != tc.name || !maps.Equal(op.Vars, tc.vars) || op.APIVersion != tc.version {
			t.Errorf("%s %s = %s %v %q, want %s %v %q", tc.method, tc.target, op.Name, op.Vars, op.APIVersion, tc.name, tc.vars, tc.version)
		}
		if op.Path != strings.SplitN(tc.target, "?", 2)[0] {
			t.Errorf("%s %s: Path %q is not the path as sent", tc.method, tc.target, op.Path)
		}
	}
}

func TestQueryKeepsEveryValue(t *testing.T) {
	r := New(Config{})
	op, err := r.Classify(newRequest(t, "GET", "/v1.41/containers/json?all=1&all=0&filters=%7B%22label%22%3A%5B%22a%22%5D%7D"))
	if err != nil {
		t.Fatal(err)
	}
	if got := op.Query["all"]; len(got) != 2 || got[0] != "1" || got[1] != "0" {
		t.Errorf("all = %q, want [1 0]", got)
	}
	if got := op.Query.Get("filters"); got != `{"label":["a"]}` {
		t.Errorf("filters = %q", got)
	}
	op, err = r.Classify(newRequest(t, "GET", "/v1.41/containers/json"))
	if err != nil || op.Query != nil {
		t.Errorf("no query: Query %v, err %v", op.Query, err)
	}
}

func TestFlags(t *testing.T) {
	want := map[string][3]bool{ // JudgeBody, Hijack, Stream
		"container.create":      {true, false, false},
		"container.start":       {true, false, false},
		"container.update":      {true, false, false},
		"container.commit":      {true, false, false},
		"exec.create":           {true, false, false},
		"exec.start":            {true, true, true},
		"network.create":        {true, false, false},
		"network.connect":       {true, false, false},
		"network.disconnect":    {true, false, false},
		"volume.create":         {true, false, false},
		"volume.update":         {true, false, false},
		"service.create":        {true, false, false},
		"service.update":        {true, false, false},
		"secret.create":         {true, false, false},
		"config.update":         {true, false, false},
		"swarm.init":            {true, false, false},
		"plugin.set":            {true, false, false},
		"container.attach":      {false, true, true},
		"container.attach.ws":   {false, true, true},
		"session":               {false, true, true},
		"grpc":                  {false, true, true},
		"image.build":           {false, false, true},
		"image.create":          {false, false, true},
		"image.load":            {false, false, true},
		"image.push":            {false, false, true},
		"image.get":             {false, false, true},
		"container.logs":        {false, false, true},
		"container.stats":       {false, false, true},
		"container.wait":        {false, false, true},
		"container.export":      {false, false, true},
		"container.archive.get": {false, false, true},
		"system.events":         {false, false, true},
		"container.archive.put": {false, false, false},
		"container.list":        {false, false, false},
		"plugin.create":         {false, false, false},
	}
	seen := map[string]bool{}
	for _, s := range Operations() {
		w, ok := want[s.Name]
		if !ok {
			continue
		}
		seen[s.Name] = true
		if got := [3]bool{s.JudgeBody, s.Hijack, s.Stream}; got != w {
			t.Errorf("%s: JudgeBody/Hijack/Stream = %v, want %v", s.Name, got, w)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("operation %s is missing from the table", name)
		}
	}
}

func TestOperationNames(t *testing.T) {
	names := OperationNames()
	seen := map[string]bool{}
	valid := regexp.MustCompile(`^[a-z]+(\.[a-z]+)*$`)
	for _, n := range names {
		if seen[n] {
			t.Errorf("%s listed twice", n)
		}
		seen[n] = true
		if !valid.MatchString(n) {
			t.Errorf("operation name %q is not <group>.<action>", n)
		}
	}
	for _, n := range []string{"container.create", "system.ping", "image.build", "session", "grpc", "checkpoint.delete"} {
		if !seen[n] {
			t.Errorf("%s missing", n)
		}
	}
	// Operations returns a copy.
	ops := Operations()
	ops[0].Name = "changed"
	if Operations()[0].Name == "changed" {
		t.Error("Operations shares its slice with the table")
	}
}

// swagger151 is every path and method in the Engine API reference for 1.51
// (moby v28.5.2 api/swagger.yaml); each must be classified.
var swagger151 = `GET /containers/json
POST /containers/create
GET /containers/{id}/json
GET /containers/{id}/top
GET /containers/{id}/logs
GET /containers/{id}/changes
GET /containers/{id}/export
GET /containers/{id}/stats
POST /containers/{id}/resize
POST /containers/{id}/start
POST /containers/{id}/stop
POST /containers/{id}/restart
POST /containers/{id}/kill
POST /containers/{id}/update
POST /containers/{id}/rename
POST /containers/{id}/pause
POST /containers/{id}/unpause
POST /containers/{id}/attach
GET /containers/{id}/attach/ws
POST /containers/{id}/wait
DELETE /containers/{id}
HEAD /containers/{id}/archive
GET /containers/{id}/archive
PUT /containers/{id}/archive
POST /containers/prune
GET /images/json
POST /build
POST /build/prune
POST /images/create
GET /images/{name}/json
GET /images/{name}/history
POST /images/{name}/push
POST /images/{name}/tag
DELETE /images/{name}
GET /images/search
POST /images/prune
POST /auth
GET /info
GET /version
GET /_ping
HEAD /_ping
POST /commit
GET /events
GET /system/df
GET /images/{name}/get
GET /images/get
POST /images/load
POST /containers/{id}/exec
POST /exec/{id}/start
POST /exec/{id}/resize
GET /exec/{id}/json
GET /volumes
POST /volumes/create
GET /volumes/{name}
PUT /volumes/{name}
DELETE /volumes/{name}
POST /volumes/prune
GET /networks
GET /networks/{id}
DELETE /networks/{id}
POST /networks/create
POST /networks/{id}/connect
POST /networks/{id}/disconnect
POST /networks/prune
GET /plugins
GET /plugins/privileges
POST /plugins/pull
GET /plugins/{name}/json
DELETE /plugins/{name}
POST /plugins/{name}/enable
POST /plugins/{name}/disable
POST /plugins/{name}/upgrade
POST /plugins/create
POST /plugins/{name}/push
POST /plugins/{name}/set
GET /nodes
GET /nodes/{id}
DELETE /nodes/{id}
POST /nodes/{id}/update
GET /swarm
POST /swarm/init
POST /swarm/join
POST /swarm/leave
POST /swarm/update
GET /swarm/unlockkey
POST /swarm/unlock
GET /services
POST /services/create
GET /services/{id}
DELETE /services/{id}
POST /services/{id}/update
GET /services/{id}/logs
GET /tasks
GET /tasks/{id}
GET /tasks/{id}/logs
GET /secrets
POST /secrets/create
GET /secrets/{id}
DELETE /secrets/{id}
POST /secrets/{id}/update
GET /configs
POST /configs/create
GET /configs/{id}
DELETE /configs/{id}
POST /configs/{id}/update
GET /distribution/{name}/json
POST /session`

func TestSwaggerRoutesClassified(t *testing.T) {
	r := New(Config{})
	for _, line := range strings.Split(swagger151, "\n") {
		method, tpl, _ := strings.Cut(line, " ")
		target := "/v1.51" + strings.NewReplacer("{id}", "abc123", "{name}", "reg.io/img:tag").Replace(tpl)
		op, err := r.Classify(newRequest(t, method, target))
		if err != nil {
			t.Errorf("%s: %v", line, err)
			continue
		}
		s := findSpec(t, op)
		// The documented template and the routed one name the same route.
		norm := func(p string) string { return templateVar.ReplaceAllString(p, "{}") }
		if norm(s.Path) != norm(tpl) {
			t.Errorf("%s: routed to %s %s (%s)", line, s.Method, s.Path, s.Name)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.41", "1.41", 0},
		{"1.41.0", "1.41", 0},
		{"01.41", "1.41", 0},
		{"1.9", "1.10", -1},
		{"1.100", "1.51", 1},
		{"2", "1.51", 1},
		{"1", "1.24", -1},
		{".", "1.24", -1},
		{"", "0", 0},
		{"1..41", "1.0.41", 0},
		{"1.41.", "1.41", 0},
		{"1.99999999999999999999", "1.51", 1},
		{"1.a", "1.0", 0},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{MinAPIVersion: "1.12", MaxAPIVersion: "1.41"}, true},
		{Config{MinAPIVersion: "1.41", MaxAPIVersion: "1.41"}, true},
		{Config{MinAPIVersion: "1.52"}, false},
		{Config{MaxAPIVersion: "1.x"}, false},
		{Config{MinAPIVersion: "1..2"}, false},
		{Config{MaxAPIVersion: "v1.41"}, false},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New accepted a minimum above the maximum")
		}
	}()
	New(Config{MinAPIVersion: "1.45", MaxAPIVersion: "1.44"})
}

func TestConfiguredBounds(t *testing.T) {
	r := New(Config{MinAPIVersion: "1.12", MaxAPIVersion: "1.41"})
	for target, want := range map[string]string{
		"/v1.12/containers/json": routed,
		"/v1.11/containers/json": badVer,
		"/v1.41/containers/json": routed,
		"/v1.42/containers/json": badVer,
		"/containers/json":       routed,
	} {
		_, err := r.Classify(newRequest(t, "GET", target))
		if got := outcome(t, err); got != want {
			t.Errorf("%s: %s (%v), want %s", target, got, err, want)
		}
	}
}

func TestClassifyConcurrently(t *testing.T) {
	r := New(Config{})
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			var err error
			for i := 0; i < 200 && err == nil; i++ {
				tc := everyRoute[i%len(everyRoute)]
				var req *http.Request
				if req, err = readRequest(tc.method, "/v1.41"+tc.path+"?a=1"); err != nil {
					break
				}
				var op proxy.Operation
				op, err = r.Classify(req)
				if err == nil && op.Name != tc.name {
					err = fmt.Errorf("%s %s classified as %s", tc.method, tc.path, op.Name)
				}
			}
			done <- err
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

var benchTargets = []struct{ method, target string }{
	{"GET", "/v1.41/containers/json?all=1"},
	{"POST", "/v1.41/containers/create?name=sp-bench"},
	{"POST", "/v1.41/containers/0123456789abcdef/start"},
	{"GET", "/v1.41/containers/0123456789abcdef/json"},
	{"POST", "/v1.41/exec/0123456789abcdef/start"},
	{"HEAD", "/_ping"},
	{"GET", "/v1.41/images/docker.io/library/busybox:latest/json"},
	{"POST", "/v1.41/networks/net1/connect"},
}

// BenchmarkClassify measures the requests the bench's latency groups send
// (ping, list, inspect, archive), one by one, and a mix of common routes.
func BenchmarkClassify(b *testing.B) {
	r := New(Config{})
	run := func(b *testing.B, reqs []*http.Request) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := r.Classify(reqs[i%len(reqs)]); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, bt := range []struct{ name, method, target string }{
		{"ping", "GET", "/_ping"},
		{"list", "GET", "/v1.41/containers/json"},
		{"inspect", "GET", "/v1.41/containers/0123456789abcdef0123456789abcdef/json"},
		{"archive", "GET", "/v1.41/containers/0123456789abcdef0123456789abcdef/archive?path=%2Fbig"},
	} {
		b.Run(bt.name, func(b *testing.B) { run(b, []*http.Request{newRequest(b, bt.method, bt.target)}) })
	}
	b.Run("mixed", func(b *testing.B) {
		reqs := make([]*http.Request, len(benchTargets))
		for i, bt := range benchTargets {
			reqs[i] = newRequest(b, bt.method, bt.target)
		}
		run(b, reqs)
	})
}

func BenchmarkClassifyRefused(b *testing.B) {
	r := New(Config{})
	reqs := []*http.Request{
		newRequest(b, "GET", "/v1.41/nothing/at/all"),
		newRequest(b, "PATCH", "/v1.41/containers/abc/json"),
		newRequest(b, "GET", "/v1.41/containers//json"),
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Classify(reqs[i%len(reqs)]); err == nil {
			b.Fatal("classified a request dockerd does not route")
		}
	}
}
