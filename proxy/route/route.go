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
// The Router builds gorilla/mux routes from the same templates, in the same
// order, and matches with the expressions mux compiles from them, so what
// matches and which variables come out is what dockerd's router decides (the
// tests compare it with a router built exactly like dockerd's, and with the
// live dockerd). To keep classification fast it only tries, in order, the
// routes that can match: those registered for the request's method whose
// first path segment is the request's and whose literal tail ends the path.
package route

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/gorilla/mux"

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
	// versioned and bare hold, per method and then per first path segment
	// ("containers", "_ping"), the candidate routes in registration order.
	// The "" key holds the routes whose first segment is a variable (they
	// are in every list too).
	versioned map[string]map[string][]candidate
	bare      map[string]map[string][]candidate
	// all is every registered route in dockerd's order, both forms, for the
	// rare question "does any route match this path with another method?".
	all []candidate
}

// candidate is one registered mux route (one form of one table entry).
type candidate struct {
	route *mux.Route
	spec  *OperationSpec
	// tail is the literal end of the template: a path it matches ends with
	// it. Checking it first skips most regular expressions.
	tail string
	// anyPath is set for templates whose first segment is a variable.
	anyPath bool
	// re is the route's path expression as mux compiled it from the
	// template, and names its variables in the order of its groups: matching
	// with it once gives what mux's Route.Match gives after two passes.
	re    *regexp.Regexp
	names []string
}

// New builds a Router. It panics on a configuration that Validate refuses:
// callers that take versions from users validate them first.
func New(cfg Config) *Router {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		panic("route.New: " + err.Error())
	}
	r := &Router{
		cfg:       cfg,
		versioned: map[string]map[string][]candidate{},
		bare:      map[string]map[string][]candidate{},
	}
	m := mux.NewRouter()
	for i := range table {
		s := &table[i]
		for _, versioned := range []bool{true, false} {
			tpl := s.Path
			if versioned {
				tpl = versionPrefix + s.Path
			}
			mr := m.Path(tpl).Methods(s.Method)
			if err := mr.GetError(); err != nil {
				panic(fmt.Sprintf("route.New: template %q: %v", tpl, err))
			}
			expr, err := mr.GetPathRegexp()
			if err != nil {
				panic(fmt.Sprintf("route.New: template %q: %v", tpl, err))
			}
			names, err := mr.GetVarNames()
			if err != nil {
				panic(fmt.Sprintf("route.New: template %q: %v", tpl, err))
			}
			_, literal := templateKey(s.Path)
			c := candidate{
				route: mr, spec: s, tail: literalTail(s.Path), anyPath: !literal,
				re: regexp.MustCompile(expr), names: names,
			}
			r.all = append(r.all, c)
			r.add(c, versioned)
		}
	}
	return r
}

// versionPrefix is dockerd's versionMatcher.
const versionPrefix = "/v{version:[0-9.]+}"

// add files c under its method and first segment, in order.
func (r *Router) add(c candidate, versioned bool) {
	key, _ := templateKey(c.spec.Path)
	if c.anyPath {
		// A template starting with a variable may match any path, versioned
		// or not, in either form: it joins every list of its method, and
		// lists made later start from the "" list that holds it.
		for _, idx := range []map[string]map[string][]candidate{r.versioned, r.bare} {
			byKey := methodLists(idx, c.spec.Method)
			for k := range byKey {
				byKey[k] = append(byKey[k], c)
			}
			if _, ok := byKey[""]; !ok {
				byKey[""] = []candidate{c}
			}
		}
		return
	}
	if !versioned {
		// A literal first segment never looks like "v1.41", so a bare
		// template only matches bare paths.
		if isVersionSegment(key) {
			panic(fmt.Sprintf("route.New: template %q starts like a version prefix", c.spec.Path))
		}
	}
	idx := r.bare
	if versioned {
		idx = r.versioned
	}
	byKey := methodLists(idx, c.spec.Method)
	if _, ok := byKey[key]; !ok {
		// Start from the variable-first routes registered so far.
		byKey[key] = append([]candidate(nil), byKey[""]...)
	}
	byKey[key] = append(byKey[key], c)
}

func methodLists(idx map[string]map[string][]candidate, method string) map[string][]candidate {
	byKey, ok := idx[method]
	if !ok {
		byKey = map[string][]candidate{}
		idx[method] = byKey
	}
	return byKey
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

// literalTail returns the text after a template's last variable (all of it
// when there is none).
func literalTail(tpl string) string {
	if i := strings.LastIndexByte(tpl, '}'); i >= 0 {
		return tpl[i+1:]
	}
	return tpl
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
	if c := cleanPath(p); c != p {
		return proxy.Operation{}, &proxy.RouteError{
			Status: http.StatusBadRequest,
			Message: fmt.Sprintf("request path %q is not clean (dockerd would redirect it to %q); send the clean path",
				p, c),
		}
	}

	version, rest, versioned := splitVersion(p)
	idx := r.bare
	if versioned {
		idx = r.versioned
	}
	byKey := idx[req.Method]
	list, ok := byKey[firstSegment(rest)]
	if !ok {
		list = byKey[""]
	}
	for i := range list {
		c := &list[i]
		if !strings.HasSuffix(p, c.tail) {
			continue
		}
		m := c.re.FindStringSubmatchIndex(p)
		if m == nil {
			continue
		}
		var vars map[string]string
		for j, name := range c.names {
			if name == "version" {
				continue // the Operation's APIVersion
			}
			if vars == nil {
				vars = make(map[string]string, len(c.names))
			}
			vars[name] = p[m[2*j+2]:m[2*j+3]]
		}
		return r.operation(req, c.spec, version, versioned, vars)
	}
	return proxy.Operation{}, r.unrouted(req)
}

// operation builds the classified Operation once a route matched.
func (r *Router) operation(req *http.Request, s *OperationSpec, version string, versioned bool, vars map[string]string) (proxy.Operation, error) {
	if versioned {
		if CompareVersions(version, r.cfg.MinAPIVersion) < 0 {
			return proxy.Operation{}, &proxy.RouteError{
				Status: http.StatusBadRequest,
				Message: fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version",
					version, r.cfg.MinAPIVersion),
			}
		}
		if CompareVersions(version, r.cfg.MaxAPIVersion) > 0 {
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
// path with another method, 404 otherwise. OPTIONS, served on every path,
// does not make a path known.
func (r *Router) unrouted(req *http.Request) error {
	p := req.URL.Path
	var match mux.RouteMatch
	for i := range r.all {
		c := &r.all[i]
		if c.spec.Method == req.Method || c.anyPath || !strings.HasSuffix(p, c.tail) {
			continue
		}
		// The route's path matched when mux reports a method mismatch.
		match = mux.RouteMatch{}
		if !c.route.Match(req, &match) && match.MatchErr == mux.ErrMethodMismatch {
			return &proxy.RouteError{
				Status:  http.StatusMethodNotAllowed,
				Message: fmt.Sprintf("page not found: dockerd serves no %s route for %s", req.Method, req.URL.EscapedPath()),
			}
		}
	}
	return &proxy.RouteError{Status: http.StatusNotFound, Message: "page not found"}
}

var _ proxy.Classifier = (*Router)(nil)
