package route

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// dockerdMux is a router built the way dockerd's CreateMux builds its own
// (moby api/server/server.go): every table route registered versioned and
// bare in table order, a versioned catch-all and the not-found handler for
// unknown paths and wrong methods, mux's own path cleaning left on, and the
// version middleware's check in every route handler. It answers what dockerd
// would answer; the classifier must agree with it on every request.
type dockerdMux struct {
	m *mux.Router
	// Set by the handler that served the last request.
	name string
	vars map[string]string
}

func newDockerdMux(cfg Config) *dockerdMux {
	cfg = cfg.withDefaults()
	d := &dockerdMux{m: mux.NewRouter()}
	for _, s := range Operations() {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			vars := mux.Vars(r)
			if v := vars["version"]; v != "" {
				if CompareVersions(v, cfg.MinAPIVersion) < 0 {
					http.Error(w, fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, cfg.MinAPIVersion), http.StatusBadRequest)
					return
				}
				if CompareVersions(v, cfg.MaxAPIVersion) > 0 {
					http.Error(w, fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", v, cfg.MaxAPIVersion), http.StatusBadRequest)
					return
				}
			}
			d.name, d.vars = s.Name, vars
			w.WriteHeader(http.StatusOK)
		})
		d.m.Path(versionPrefix + s.Path).Methods(s.Method).Handler(h)
		d.m.Path(s.Path).Methods(s.Method).Handler(h)
	}
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "page not found", http.StatusNotFound)
	})
	d.m.HandleFunc(versionPrefix+"/{path:.*}", notFound)
	d.m.NotFoundHandler = notFound
	d.m.MethodNotAllowedHandler = notFound
	return d
}

// serve answers req as dockerd would: the outcome, and for routed requests
// the operation and its variables (without "version").
func (d *dockerdMux) serve(req *http.Request) (outcome, name string, vars map[string]string, message string) {
	d.name, d.vars = "", nil
	rec := httptest.NewRecorder()
	d.m.ServeHTTP(rec, req)
	body := strings.TrimSpace(rec.Body.String())
	switch {
	case rec.Code == http.StatusMovedPermanently:
		return unclean, "", nil, ""
	case rec.Code == http.StatusNotFound:
		return notFound, "", nil, body
	case rec.Code == http.StatusBadRequest:
		return badVer, "", nil, body
	case rec.Code == http.StatusOK && d.name != "":
		vars = maps.Clone(d.vars)
		delete(vars, "version")
		if len(vars) == 0 {
			vars = nil
		}
		return routed, d.name, vars, ""
	}
	panic(fmt.Sprintf("reference mux answered %d %q", rec.Code, body))
}

// agree checks that the classifier answers req as dockerd's router does. A
// 405 from the classifier stands for dockerd's 404; a refused query has no
// dockerd counterpart in routing and is accepted as long as the path routes.
func agree(tb testing.TB, r *Router, d *dockerdMux, method, target string) {
	tb.Helper()
	req, err := readRequest(method, target)
	if err != nil {
		return // the HTTP server refuses it before any routing
	}
	op, cerr := r.Classify(req)
	got := outcome(tb, cerr)
	want, name, vars, msg := d.serve(req.Clone(req.Context()))
	switch {
	case got == noMethod && want == notFound:
	case got == badQuery && want == routed:
	case got != want:
		tb.Errorf("%s %q: classifier %s (%v), dockerd's router %s", method, target, got, cerr, want)
	case got == routed && (op.Name != name || !maps.Equal(op.Vars, vars)):
		tb.Errorf("%s %q: classifier %s %q, dockerd's router %s %q", method, target, op.Name, op.Vars, name, vars)
	case got == badVer && cerr.Error() != msg:
		tb.Errorf("%s %q: classifier says %q, dockerd %q", method, target, cerr, msg)
	}
}

// TestAgreesWithDockerdRouter runs every test request, in every method,
// through both the classifier and a router built like dockerd's.
func TestAgreesWithDockerdRouter(t *testing.T) {
	r, d := New(Config{}), newDockerdMux(Config{})
	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get"}
	var targets []string
	for _, tc := range everyRoute {
		targets = append(targets, tc.path, "/v1.41"+tc.path, "/v1.12"+tc.path, "/v1.52"+tc.path, tc.path+"/", tc.path+"/x")
	}
	for _, tc := range pathTricks {
		targets = append(targets, tc.target)
	}
	for _, target := range targets {
		for _, m := range methods {
			agree(t, r, d, m, target)
		}
	}
}

// liveTricks are requests sent to the real dockerd. All are harmless: they
// read, or name containers and objects that do not exist.
var liveTricks = []struct{ method, target string }{
	{"GET", "/v1.41/containers/%6Aso%6E"},
	{"GET", "/containers/json"},
	{"GET", "/v1.41/containers//json"},
	{"GET", "/v1.41/containers/./json"},
	{"GET", "/v1.41/containers/x/../json"},
	{"GET", "/v1.41/containers/%2e%2e/json"},
	{"GET", "/v1.41/containers/a%2F%2Fb/json"},
	{"GET", "//v1.41/networks"},
	{"GET", "/v1.41.0/containers/json"},
	{"GET", "/v01.41/containers/json"},
	{"GET", "/v1/containers/json"},
	{"GET", "/v1.x/containers/json"},
	{"GET", "/v/containers/json"},
	{"GET", "/v./containers/json"},
	{"GET", "/v1.12/containers/json"},
	{"GET", "/v1.11/containers/json"},
	{"GET", "/v1.23/containers/json"},
	{"GET", "/v1.24/containers/json"},
	{"GET", "/v1.52/containers/json"},
	{"GET", "/v1.41.1/containers/json"},
	{"GET", "/v1.12/nothing"},
	{"GET", "/nothing"},
	{"GET", "/"},
	{"PATCH", "/v1.41/containers/json"},
	{"PATCH", "/containers/json"},
	{"HEAD", "/v1.41/containers/json"},
	{"HEAD", "/_ping"},
	{"HEAD", "/v1.41/_ping"},
	{"get", "/v1.41/_ping"},
	{"OPTIONS", "/v1.41/whatever"},
	{"OPTIONS", "/v1.11/whatever"},
	{"OPTIONS", "/v1.x/foo"},
	{"GET", "/v1.41/containers/json/"},
	{"GET", "/v1.41/containers/json."},
	{"GET", "/v1.41/containers/a%0Ab/json"},
	{"GET", "/v1.41/networks/"},
	{"GET", "/v1.41/networks"},
	{"GET", "/v1.41/networks/sp-test-route-none/x"},
	{"GET", "/v1.41/containers/sp-test-route-none./json"},
	{"GET", "/v1.41/containers/sp-test-route-none%2Fx/json"},
	{"GET", "/v1.41/containers/sp-test-route-none/x/json"},
	{"GET", "/v1.41/containers/sp-test-route-none/checkpoints"},
	{"POST", "/v1.41/containers/sp-test-route-none%2Fx/start"},
	{"POST", "/v1.41/containers/sp-test-route-none/x/start"},
	{"POST", "/v1.41/containers/sp-test-route-none/stop"},
	{"POST", "/v1.41/containers/sp-test-route-none/attach/ws"},
	{"DELETE", "/v1.41/containers/sp-test-route-none"},
	{"DELETE", "/v1.41/containers/sp-test-route-none/x/checkpoints/cp"},
	{"GET", "/v1.41/exec/sp-test-route-none/json"},
	{"POST", "/v1.41/exec/sp-test-route-none/resize?h=1&w=1"},
	{"GET", "/v1.41/images/sp-test-route-none/a/b/json"},
	{"GET", "/v1.41/images/sp-test-route-none/push/json"},
	{"GET", "/v1.41/images/sp-test-route-none/history"},
	{"GET", "/v1.41/volumes/sp-test-route-none"},
	{"GET", "/v1.41/volumes/"},
	{"POST", "/v1.41/volumes/sp-test-route-none"},
	{"GET", "/v1.41/services/a%0Ab"},
	{"GET", "/v1.41/services/a/b"},
	{"GET", "/v1.41/distribution/sp-test-route-none/json"},
	{"GET", "/v1.41/plugins/sp-test-route-none/json"},
	{"GET", "/v1.41/plugins/privileges"},
	{"GET", "/v1.41/swarm/"},
	{"GET", "/v1.41/_ping/"},
	{"GET", "/v1.41/info"},
	{"GET", "/version"},
	{"GET", "/V1.41/version"},
	{"GET", "/%761.41/version"},
	{"GET", "/v1%2E41/version"},
	{"GET", "/v1.41/%69nfo"},
	{"GET", "/v1.41/containers/json?all=1&all=0"},
}

// TestAgreesWithLiveDockerd asks the real dockerd whether it routes each of
// liveTricks (and how it refuses it) and checks the classifier, configured
// with that dockerd's version bounds, answers the same.
func TestAgreesWithLiveDockerd(t *testing.T) {
	sock := dockertest.Require(t)
	var v struct{ APIVersion, MinAPIVersion string }
	status, body := rawRequest(t, sock, "GET", "/version")
	if status != http.StatusOK {
		t.Fatalf("GET /version: %d %s", status, body)
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.APIVersion == "" || v.MinAPIVersion == "" {
		t.Fatalf("GET /version: %v in %s", err, body)
	}
	cfg := Config{MinAPIVersion: v.MinAPIVersion, MaxAPIVersion: v.APIVersion}
	r, ref := New(cfg), newDockerdMux(cfg)
	t.Logf("dockerd API %s, minimum %s", v.APIVersion, v.MinAPIVersion)
	for _, tc := range liveTricks {
		status, body := rawRequest(t, sock, tc.method, tc.target)
		live := liveOutcome(status, body)
		if tc.method == "HEAD" && status == http.StatusNotFound {
			live = notFound // a HEAD answer has no body to tell why
		}
		_, err := r.Classify(newRequest(t, tc.method, tc.target))
		got := outcome(t, err)
		if got == noMethod {
			got = notFound
		}
		if got != live {
			t.Errorf("%s %s: dockerd %s (%d %.80q), classifier %s (%v)", tc.method, tc.target, live, status, body, got, err)
			continue
		}
		if got == badVer && !strings.Contains(body, err.Error()) {
			t.Errorf("%s %s: dockerd says %q, classifier %q", tc.method, tc.target, body, err)
		}
		// The reference router, on which the other tests lean, agrees too.
		agree(t, r, ref, tc.method, tc.target)
	}
}

// liveOutcome sorts dockerd's answer. Its routing refusals are 301 (not
// clean), 404 "page not found" (JSON, or plain text below API 1.24) and 400
// "client version ..."; any other answer comes from a route's handler.
func liveOutcome(status int, body string) string {
	var e struct{ Message string }
	if json.Unmarshal([]byte(body), &e) != nil {
		e.Message = strings.TrimSpace(body)
	}
	switch {
	case status == http.StatusMovedPermanently:
		return unclean
	case status == http.StatusNotFound && e.Message == "page not found":
		return notFound
	case status == http.StatusBadRequest && strings.HasPrefix(e.Message, "client version "):
		return badVer
	}
	return routed
}

// rawRequest sends target to dockerd byte for byte (no client-side
// cleaning or re-encoding) and returns the status and up to 4 KiB of body.
func rawRequest(tb testing.TB, sock, method, target string) (int, string) {
	tb.Helper()
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		tb.Fatalf("dial %s: %v", sock, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	if _, err := fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", method, target); err != nil {
		tb.Fatalf("%s %s: %v", method, target, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		tb.Fatalf("%s %s: reading response: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body)
}
