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

// readOnlyDenied are the last path segments of reads that copy files out.
var readOnlyDenied = map[string]bool{"archive": true, "export": true, "get": true}

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
	if readOnlyDenied[path.Base(strings.TrimSuffix(clean, "/"))] || strings.HasSuffix(op.Name, ".archive") ||
		strings.HasSuffix(op.Name, ".export") || op.Name == "image.get" || op.Name == "image.save" {
		return deny("the built-in read-only policy refuses " + op.Name + " (it copies files out of the daemon)")
	}
	return Decision{Allow: true, Revision: "builtin:read-only"}
}
