package route

import (
	"bufio"
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
