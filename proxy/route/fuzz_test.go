package route

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sockproxy/sockproxy/proxy"
)

// FuzzClassify checks, for any method and request target the HTTP server
// accepts: Classify never panics; a refusal is a *proxy.RouteError with a
// 400, 404 or 405; a classified request's path is clean, spells its
// operation's template once its variables are put back, each variable fits
// its pattern, and its version is within bounds; dockerd's router (as
// rebuilt by newDockerdMux) answers the same; and the classifier that
// matches with mux's routes (newMuxClassifier) gives the same Operation or
// refusal.
func FuzzClassify(f *testing.F) {
	for _, tc := range pathTricks {
		f.Add(tc.method, tc.target)
	}
	for _, tc := range everyRoute {
		f.Add(tc.method, "/v1.41"+tc.path)
	}
	f.Add("GET", "/v1.41/containers/a%2F..%2F..%2Fjson")
	f.Add("POST", "/v1.41/containers/%2Fetc/start?x=1")
	f.Add("DELETE", "/v9999999999999999999999.1/containers/x")
	f.Add("GET", "/v1.41/containers/%0A/checkpoints/x")
	f.Add("DELETE", "/containers/a/checkpoints/b%0A")
	f.Add("OPTIONS", "/v1.41/a%0A")
	f.Add("GET", "/v1.41/networks/%FF")
	r, d, ref := New(Config{}), newDockerdMux(Config{}), newMuxClassifier(Config{})
	f.Fuzz(func(t *testing.T, method, target string) {
		req, err := readRequest(method, target)
		if err != nil {
			return
		}
		op, err := r.Classify(req)
		if err != nil {
			var re *proxy.RouteError
			if !errors.As(err, &re) || (re.Status != 400 && re.Status != 404 && re.Status != 405) || re.Message == "" {
				t.Fatalf("%s %q: refusal %#v", method, target, err)
			}
		} else {
			checkClassified(t, req.URL.Path, op)
		}
		agree(t, r, d, method, target)
		sameAsMux(t, r, ref, method, target)
		if p := req.URL.Path; isClean(p) != (cleanPath(p) == p) {
			t.Fatalf("isClean(%q) = %v, cleanPath gives %q", p, isClean(p), cleanPath(p))
		}
	})
}

func checkClassified(t *testing.T, p string, op proxy.Operation) {
	t.Helper()
	if cleanPath(p) != p {
		t.Fatalf("classified %q, which is not clean", p)
	}
	rest := p
	if op.APIVersion != "" {
		prefix := "/v" + op.APIVersion
		if !strings.HasPrefix(p, prefix+"/") {
			t.Fatalf("%q classified with version %q", p, op.APIVersion)
		}
		if CompareVersions(op.APIVersion, DefaultMinAPIVersion) < 0 || CompareVersions(op.APIVersion, DefaultMaxAPIVersion) > 0 {
			t.Fatalf("%q classified with out-of-bounds version %q", p, op.APIVersion)
		}
		rest = p[len(prefix):]
	}
	if u, err := url.PathUnescape(op.Path); err != nil || u != p {
		t.Fatalf("Path %q does not decode to %q (%v)", op.Path, p, err)
	}
	for _, s := range Operations() {
		if s.Name != op.Name || s.Method != op.Method || expand(s.Path, op.Vars) != rest {
			continue
		}
		for _, m := range templateVar.FindAllStringSubmatch(s.Path, -1) {
			pattern := m[2]
			if pattern == "" {
				pattern = "[^/]+" // mux's default
			}
			v, ok := op.Vars[m[1]]
			if !ok || !regexp.MustCompile(`^(?:`+pattern+`)$`).MatchString(v) {
				t.Fatalf("%q: variable %s=%q does not fit %s", p, m[1], v, pattern)
			}
		}
		if len(op.Vars) != len(templateVar.FindAllString(s.Path, -1)) {
			t.Fatalf("%q: vars %v do not match template %s", p, op.Vars, s.Path)
		}
		if op.JudgeBody != s.JudgeBody || op.Hijack != s.Hijack || op.Stream != s.Stream {
			t.Fatalf("%q: flags differ from %+v", p, s)
		}
		return
	}
	t.Fatalf("%s %q classified as %s %v, but no %s template spells it", op.Method, p, op.Name, op.Vars, op.Name)
}
