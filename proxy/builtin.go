package proxy

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// AllowAll allows every classified request. It exists for tests and for
// `sockproxy serve --allow-all`; it gives callers the daemon's full power.
var AllowAll Decider = DeciderFunc(func(context.Context, *Request) Decision {
	return Decision{Allow: true, Reasons: []string{"allow-all: no policy is enforced"}, Revision: "builtin:allow-all"}
})

// ReadOnlyDecider is the built-in default policy: it allows requests that
// only read the daemon's state (GET and HEAD, e.g. ping, version, info,
// list and inspect, logs, events) and refuses everything else.
//
// Even among reads it refuses what hands out file contents or a live
// connection: hijacking operations (attach over websocket), container
// archives and exports, and image saves — a container's files can include
// host files bind-mounted into it.
var ReadOnlyDecider Decider = DeciderFunc(readOnly)

// readOnlyDeniedNames are reads that copy files out; readOnlyDenied are
// their last path segments, so that a renamed operation stays refused.
var (
	readOnlyDeniedNames = map[string]bool{"container.archive.get": true, "container.export": true, "image.get": true, "image.get.all": true}
	readOnlyDenied      = map[string]bool{"archive": true, "export": true, "get": true}
)

func readOnly(_ context.Context, req *Request) Decision {
	op := req.Operation
	deny := func(reason string) Decision {
		return Decision{Status: http.StatusForbidden, Reasons: []string{reason}, Revision: "builtin:read-only"}
	}
	if op.Method != http.MethodGet && op.Method != http.MethodHead {
		return deny("the built-in read-only policy refuses " + op.Name + " (" + op.Method + " changes the daemon's state); start sockproxy with a policy that allows it")
	}
	if op.Hijack {
		return deny("the built-in read-only policy refuses " + op.Name + " (it opens a live connection to a container)")
	}
	clean, err := url.PathUnescape(op.Path)
	if err != nil {
		return deny("the built-in read-only policy cannot read the path " + op.Path)
	}
	if readOnlyDenied[path.Base(strings.TrimSuffix(clean, "/"))] || readOnlyDeniedNames[op.Name] {
		return deny("the built-in read-only policy refuses " + op.Name + " (it copies files out of the daemon)")
	}
	if strings.HasPrefix(op.Name, "debug.") {
		return deny("the built-in read-only policy refuses " + op.Name + " (debug endpoints expose the daemon's internals)")
	}
	return Decision{Allow: true, Revision: "builtin:read-only"}
}
