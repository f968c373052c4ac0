// Package proxy is sockproxy's data path: it accepts Docker Engine API
// requests, identifies the caller, classifies and judges each request, and
// forwards what is allowed to dockerd or refuses it with a Docker-style error.
package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"
)

// DefaultBodyLimit caps the bodies that are read whole to be judged.
const DefaultBodyLimit = 1 << 20

// Config assembles a Proxy.
type Config struct {
	Classifier Classifier // required
	Decider    Decider    // required
	// Auditor records every request; nil records nothing.
	Auditor  Auditor
	Upstream Upstream
	// BodyLimit caps judged bodies in bytes; 0 means DefaultBodyLimit.
	BodyLimit int64
	// Logger receives the proxy's logs; nil means slog.Default().
	Logger *slog.Logger
	// Mode is "enforce" (or "") or "dry-run": in dry-run, requests the
	// Decider refuses are forwarded anyway and audited with Mode "dry-run"
	// (the audit log calls them would-deny). Requests that cannot be
	// classified, read or judged are refused in both modes.
	Mode string
}

// Proxy is an http.Handler that judges and forwards Engine API requests,
// and the server that runs it on listeners.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	upstream endpoint
	// tlsConfig is the upstream's TLS client configuration (nil: plain).
	tlsConfig *tls.Config
	rp        *httputil.ReverseProxy
	srv       *http.Server
	inflight  tracker
	// baseCtx parents every request context; cancelling it ends streams
	// and hijacked connections at the end of a graceful shutdown.
	baseCtx    context.Context
	cancelBase context.CancelFunc
}

// New checks cfg and builds a Proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Classifier == nil {
		return nil, errors.New("proxy: a Classifier is required")
	}
	if cfg.Decider == nil {
		return nil, errors.New("proxy: a Decider is required (the proxy never defaults to allowing)")
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = DefaultBodyLimit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch cfg.Mode {
	case "", "enforce", "dry-run":
	default:
		return nil, fmt.Errorf("proxy: mode %q: use enforce or dry-run", cfg.Mode)
	}
	ep, err := cfg.Upstream.endpoint()
	if err != nil {
		return nil, err
	}
	transport, err := cfg.Upstream.transport(ep)
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, upstream: ep, tlsConfig: transport.TLSClientConfig}
	p.baseCtx, p.cancelBase = context.WithCancel(context.Background())
	errLog := slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = ep.scheme
			pr.Out.URL.Host = ep.host
		},
		Transport: transport,
		// Flush after every read from dockerd: a read returns what has
		// arrived, so bytes are coalesced while more is pending and flushed
		// as soon as nothing is. Headers are flushed at once too, which
		// `docker run` needs (it waits for the headers of .../wait).
		FlushInterval:  -1,
		BufferPool:     bufferPool{},
		ModifyResponse: p.upstreamResponded,
		ErrorHandler:   p.upstreamFailed,
		ErrorLog:       errLog,
	}
	p.srv = &http.Server{
		Handler: p,
		// No read, write or idle timeouts: event and log streams stay open
		// for as long as the client wants, however quiet they are.
		BaseContext: func(net.Listener) context.Context { return p.baseCtx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return WithCaller(ctx, PeerCaller(c))
		},
		ErrorLog: errLog,
	}
	return p, nil
}

// UpstreamAddress names the daemon the proxy forwards to, e.g.
// "unix:///var/run/docker.sock".
func (p *Proxy) UpstreamAddress() string { return p.upstream.display }

// Serve accepts connections on ln until Shutdown; it may run on several
// listeners at once. Connections on Unix sockets carry their peer's
// credentials; others are anonymous.
func (p *Proxy) Serve(ln net.Listener) error {
	err := p.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting (closing the listeners removes their socket
// files) and waits for in-flight requests, streams and hijacked connections
// to end. When ctx ends first it cuts whatever is still open and returns
// ctx's error.
func (p *Proxy) Shutdown(ctx context.Context) error {
	err := p.srv.Shutdown(ctx)
	if err == nil {
		// Hijacked connections are not the server's to wait for; wait here.
		select {
		case <-p.inflight.idle():
			p.cancelBase()
			return nil
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	p.cancelBase()
	_ = p.srv.Close()
	// Cancelled requests end promptly; bound the wait anyway.
	select {
	case <-p.inflight.idle():
	case <-time.After(5 * time.Second):
		p.log.Warn("requests still running after shutdown", "count", p.inflight.count())
	}
	return err
}

// exchange is the state of one request between the handler and the
// reverse proxy's callbacks.
type exchange struct {
	ev        AuditEvent
	auditOnce sync.Once
}

type exchangeKey struct{}

// ServeHTTP is the data path: identify → classify → read the judged body →
// decide → audit → forward or refuse. Every request, keep-alive and
// pipelined ones included, passes here on its own.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.inflight.add()
	defer p.inflight.done()

	req := &Request{ID: newRequestID(), Caller: CallerFromContext(r.Context()), Header: r.Header.Clone()}
	x := &exchange{ev: AuditEvent{Start: time.Now(), Request: req, Mode: p.cfg.Mode}}
	defer p.audit(x) // for paths that return before the upstream answers

	op, err := p.cfg.Classifier.Classify(r)
	if err != nil {
		status, msg := http.StatusBadRequest, err.Error()
		var re *RouteError
		if errors.As(err, &re) && re.Status != 0 {
			status = re.Status
		}
		p.refuse(w, x, "error", status, msg, err.Error())
		return
	}
	req.Operation = op

	if op.JudgeBody {
		body, status, err := readJudgedBody(r, p.cfg.BodyLimit)
		if err != nil {
			w.Header().Set("Connection", "close") // the rest of the body is not ours to interpret
			p.refuse(w, x, "error", status, fmt.Sprintf("%s: %v; nothing was forwarded", op.Name, err), err.Error())
			return
		}
		req.Body = body
	}

	decided := time.Now()
	dec, judged := p.decide(r.Context(), req)
	x.ev.DecisionTime = time.Since(decided)
	x.ev.Decision = dec
	if !judged {
		p.refuse(w, x, "error", http.StatusInternalServerError,
			fmt.Sprintf("sockproxy could not evaluate its policy for %s; nothing was forwarded", op.Name), "decider failed")
		return
	}
	if !dec.Allow && p.cfg.Mode == "dry-run" {
		p.log.Info("dry-run: forwarding a request the policy refuses", "id", req.ID, "operation", op.Name, "reasons", dec.Reasons)
	} else if !dec.Allow {
		status := dec.Status
		if status == 0 {
			status = http.StatusForbidden
		}
		reason := "no reason given"
		if len(dec.Reasons) > 0 {
			reason = strings.Join(dec.Reasons, "; ")
		}
		p.refuse(w, x, "deny", status, fmt.Sprintf("sockproxy refused %s: %s", op.Name, reason), "")
		return
	}

	if p.cfg.Auditor != nil {
		if err := p.cfg.Auditor.Ready(); err != nil {
			p.refuse(w, x, "error", http.StatusServiceUnavailable,
				fmt.Sprintf("sockproxy cannot record %s in its audit log (%v), so it was not forwarded; fix the audit log and retry", op.Name, err),
				"audit not ready: "+err.Error())
			return
		}
	}

	x.ev.Outcome = "allow"
	out := r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x))
	forwarded, replace := req.Body, op.JudgeBody
	if dec.Body != nil {
		forwarded, replace = dec.Body, true
	}
	if replace {
		// Forward exactly the judged bytes with an explicit length,
		// whatever framing the client used.
		out.Body = io.NopCloser(bytes.NewReader(forwarded))
		out.ContentLength = int64(len(forwarded))
		if len(forwarded) == 0 {
			out.Body = http.NoBody
		}
		out.TransferEncoding = nil
		out.Header = r.Header.Clone()
		out.Header.Del("Transfer-Encoding")
		out.Header.Del("Content-Length")
		out.Header.Del("Expect") // the proxy already holds the body
		if len(forwarded) > 0 {
			sum := sha256.Sum256(forwarded)
			x.ev.BodySHA256 = hex.EncodeToString(sum[:])
		}
	}
	if !op.Hijack && wantsUpgrade(out.Header) {
		// Only operations dockerd hijacks may switch protocols: no other
		// request can open a tunnel past the proxy.
		out.Header = out.Header.Clone()
		out.Header.Del("Upgrade")
		out.Header.Del("Connection")
	}
	if op.Hijack && !wantsUpgrade(r.Header) {
		p.relayRawHijack(w, out, x)
		return
	}
	p.rp.ServeHTTP(w, out)
}

// wantsUpgrade reports whether a request asks to switch protocols
// (Connection: Upgrade plus an Upgrade header), as the docker CLI does.
func wantsUpgrade(h http.Header) bool {
	if h.Get("Upgrade") == "" {
		return false
	}
	for _, v := range h.Values("Connection") {
		for token := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return true
			}
		}
	}
	return false
}

// decide asks the Decider; judged is false when it panicked, and the
// request is then refused in every mode: fail closed.
func (p *Proxy) decide(ctx context.Context, req *Request) (dec Decision, judged bool) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("decider panicked; request refused", "id", req.ID, "operation", req.Operation.Name, "panic", v)
			dec, judged = Decision{Status: http.StatusInternalServerError, Reasons: []string{"the policy could not be evaluated"}}, false
		}
	}()
	return p.cfg.Decider.Decide(ctx, req), true
}

func (p *Proxy) refuse(w http.ResponseWriter, x *exchange, outcome string, status int, message, auditErr string) {
	x.ev.Outcome = outcome
	x.ev.Status = status
	x.ev.Error = auditErr
	WriteError(w, status, message)
}

// upstreamResponded runs when dockerd's response headers arrive.
func (p *Proxy) upstreamResponded(res *http.Response) error {
	if x, ok := res.Request.Context().Value(exchangeKey{}).(*exchange); ok {
		x.ev.Status = res.StatusCode
		p.audit(x)
	}
	return nil
}

// upstreamFailed answers when dockerd cannot be reached or fails before
// its response headers.
func (p *Proxy) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	x, _ := r.Context().Value(exchangeKey{}).(*exchange)
	if p.baseCtx.Err() != nil {
		if x != nil {
			x.ev.Status, x.ev.Error = http.StatusServiceUnavailable, "shutting down: "+err.Error()
		}
		WriteError(w, http.StatusServiceUnavailable, "sockproxy is shutting down; retry when it is back")
		return
	}
	if r.Context().Err() != nil {
		// The client went away: nobody to answer.
		if x != nil {
			x.ev.Error = "request cancelled by the client: " + err.Error()
		}
		return
	}
	if x != nil && x.ev.Status != 0 {
		// Headers were already relayed (a failed protocol switch); only record it.
		x.ev.Error = err.Error()
		return
	}
	msg := fmt.Sprintf("sockproxy cannot reach the Docker daemon at %s (%v); check that dockerd is running and that --upstream names its socket", p.upstream.display, err)
	p.log.Warn("upstream unreachable", "upstream", p.upstream.display, "error", err)
	if x != nil {
		x.ev.Status = http.StatusBadGateway
		x.ev.Error = err.Error()
	}
	WriteError(w, http.StatusBadGateway, msg)
}

// audit records x once, at the upstream's response headers or when the
// request ends without reaching the upstream.
func (p *Proxy) audit(x *exchange) {
	x.auditOnce.Do(func() {
		ev := &x.ev
		ev.TotalTime = time.Since(ev.Start)
		if ev.Outcome == "" {
			ev.Outcome = "error"
		}
		op := ev.Request.Operation
		p.log.Debug("request", "id", ev.Request.ID, "operation", op.Name, "method", op.Method, "path", op.Path,
			"uid", ev.Request.Caller.UID, "user", ev.Request.Caller.User, "pid", ev.Request.Caller.PID, "known", ev.Request.Caller.Known,
			"outcome", ev.Outcome, "reasons", ev.Decision.Reasons, "status", ev.Status, "decision_time", ev.DecisionTime, "total_time", ev.TotalTime,
			"error", ev.Error)
		if p.cfg.Auditor == nil {
			return
		}
		if err := p.cfg.Auditor.Audit(ev); err != nil {
			p.log.Error("audit record failed", "id", ev.Request.ID, "operation", op.Name, "error", err)
		}
	})
}

// readJudgedBody reads r's whole body (any framing: the server has already
// decoded chunked encoding, which overrides any Content-Length) up to limit
// bytes. It answers the status to refuse with when it cannot.
func readJudgedBody(r *http.Request, limit int64) ([]byte, int, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, 0, nil
	}
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge,
			fmt.Errorf("request body of %d bytes is over the %d-byte limit for judged bodies", r.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("cannot read the request body: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, http.StatusRequestEntityTooLarge,
			fmt.Errorf("request body is over the %d-byte limit for judged bodies", limit)
	}
	if len(body) == 0 {
		return nil, 0, nil
	}
	return body, 0, nil
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// bufferPool recycles the reverse proxy's copy buffers.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

// tracker counts running handlers, hijacked connections included (the
// http.Server does not wait for those).
type tracker struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed while n == 0
}

func (t *tracker) add() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 || t.zero == nil {
		t.zero = make(chan struct{})
	}
	t.n++
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		close(t.zero)
	}
}

func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// idle returns a channel that is closed once no handler runs.
func (t *tracker) idle() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	return t.zero
}
