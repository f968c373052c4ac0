package proxy

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Caller is the process on the other end of a client connection, read from
// the kernel (SO_PEERCRED) when the connection is accepted.
type Caller struct {
	// Known is false when the kernel could not tell (a TCP listener, or the
	// getsockopt call failed); policies should treat such callers as anonymous.
	Known  bool     `json:"known"`
	UID    int      `json:"uid"`
	GID    int      `json:"gid"`
	PID    int      `json:"pid"`
	User   string   `json:"user,omitempty"`   // login name of UID, where the host can resolve it
	Group  string   `json:"group,omitempty"`  // name of GID, where the host can resolve it
	Groups []string `json:"groups,omitempty"` // names of User's groups (primary and supplementary)
}

// Operation is a request classified the way dockerd routes it.
type Operation struct {
	// Name is the Engine API operation, e.g. "container.create", "exec.start".
	Name   string `json:"name"`
	Method string `json:"method"`
	// Path is the request path as the client sent it (escaped form).
	Path string `json:"path"`
	// APIVersion is the version named in the path ("1.41"), or "" when the
	// client used an unversioned path (dockerd then applies its newest).
	APIVersion string `json:"api_version"`
	// Vars holds the path variables dockerd's router extracts, percent-decoded
	// ("name", "id", ...).
	Vars map[string]string `json:"vars,omitempty"`
	// Query is the parsed URL query (for repeated keys dockerd uses the first).
	Query url.Values `json:"query,omitempty"`
	// JudgeBody is true for operations whose body the policy must see; their
	// body is read whole (up to the cap) before the decision.
	JudgeBody bool `json:"-"`
	// Hijack is true for operations that may upgrade the connection
	// (attach, exec start, session, grpc).
	Hijack bool `json:"-"`
	// Stream is true for operations whose response streams for as long as the
	// client wants (logs, events, stats, wait, pull progress, ...).
	Stream bool `json:"-"`
}

// Request is everything a Decider gets to judge one HTTP request.
type Request struct {
	ID        string
	Operation Operation
	Caller    Caller
	Header    http.Header
	// Body is the complete request body when Operation.JudgeBody is set
	// (nil when the request had none); it is nil for streamed bodies.
	Body []byte
}

// Decision is a Decider's verdict on one request.
type Decision struct {
	Allow bool
	// Reasons explain a refusal (and may annotate an allow).
	Reasons []string
	// Warnings are messages of rules that warn without refusing: they are
	// audited and never refuse the request.
	Warnings []string
	// Status is the HTTP status of a refusal; 0 means 403.
	Status int
	// Message, when set, is a refusal's whole message, sent as is instead
	// of "sockproxy refused <operation>: <reasons>": the decider answers in
	// dockerd's own words (a missing object), so clients print what they
	// would print without the proxy.
	Message string
	// Body, when non-nil, replaces the request body that is forwarded: a
	// decider that canonicalizes the body forwards exactly what it judged.
	Body []byte
	// Filter, when non-nil, rewrites dockerd's answer to an allowed request
	// before the client sees it (see ResponseFilter).
	Filter *ResponseFilter
	// Facts are key facts of the decision for the audit record.
	Facts map[string]any
	// Revision identifies the policy that decided.
	Revision string
}

// Decider judges classified requests. It must be safe for concurrent use and
// fail closed: any error is a refusal.
type Decider interface {
	Decide(ctx context.Context, req *Request) Decision
}

// DeciderFunc adapts a function to the Decider interface.
type DeciderFunc func(ctx context.Context, req *Request) Decision

// Decide calls f.
func (f DeciderFunc) Decide(ctx context.Context, req *Request) Decision { return f(ctx, req) }

// Classifier names the Engine API operation of a request the way dockerd's
// router would route it. It returns a *RouteError for requests dockerd would
// not route (or that the proxy refuses to classify): they are never forwarded.
type Classifier interface {
	Classify(r *http.Request) (Operation, error)
}

// RouteError is a classification failure, answered to the client as a
// Docker-style JSON error with Status.
type RouteError struct {
	Status  int
	Message string
}

func (e *RouteError) Error() string { return e.Message }

// AuditEvent is what the proxy reports of one request: its decision and,
// for forwarded requests, the upstream's answer.
type AuditEvent struct {
	Start    time.Time
	Request  *Request // Operation may be zero when classification failed
	Decision Decision
	// Outcome is "allow", "deny" or "error" (the request could not be
	// classified, read or judged).
	Outcome string
	// Mode is the rollout mode the decision was taken in: "enforce" (or "")
	// or "dry-run". In dry-run a policy refusal (Decision.Allow false) is
	// forwarded with Outcome "allow" and audited as "would-deny".
	Mode string
	// Status is the HTTP status the client got: the upstream's for forwarded
	// requests, the proxy's for refusals.
	Status int
	// BodySHA256 is the hex digest of the forwarded body ("" for streamed or
	// absent bodies).
	BodySHA256   string
	DecisionTime time.Duration
	// TotalTime runs until the upstream's response headers (streams go on).
	TotalTime time.Duration
	Error     string
}

// Auditor records decisions. The proxy calls Ready before forwarding an
// allowed request and refuses the request when it returns an error, so that
// nothing is forwarded unaudited; Audit is called once per request.
type Auditor interface {
	Ready() error
	Audit(ev *AuditEvent) error
}
