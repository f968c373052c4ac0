// Package route classifies Engine API requests into named operations exactly
// as dockerd's router (gorilla/mux) routes them, and refuses what dockerd
// would not route.
//
// dockerd registers every route twice, as "/v{version:[0-9.]+}<path>" and as
// "<path>", and matches the percent-decoded request path: "%6A" reaches the
// route that spells "j", "%2F" separates path segments like "/" does (so
// /containers/a%2Fb/json inspects the container "a/b"). Paths whose decoded
// form is not clean get a 301 from dockerd; this package refuses them.
//
// The Router compiles the same templates dockerd registers, in the same
// order, into literals and variables matched with string comparisons that
// give what the regular expressions gorilla/mux compiles from them give
// (template.go): what matches, which route wins and which variables come out
// is what dockerd's router decides. The tests hold it to a router built
// exactly like dockerd's with gorilla/mux, to a classifier that matches with
// mux's own routes, and to the live dockerd. To keep classification fast it
// only tries, in order, the routes that can match: those registered for the
// request's method whose first path segment is the request's.
package route

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/sockproxy/sockproxy/proxy"
)

// Default API version bounds. 1.24 is the oldest version dockerd 25+ serves
// (older ones have semantics such as a start body replacing the HostConfig);
// 1.51 is the newest this table covers (dockerd 28.5).
const (
	DefaultMinAPIVersion = "1.24"
	DefaultMaxAPIVersion = "1.51"
)

// Config bounds the API versions a client may name in a path.
type Config struct {
	// MinAPIVersion is the oldest version accepted; "" means
	// DefaultMinAPIVersion.
	MinAPIVersion string
	// MaxAPIVersion is the newest version accepted; "" means
	// DefaultMaxAPIVersion. Set it to the upstream dockerd's version to
	// refuse what it would refuse as "too new".
	MaxAPIVersion string
}

// withDefaults fills in the empty fields.
func (c Config) withDefaults() Config {
	if c.MinAPIVersion == "" {
		c.MinAPIVersion = DefaultMinAPIVersion
	}
	if c.MaxAPIVersion == "" {
		c.MaxAPIVersion = DefaultMaxAPIVersion
	}
	return c
}

// Validate reports whether the configuration can be used (after defaults):
// both versions are dot-separated numbers and the minimum is not above the
// maximum.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := validVersion(c.MinAPIVersion); err != nil {
		return fmt.Errorf("minimum API version: %w", err)
	}
	if err := validVersion(c.MaxAPIVersion); err != nil {
		return fmt.Errorf("maximum API version: %w", err)
	}
	if CompareVersions(c.MinAPIVersion, c.MaxAPIVersion) > 0 {
		return fmt.Errorf("minimum API version %s is above maximum API version %s", c.MinAPIVersion, c.MaxAPIVersion)
	}
	return nil
}

// Router classifies requests; it implements proxy.Classifier and is safe for
// concurrent use.
type Router struct {
	cfg Config
	// minVersion and maxVersion are cfg's bounds split into part values,
	// compared with a path's version without strconv (versionCmp).
	minVersion, maxVersion []int
	// methods holds the candidate routes of each method dockerd serves (a
	// handful: a scan is cheaper than a map).
	methods []*methodRoutes
	// all is every registered route in dockerd's order, both forms, for the
	// rare question "does any route match this path with another method?".
	all []candidate
}

// methodRoutes holds, per first path segment ("containers", "_ping"), the
// candidate routes of one method in registration order, for versioned and
// for bare paths. The "" key holds the routes whose first segment is a
// variable (they are in every list too).
type methodRoutes struct {
	method          string
	versioned, bare map[string][]candidate
}

// routes returns the routes of method, nil when dockerd serves none.
func (r *Router) routes(method string) *methodRoutes {
	for _, m := range r.methods {
		if m.method == method {
			return m
		}
	}
	return nil
}

// candidate is one registered route (one form of one table entry).
type candidate struct {
	spec *OperationSpec
	// tpl is spec.Path compiled. The versioned form matches it against what
	// follows the version prefix, the bare form against the whole path.
	tpl       *template
	versioned bool
	// anyPath is set for templates whose first segment is a variable.
	anyPath bool
}

// New builds a Router. It panics on a configuration that Validate refuses:
// callers that take versions from users validate them first.
func New(cfg Config) *Router {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		panic("route.New: " + err.Error())
	}
	r := &Router{
		cfg:        cfg,
		minVersion: versionParts(cfg.MinAPIVersion),
		maxVersion: versionParts(cfg.MaxAPIVersion),
	}
	for i := range table {
		s := &table[i]
		if !strings.HasPrefix(s.Path, "/") {
			// The version prefix ends where the template starts: it needs
			// the "/" that ends dockerd's [0-9.]+.
			panic(fmt.Sprintf("route.New: template %q does not start with /", s.Path))
		}
		tpl, err := compileTemplate(s.Path)
		if err != nil {
			panic(fmt.Sprintf("route.New: template %q: %v", s.Path, err))
		}
		_, literal := templateKey(s.Path)
		for _, versioned := range []bool{true, false} {
			c := candidate{spec: s, tpl: &tpl, versioned: versioned, anyPath: !literal}
			r.all = append(r.all, c)
			r.add(c)
		}
	}
	return r
}

// versionPrefix is dockerd's versionMatcher.
const versionPrefix = "/v{version:[0-9.]+}"

// add files c under its method and first segment, in order.
func (r *Router) add(c candidate) {
	key, _ := templateKey(c.spec.Path)
	m := r.routes(c.spec.Method)
	if m == nil {
		m = &methodRoutes{method: c.spec.Method, versioned: map[string][]candidate{}, bare: map[string][]candidate{}}
		r.methods = append(r.methods, m)
	}
	if c.anyPath {
		// A template starting with a variable may match any path, versioned
		// or not, in either form: it joins every list of its method, and
		// lists made later start from the "" list that holds it.
		for _, byKey := range []map[string][]candidate{m.versioned, m.bare} {
			for k := range byKey {
				byKey[k] = append(byKey[k], c)
			}
			if _, ok := byKey[""]; !ok {
				byKey[""] = []candidate{c}
			}
		}
		return
	}
	if !c.versioned {
		// A literal first segment never looks like "v1.41", so a bare
		// template only matches bare paths.
		if isVersionSegment(key) {
			panic(fmt.Sprintf("route.New: template %q starts like a version prefix", c.spec.Path))
		}
	}
	byKey := m.bare
	if c.versioned {
		byKey = m.versioned
	}
	if _, ok := byKey[key]; !ok {
		// Start from the variable-first routes registered so far.
		byKey[key] = append([]candidate(nil), byKey[""]...)
	}
	byKey[key] = append(byKey[key], c)
}

// templateKey returns the first segment of a template and whether it is
// plain text (not a variable).
func templateKey(tpl string) (string, bool) {
	seg := firstSegment(tpl)
	return seg, !strings.Contains(seg, "{")
}

// firstSegment returns what follows the leading "/" up to the next "/".
func firstSegment(p string) string {
	p = strings.TrimPrefix(p, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return p
}

// isVersionSegment reports whether seg is "v" followed by what dockerd's
// version pattern [0-9.]+ accepts.
func isVersionSegment(seg string) bool {
	if len(seg) < 2 || seg[0] != 'v' {
		return false
	}
	for i := 1; i < len(seg); i++ {
		if c := seg[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// splitVersion splits "/v1.41/containers/json" into "1.41" and
// "/containers/json". ok is false when the path has no version prefix that
// dockerd's versioned routes could match.
func splitVersion(p string) (version, rest string, ok bool) {
	if !strings.HasPrefix(p, "/v") {
		return "", p, false
	}
	i := strings.IndexByte(p[1:], '/')
	if i < 0 {
		return "", p, false
	}
	seg := p[1 : 1+i]
	if !isVersionSegment(seg) {
		return "", p, false
	}
	return seg[1:], p[1+i:], true
}

// cleanPath is the path dockerd's mux would redirect p to (mux's cleaning:
// path.Clean, keeping a trailing slash).
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// isClean reports whether cleanPath(p) == p, without building the clean
// path: p starts with "/" and has no empty segment but a last one (the
// trailing slash mux keeps), and no "." or ".." segment.
func isClean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for p != "" {
		p = p[1:] // the "/" before the segment
		n := strings.IndexByte(p, '/')
		if n < 0 {
			n = len(p)
		}
		switch p[:n] {
		case "":
			if n < len(p) {
				return false // "//"
			}
		case ".", "..":
			return false
		}
		p = p[n:]
	}
	return true
}

// Classify names the operation of req as dockerd would route it. Refusals are
// *proxy.RouteError:
//   - 400 for a path that is not clean once percent-decoded ("//", "/./",
//     ".."): dockerd answers those with a 301 to the clean path and serves
//     nothing; the proxy neither redirects nor forwards, and says which path
//     to send instead;
//   - 404 "page not found" for a path no route serves, as dockerd answers;
//   - 405 for a path dockerd serves with other methods only (dockerd answers
//     404 "page not found" there too);
//   - 400 for a query string that does not parse (bad escapes, ";");
//   - 400 for an API version outside [MinAPIVersion, MaxAPIVersion], with
//     dockerd's wording. As in dockerd, the version is only checked once a
//     route matched: /v1.0/nothing is 404.
func (r *Router) Classify(req *http.Request) (proxy.Operation, error) {
	if req.URL == nil {
		return proxy.Operation{}, &proxy.RouteError{Status: http.StatusBadRequest, Message: "request has no URL"}
	}
	p := req.URL.Path
	if !isClean(p) {
		return proxy.Operation{}, &proxy.RouteError{
			Status: http.StatusBadRequest,
			Message: fmt.Sprintf("request path %q is not clean (dockerd would redirect it to %q); send the clean path",
				p, cleanPath(p)),
		}
	}

	version, rest, versioned := splitVersion(p)
	var list []candidate
	if m := r.routes(req.Method); m != nil {
		byKey := m.bare
		if versioned {
			byKey = m.versioned
		}
		var ok bool
		if list, ok = byKey[firstSegment(rest)]; !ok {
			list = byKey[""]
		}
	}
	for i := range list {
		c := &list[i]
		target := p
		if c.versioned {
			if !versioned {
				continue
			}
			target = rest
		}
		vals, ok := c.tpl.match(target)
		if !ok {
			continue
		}
		var vars map[string]string
		if len(c.tpl.vars) > 0 {
			vars = make(map[string]string, len(c.tpl.vars))
			for j, v := range c.tpl.vars {
				vars[v.name] = vals[j]
			}
		}
		return r.operation(req, c.spec, version, versioned, vars)
	}
	return proxy.Operation{}, r.unrouted(req, versioned, rest)
}

// operation builds the classified Operation once a route matched.
func (r *Router) operation(req *http.Request, s *OperationSpec, version string, versioned bool, vars map[string]string) (proxy.Operation, error) {
	if versioned {
		if versionCmp(version, r.minVersion) < 0 {
			return proxy.Operation{}, &proxy.RouteError{
				Status: http.StatusBadRequest,
				Message: fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version",
					version, r.cfg.MinAPIVersion),
			}
		}
		if versionCmp(version, r.maxVersion) > 0 {
			return proxy.Operation{}, &proxy.RouteError{
				Status:  http.StatusBadRequest,
				Message: fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", version, r.cfg.MaxAPIVersion),
			}
		}
	}
	op := proxy.Operation{
		Name:       s.Name,
		Method:     req.Method,
		Path:       req.URL.EscapedPath(),
		APIVersion: version,
		Vars:       vars,
		JudgeBody:  s.JudgeBody,
		Hijack:     s.Hijack,
		Stream:     s.Stream,
	}
	if req.URL.RawQuery != "" {
		q, err := url.ParseQuery(req.URL.RawQuery)
		if err != nil {
			// dockerd's handlers refuse such a query (ParseForm fails) or
			// read it with the bad pairs dropped; the proxy refuses it rather
			// than guess which.
			return proxy.Operation{}, &proxy.RouteError{
				Status:  http.StatusBadRequest,
				Message: fmt.Sprintf("invalid query string: %v; percent-encode it and separate parameters with &", err),
			}
		}
		op.Query = q
	}
	return op, nil
}

// unrouted explains why no route took req: 405 when some route serves its
// path with another method (mux's ErrMethodMismatch), 404 otherwise.
// OPTIONS, served on every path, does not make a path known. versioned and
// rest are splitVersion's.
func (r *Router) unrouted(req *http.Request, versioned bool, rest string) error {
	for i := range r.all {
		c := &r.all[i]
		if c.spec.Method == req.Method || c.anyPath {
			continue
		}
		target := req.URL.Path
		if c.versioned {
			if !versioned {
				continue
			}
			target = rest
		}
		if _, ok := c.tpl.match(target); ok {
			return &proxy.RouteError{
				Status:  http.StatusMethodNotAllowed,
				Message: fmt.Sprintf("page not found: dockerd serves no %s route for %s", req.Method, req.URL.EscapedPath()),
			}
		}
	}
	return &proxy.RouteError{Status: http.StatusNotFound, Message: "page not found"}
}

var _ proxy.Classifier = (*Router)(nil)
