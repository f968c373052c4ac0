package route

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/sockproxy/sockproxy/proxy"
)

// muxClassifier is the classifier as it was before the template matcher, in
// its plainest form: every table route registered with gorilla/mux in
// dockerd's order, versioned then bare, and a request given to the first
// route whose mux Match takes it. The Router must return the same Operation,
// or the same refusal, for every request.
type muxClassifier struct {
	cfg    Config
	routes []muxRoute
}

type muxRoute struct {
	route   *mux.Route
	spec    *OperationSpec
	anyPath bool
	// head and tail are the template's literal text before its first and
	// after its last variable: mux's expression is ^head...tail$, so a path
	// without them cannot match and the expression need not run (the tests
	// would take ten times as long).
	head, tail string
}

func newMuxClassifier(cfg Config) *muxClassifier {
	c := &muxClassifier{cfg: cfg.withDefaults()}
	m := mux.NewRouter()
	for i := range table {
		s := &table[i]
		for _, tpl := range []string{versionPrefix + s.Path, s.Path} {
			head, tail := tpl, tpl
			if i := strings.IndexByte(tpl, '{'); i >= 0 {
				head, tail = tpl[:i], tpl[strings.LastIndexByte(tpl, '}')+1:]
			}
			c.routes = append(c.routes, muxRoute{m.Path(tpl).Methods(s.Method), s, strings.HasPrefix(s.Path, "/{"), head, tail})
		}
	}
	return c
}

func (c *muxClassifier) Classify(req *http.Request) (proxy.Operation, error) {
	p := req.URL.Path
	if cp := cleanPath(p); cp != p {
		return proxy.Operation{}, &proxy.RouteError{Status: http.StatusBadRequest,
			Message: fmt.Sprintf("request path %q is not clean (dockerd would redirect it to %q); send the clean path", p, cp)}
	}
	mismatch := false
	for _, rt := range c.routes {
		if !strings.HasPrefix(p, rt.head) || !strings.HasSuffix(p, rt.tail) {
			continue
		}
		var m mux.RouteMatch
		if !rt.route.Match(req, &m) {
			mismatch = mismatch || (m.MatchErr == mux.ErrMethodMismatch && !rt.anyPath)
			continue
		}
		vars := m.Vars
		version, versioned := vars["version"]
		delete(vars, "version")
		if len(vars) == 0 {
			vars = nil
		}
		if versioned && CompareVersions(version, c.cfg.MinAPIVersion) < 0 {
			return proxy.Operation{}, &proxy.RouteError{Status: http.StatusBadRequest,
				Message: fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", version, c.cfg.MinAPIVersion)}
		}
		if versioned && CompareVersions(version, c.cfg.MaxAPIVersion) > 0 {
			return proxy.Operation{}, &proxy.RouteError{Status: http.StatusBadRequest,
				Message: fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", version, c.cfg.MaxAPIVersion)}
		}
		op := proxy.Operation{Name: rt.spec.Name, Method: req.Method, Path: req.URL.EscapedPath(), APIVersion: version,
			Vars: vars, JudgeBody: rt.spec.JudgeBody, Hijack: rt.spec.Hijack, Stream: rt.spec.Stream}
		if req.URL.RawQuery != "" {
			q, err := url.ParseQuery(req.URL.RawQuery)
			if err != nil {
				return proxy.Operation{}, &proxy.RouteError{Status: http.StatusBadRequest,
					Message: fmt.Sprintf("invalid query string: %v; percent-encode it and separate parameters with &", err)}
			}
			op.Query = q
		}
		return op, nil
	}
	if mismatch {
		return proxy.Operation{}, &proxy.RouteError{Status: http.StatusMethodNotAllowed,
			Message: fmt.Sprintf("page not found: dockerd serves no %s route for %s", req.Method, req.URL.EscapedPath())}
	}
	return proxy.Operation{}, &proxy.RouteError{Status: http.StatusNotFound, Message: "page not found"}
}

// sameAsMux checks that the Router and the mux classifier answer method and
// target alike: the whole Operation, or the refusal's status and message.
func sameAsMux(tb testing.TB, r *Router, ref *muxClassifier, method, target string) {
	tb.Helper()
	req, err := readRequest(method, target)
	if err != nil {
		return
	}
	op, err := r.Classify(req)
	wop, werr := ref.Classify(req.Clone(req.Context()))
	if !reflect.DeepEqual(op, wop) || !reflect.DeepEqual(err, werr) {
		tb.Errorf("%s %q: Router %+v, %v; mux %+v, %v", method, target, op, err, wop, werr)
	}
}

// trickyValues fill route variables: empty, dots, encoded and plain
// slashes, newlines, NUL, unicode and invalid UTF-8, route words, long.
var trickyValues = []string{
	"", "x", ".", "..", "...", "a.", "json", "create", "start", "checkpoints", "v1.41",
	"%2F", "a%2Fb", "a%2F%2Fb", "%2e%2e", "a/b", "x/checkpoints/y", "a/json",
	"%0A", "a%0Ab", "%00", "%C3%A9", "é", "%FF", "%20", "sha256:abc", "reg.io:5000/a/b:tag",
	strings.Repeat("a", 4096), strings.Repeat("%2F", 300),
}

// trickyPrefixes stand before a template: none, accepted and refused
// versions, and prefixes that only look like versions.
var trickyPrefixes = []string{"", "/v1.41", "/v1.24", "/v1.12", "/v1.52", "/v1.41.0", "/v01.41", "/v1..41",
	"/v", "/v.", "/V1.41", "/%761.41", "/v1.x", "/v1%2F41", "/v99999999999999999999"}

var trickySuffixes = []string{"", "/", "/x", "?a=1&a=2", "?a=%zz", "%0A"}

var trickyMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get"}

// instances fills tpl's variables with every tricky value (a second
// variable with a value further down the list).
func instances(tpl string) []string {
	var out []string
	for i := range trickyValues {
		k := 0
		out = append(out, templateVar.ReplaceAllStringFunc(tpl, func(string) string {
			v := trickyValues[(i+7*k)%len(trickyValues)]
			k++
			return v
		}))
		if k == 0 {
			break // no variable
		}
	}
	return out
}

// TestAgreesWithMuxClassifier puts every table template, filled with tricky
// values, behind tricky prefixes and before tricky suffixes, and checks the
// Router answers as mux does, with the route's method and another one.
func TestAgreesWithMuxClassifier(t *testing.T) {
	r, ref := New(Config{}), newMuxClassifier(Config{})
	n := 0
	for i, s := range Operations() {
		for j, target := range instances(s.Path) {
			for k, prefix := range []string{"", "/v1.41", trickyPrefixes[(i+j)%len(trickyPrefixes)]} {
				sameAsMux(t, r, ref, s.Method, prefix+target+trickySuffixes[(i+j+k)%len(trickySuffixes)])
				n++
			}
			sameAsMux(t, r, ref, trickyMethods[(i+j)%len(trickyMethods)], "/v1.41"+target)
			n++
		}
	}
	// Every prefix and suffix with every method on a few routes.
	for _, prefix := range trickyPrefixes {
		for _, suffix := range trickySuffixes {
			for _, m := range trickyMethods {
				for _, p := range []string{"/_ping", "/containers/a/json", "/containers/a/checkpoints/b", "/networks/"} {
					sameAsMux(t, r, ref, m, prefix+p+suffix)
					n++
				}
			}
		}
	}
	t.Logf("%d requests", n)
}

// TestTemplateMatchesMuxRegexp holds each compiled template, in both forms,
// to the expression mux compiles from it, on decoded paths (clean or not)
// made from every template and tricky decoded values.
func TestTemplateMatchesMuxRegexp(t *testing.T) {
	r := New(Config{})
	m := mux.NewRouter()
	values := []string{"", "x", ".", "..", "a/b", "/", "//", "\n", "a\nb", "\x00", "é", "\xff", "\xff/", "json", "create", "checkpoints", "v1.41", "1.41"}
	var paths []string
	for _, s := range table {
		tpl := templateVar.ReplaceAllString(s.Path, "{v}")
		for _, v := range values {
			p := strings.ReplaceAll(tpl, "{v}", v)
			paths = append(paths, p, "/v1.41"+p, "/v"+p, "/v."+p, p+"/", p+"\n", strings.TrimPrefix(p, "/"))
		}
	}
	for _, c := range r.all {
		tpl := c.spec.Path
		if c.versioned {
			tpl = versionPrefix + tpl
		}
		mr := m.Path(tpl)
		expr, err := mr.GetPathRegexp()
		if err != nil {
			t.Fatal(err)
		}
		names, err := mr.GetVarNames()
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(expr)
		// mux's expression is ^head...tail$ with the template's literal
		// head and tail: where they are missing it cannot match, and need
		// not run (it would make the test ten times as long).
		head, tail := tpl[:strings.IndexByte(tpl+"{", '{')], tpl[strings.LastIndexByte(tpl, '}')+1:]
		for _, p := range paths {
			var want []string
			if strings.HasPrefix(p, head) && strings.HasSuffix(p, tail) {
				want = re.FindStringSubmatch(p)
			}
			target := p
			ok := true
			var version string
			if c.versioned {
				version, target, ok = splitVersion(p)
			}
			var vals [maxVars]string
			if ok {
				vals, ok = c.tpl.match(target)
			}
			if ok != (want != nil) {
				t.Errorf("%s on %q: template says %v, mux %v", tpl, p, ok, want != nil)
				continue
			}
			if !ok {
				continue
			}
			for i, name := range names {
				got := version
				if name != "version" {
					got = vals[indexOfVar(c.tpl, name)]
				}
				if got != want[i+1] {
					t.Errorf("%s on %q: %s = %q, mux %q", tpl, p, name, got, want[i+1])
				}
			}
		}
	}
}

func indexOfVar(t *template, name string) int {
	for i, v := range t.vars {
		if v.name == name {
			return i
		}
	}
	return -1
}

// TestCompileTemplateRefuses: shapes the matcher cannot match exactly
// without backtracking are refused, so a table edit cannot slip one in.
func TestCompileTemplateRefuses(t *testing.T) {
	for _, tpl := range []string{
		"/a/{x:[a-z]+}", "/a/{x}{y}", "/a/{x:.*}/{y}", "/a/{x}/{y:.*}", "/a/{x}-{y}", "/a/{x}/{y}/{z}",
		"/a/{x", "/a/x}", "/a/{{x}}", "/a/{:.*}", "/a/{x:}",
	} {
		if _, err := compileTemplate(tpl); err == nil {
			t.Errorf("compileTemplate(%q) accepted it", tpl)
		}
	}
	for _, tpl := range []string{"/a", "/a/{x}", "/a/{x:.*}/b", "/{x:.+}", "/a/{x}/b/{y}", "/a/{x}/b/{y}/c"} {
		if _, err := compileTemplate(tpl); err != nil {
			t.Errorf("compileTemplate(%q): %v", tpl, err)
		}
	}
}

// TestIsClean holds isClean to cleanPath on paths made of tricky segments.
func TestIsClean(t *testing.T) {
	segs := []string{"", ".", "..", "...", "a", ".a", "a."}
	var paths []string
	var build func(p string, depth int)
	build = func(p string, depth int) {
		paths = append(paths, p)
		if depth == 4 {
			return
		}
		for _, s := range segs {
			build(p+"/"+s, depth+1)
		}
	}
	build("", 0)
	for _, p := range paths {
		for _, q := range []string{p, strings.TrimPrefix(p, "/"), "*", "a/"} {
			if got, want := isClean(q), cleanPath(q) == q; got != want {
				t.Errorf("isClean(%q) = %v, cleanPath gives %q", q, got, cleanPath(q))
			}
		}
	}
}

// TestVersionCmp holds versionCmp to CompareVersions on every version of
// up to five characters from "019." and on long and overflowing parts.
func TestVersionCmp(t *testing.T) {
	versions := []string{"99999999999999999999", "9223372036854775807", "9223372036854775808",
		"1.9223372036854775807", "1.9223372036854775806", "1.99999999999999999999.1", "0000000000000000000001.41"}
	var build func(v string)
	build = func(v string) {
		if v != "" {
			versions = append(versions, v)
		}
		if len(v) == 5 {
			return
		}
		for _, c := range "019." {
			build(v + string(c))
		}
	}
	build("")
	bounds := []string{"1.24", "1.41", "1.51", "1", "0", "1.0.1", "2.0", "1.9223372036854775807", strconv.Itoa(math.MaxInt), "99999999999999999999.1"}
	for _, b := range bounds {
		parts := versionParts(b)
		for _, v := range versions {
			if got, want := versionCmp(v, parts), CompareVersions(v, b); got != want {
				t.Errorf("versionCmp(%q, %q) = %d, CompareVersions %d", v, b, got, want)
			}
		}
	}
}
