// Package policy judges classified requests with Rego: the built-in library
// in rego/ (configured by data) plus the user's modules, compiled into
// immutable revisions and evaluated once per request. It fails closed:
// an undefined result, an evaluation error or a timeout refuses.
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
)

// DefaultEvalTimeout bounds one evaluation when Options.EvalTimeout is 0.
const DefaultEvalTimeout = time.Second

// Builder turns a classified request into the policy input and the canonical
// body to forward (nil when there is none). An error means the body cannot
// be read the way dockerd reads it: the request is refused with 400.
type Builder func(ctx context.Context, req *proxy.Request) (*input.Input, []byte, error)

// Options configure an Engine.
type Options struct {
	// Dirs and Data are the policy source (see Source).
	Dirs []string
	Data map[string]any
	// EvalTimeout bounds one evaluation (DefaultEvalTimeout when 0).
	EvalTimeout time.Duration
	// Input configures input.Build, which makes the policy input.
	Input input.Options
	// Build replaces input.Build when set (tests, tools).
	Build Builder
	// Logger receives policy loads and warnings (slog.Default() when nil).
	Logger *slog.Logger
}

// Engine is a proxy.Decider backed by a swappable policy revision.
type Engine struct {
	// timeout is the evaluation bound in nanoseconds; SetEvalTimeout
	// changes it while requests are served.
	timeout atomic.Int64
	build   Builder
	daemon  input.Daemon // owner lookups of event filters
	source  Source
	log     *slog.Logger
	rev     atomic.Pointer[Revision]
}

var _ proxy.Decider = (*Engine)(nil)

// NewEngine compiles the policy of opts and returns an engine ready to
// decide. It fails when a module does not compile (the error names
// file:line) or the library's data is invalid.
func NewEngine(ctx context.Context, opts Options) (*Engine, error) {
	if opts.EvalTimeout < 0 {
		return nil, fmt.Errorf("policy eval timeout %s: must be positive", opts.EvalTimeout)
	}
	e := &Engine{
		build:  opts.Build,
		daemon: opts.Input.Daemon,
		source: Source{Dirs: opts.Dirs, Data: opts.Data},
		log:    opts.Logger,
	}
	e.SetEvalTimeout(opts.EvalTimeout)
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.build == nil {
		e.build = defaultBuilder(opts)
	}
	if _, err := e.Reload(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload compiles the engine's source again (modules and data files are
// re-read) and swaps the new revision in; on error the current revision
// stays in force.
func (e *Engine) Reload(ctx context.Context) (*Revision, error) {
	done := CompileMemory()
	rev, err := Compile(ctx, e.source)
	done()
	if err != nil {
		return nil, err
	}
	old := e.rev.Swap(rev)
	if old == nil || old.Hash != rev.Hash {
		e.log.Info("policy loaded", "revision", rev.ID, "modules", len(rev.Modules), "mount_roots", len(rev.Library.MountRoots))
	}
	return rev, nil
}

// SetEvalTimeout bounds the evaluations that start from now on
// (DefaultEvalTimeout when d <= 0); a configuration reload applies
// policy.eval_timeout with it.
func (e *Engine) SetEvalTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultEvalTimeout
	}
	e.timeout.Store(int64(d))
}

// EvalTimeout is the bound of one evaluation.
func (e *Engine) EvalTimeout() time.Duration { return time.Duration(e.timeout.Load()) }

// Revision returns the revision in force.
func (e *Engine) Revision() *Revision { return e.rev.Load() }

// compileGCPercent is the collector's target while policies compile.
const compileGCPercent = 25

var compileGC struct {
	sync.Mutex
	running int
	prev    int
}

// CompileMemory keeps a policy compile (and its test run) from setting the
// proxy's resident size: call it before, and the function it returns after.
// Compiling the library and running its tests allocate a heap several times
// what a revision keeps; with the default GC target the proxy would stay
// resident at that peak (60 MiB with the library instead of 37), since the
// runtime returns freed pages slowly. Meanwhile the collector runs at a
// lower target, and afterwards the freed heap is handed back (a forced
// collection: milliseconds, and reloads are rare). Concurrent compiles
// share one lowered target.
func CompileMemory() (done func()) {
	compileGC.Lock()
	if compileGC.running == 0 {
		compileGC.prev = debug.SetGCPercent(compileGCPercent)
		if compileGC.prev >= 0 && compileGC.prev < compileGCPercent {
			debug.SetGCPercent(compileGC.prev) // already lower: keep it
		}
	}
	compileGC.running++
	compileGC.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			compileGC.Lock()
			compileGC.running--
			last := compileGC.running == 0
			if last {
				debug.SetGCPercent(compileGC.prev)
			}
			compileGC.Unlock()
			if last {
				debug.FreeOSMemory()
			}
		})
	}
}

// Swap puts rev in force (for callers that compile revisions themselves).
func (e *Engine) Swap(rev *Revision) { e.rev.Store(rev) }

// Result is the outcome of one evaluation.
type Result struct {
	// Allow is true only when the evaluation succeeded and deny is empty.
	Allow bool
	// Deny are the refusal messages, sorted.
	Deny []string
	// Warn are the warning messages, sorted: logged and audited, not refused.
	Warn []string
	// Filter is data.sockproxy.filter when the policy filters the answer
	// (lists and events under ownership), else nil.
	Filter *FilterSpec
	// Failure explains an evaluation that did not produce a verdict
	// (error, timeout, undefined result); Allow is false then.
	Failure string
	// Revision is the ID of the revision that evaluated.
	Revision string
}

// Reasons are the messages that explain a refusal: the failure, or the
// deny messages.
func (r Result) Reasons() []string {
	if r.Failure != "" {
		return []string{r.Failure}
	}
	return r.Deny
}

// Evaluate judges in with the engine's revision in force. body is the
// canonical JSON of in.Body when the caller has it (nil otherwise).
func (e *Engine) Evaluate(ctx context.Context, in *input.Input, body []byte) Result {
	return e.rev.Load().Evaluate(ctx, in, body, e.EvalTimeout())
}

// Evaluate judges in with this revision; timeout bounds the evaluation
// (none when 0).
func (r *Revision) Evaluate(ctx context.Context, in *input.Input, body []byte, timeout time.Duration) Result {
	res := Result{Revision: r.ID}
	memo := r.memo
	if in.Body != nil {
		memo = nil
	}
	var key []byte
	if memo != nil {
		// Looked up by a key of the Go input: a remembered verdict costs no
		// conversion to OPA's values.
		kb := keyBufs.Get().(*[]byte)
		defer func() {
			if cap(key) <= 64<<10 {
				*kb = key[:0]
				keyBufs.Put(kb)
			}
		}()
		var ok bool
		if key, ok = memoKey((*kb)[:0], in); !ok {
			memo = nil
		} else if cached, hit := memo.get(key); hit {
			return cached
		}
	}
	val, err := inputValue(in, body, r.bodyWant)
	if err != nil {
		res.Failure = fmt.Sprintf("policy input could not be built (%v): refused", err)
		return res
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	rs, err := r.query.Eval(ctx, rego.EvalParsedInput(val))
	switch {
	case err != nil && (errors.Is(ctx.Err(), context.DeadlineExceeded) || isCancel(err)):
		res.Failure = fmt.Sprintf("policy evaluation timed out after %s: refused (fail closed)", timeout)
		return res
	case err != nil:
		res.Failure = fmt.Sprintf("policy evaluation failed (%v): refused (fail closed)", err)
		return res
	case len(rs) == 0:
		res.Failure = "policy result is undefined (data.sockproxy.deny or warn is not defined): refused (fail closed)"
		return res
	case len(rs) > 1:
		res.Failure = "policy result is ambiguous (more than one result for data.sockproxy.deny): refused (fail closed)"
		return res
	}
	deny, derr := messages(rs[0].Bindings["deny"])
	warn, werr := messages(rs[0].Bindings["warn"])
	if derr != nil || werr != nil {
		res.Failure = fmt.Sprintf("policy result is malformed (%v): refused (fail closed)", errors.Join(derr, werr))
		return res
	}
	filter, ferr := filterSpec(rs[0].Bindings["filter"])
	if ferr != nil {
		res.Failure = fmt.Sprintf("policy result is malformed (%v): refused (fail closed)", ferr)
		return res
	}
	res.Deny, res.Warn, res.Filter = deny, warn, filter
	res.Allow = len(deny) == 0
	if memo != nil {
		memo.put(key, res)
	}
	return res
}

func isCancel(err error) bool {
	var te *topdown.Error
	return errors.As(err, &te) && te.Code == topdown.CancelErr
}

// messages turns a set of messages (rendered by OPA as a list) into sorted
// strings; a message that is not a string is shown as its JSON.
func messages(v any) ([]string, error) {
	if v == nil {
		return nil, errors.New("not defined")
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("a set of messages was expected, got %T", v)
	}
	out := make([]string, 0, len(list))
	for _, m := range list {
		if s, ok := m.(string); ok {
			out = append(out, s)
			continue
		}
		raw, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		out = append(out, string(raw))
	}
	sort.Strings(out)
	return out, nil
}

// Message renders refusal reasons the way clients show them, on one line:
// "sockproxy: <reason>; <reason>". The proxy puts it in {"message": ...}.
func Message(reasons []string) string {
	if len(reasons) == 0 {
		return "sockproxy: refused"
	}
	return "sockproxy: " + strings.Join(reasons, "; ")
}

// Decide builds the policy input for req, evaluates it and returns the
// verdict; Body is the canonical body to forward.
func (e *Engine) Decide(ctx context.Context, req *proxy.Request) proxy.Decision {
	rev := e.rev.Load()
	if OwnershipOn(rev.Library) {
		ctx = input.WithOwnerLabels(ctx)
	}
	in, body, err := e.build(ctx, req)
	if err != nil {
		return inputRefusal(err, rev.ID)
	}
	res := rev.Evaluate(ctx, in, body, e.EvalTimeout())
	d := proxy.Decision{
		Allow:    res.Allow,
		Body:     body,
		Facts:    facts(in, res),
		Revision: res.Revision,
	}
	switch {
	case res.Failure != "":
		d.Status = http.StatusInternalServerError
		d.Reasons = []string{res.Failure}
		e.log.Error("policy evaluation failed", "request", req.ID, "operation", in.Operation, "revision", rev.ID, "reason", res.Failure)
	case !res.Allow:
		d.Status = http.StatusForbidden
		d.Reasons = res.Deny
	case res.Filter != nil:
		flt, err := e.responseFilter(in.Operation, res.Filter)
		if err != nil {
			d.Allow, d.Status, d.Reasons = false, http.StatusInternalServerError, []string{err.Error()}
			break
		}
		d.Filter = flt
		d.Facts["filter"] = fmt.Sprintf("%s in %v (unowned kept: %v)", res.Filter.Label, res.Filter.Values, res.Filter.IncludeUnowned)
	}
	if len(res.Warn) > 0 {
		e.log.Warn("policy warning", "request", req.ID, "operation", in.Operation, "warnings", res.Warn)
	}
	return d
}

// inputRefusal refuses a request whose input could not be built, with the
// status an input.RequestError names (400 for a body dockerd could read
// differently, 404 for a missing object, 502/503 when a daemon lookup
// failed), else 400; a missing object is answered in dockerd's own words.
func inputRefusal(err error, revision string) proxy.Decision {
	d := proxy.Decision{Status: http.StatusBadRequest, Reasons: []string{err.Error()}, Revision: revision}
	var re *input.RequestError
	if errors.As(err, &re) {
		if re.Status != 0 {
			d.Status = re.Status
		}
		if re.DaemonWords {
			d.Message = re.Message
		}
	}
	return d
}
