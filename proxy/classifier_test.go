package proxy_test

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/sockproxy/sockproxy/proxy"
)

// testClassifier is a minimal stand-in for the route package: enough
// operations for the data-path tests.
func testClassifier() proxy.Classifier { return minimalClassifier{} }

type minimalClassifier struct{}

var versionPrefix = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)$`)

func (minimalClassifier) Classify(r *http.Request) (proxy.Operation, error) {
	op := proxy.Operation{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query()}
	p := r.URL.Path
	if m := versionPrefix.FindStringSubmatch(p); m != nil {
		op.APIVersion, p = m[1], m[2]
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	last := parts[len(parts)-1]
	switch {
	case p == "/nope":
		return op, &proxy.RouteError{Status: http.StatusNotFound, Message: "page not found"}
	case p == "/_ping":
		op.Name = "system.ping"
	case r.Method == http.MethodPost && p == "/containers/create":
		op.Name, op.JudgeBody = "container.create", true
	case r.Method == http.MethodPost && parts[0] == "exec" && last == "start":
		op.Name, op.Hijack = "exec.start", true
	case r.Method == http.MethodPost && parts[0] == "containers" && last == "exec":
		op.Name, op.JudgeBody = "exec.create", true
	case r.Method == http.MethodPost && parts[0] == "containers" && last == "start":
		op.Name, op.JudgeBody = "container.start", true
	case parts[0] == "containers" && last == "attach":
		op.Name, op.Hijack = "container.attach", true
	default:
		op.Name = "test." + strings.ToLower(r.Method) + "." + parts[0]
	}
	return op, nil
}
