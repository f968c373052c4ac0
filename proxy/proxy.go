// Package proxy is sockproxy's data path: it accepts Docker Engine API
// requests, identifies the caller, classifies and judges each request, and
// forwards what is allowed to dockerd or refuses it with a Docker-style error.
//
// Each client connection is served by one goroutine, top to bottom:
// accept (server.go) → caller → read the request head → classify → read the
// judged body → decide → audit → forward over a pooled keep-alive
// connection to dockerd and relay the answer (forward.go), or refuse.
// Hijacked connections are joined byte for byte (hijack.go).
package proxy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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

	// ReadHeaderTimeout bounds reading a request head: from a new
	// connection to its first request, and from the first byte of a request
	// to the end of its head. It never cuts streams. 0 means
	// DefaultReadHeaderTimeout; negative means none.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections that wait this long for
	// their next request. 0 means DefaultIdleTimeout; negative means none.
	IdleTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for dockerd's response headers,
	// counted from the end of the request, for operations that answer
	// promptly; the client then gets a 504. Operations that legitimately
	// wait (streams, hijacks, wait/stop/restart/kill, pulls, pushes, loads,
	// builds, prunes, df, commits: see waitsLong) are never bounded. 0 means
	// DefaultResponseHeaderTimeout; negative means none.
	ResponseHeaderTimeout time.Duration
	// MaxConnections caps concurrent client connections; beyond it a new
	// connection is answered with a 503 that says so, and closed. 0 means
	// DefaultMaxConnections; negative means no cap.
	MaxConnections int
}

// Proxy judges and forwards Engine API requests on the listeners it serves.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	upstream endpoint
	pool     *upstreamPool
	// baseCtx parents every request context; it ends at the end of a
	// shutdown.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	mu             sync.Mutex
	shutting       atomic.Bool
	listeners      map[net.Listener]struct{}
	conns          map[*clientConn]struct{}
	lastCapWarning atomic.Int64
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
	cfg.ReadHeaderTimeout = orDefault(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	cfg.IdleTimeout = orDefault(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.ResponseHeaderTimeout = orDefault(cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	cfg.MaxConnections = orDefault(cfg.MaxConnections, DefaultMaxConnections)
	ep, err := cfg.Upstream.endpoint()
	if err != nil {
		return nil, err
	}
	pool := &upstreamPool{ep: ep}
	if ep.scheme == "https" {
		host, _, err := net.SplitHostPort(ep.addr)
		if err != nil {
			host = ep.addr
		}
		if pool.tlsConfig, err = cfg.Upstream.tlsConfig(host); err != nil {
			return nil, err
		}
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, upstream: ep, pool: pool,
		listeners: map[net.Listener]struct{}{}, conns: map[*clientConn]struct{}{}}
	p.baseCtx, p.cancelBase = context.WithCancel(context.Background())
	return p, nil
}

// orDefault maps 0 to def and any negative value to 0 (none).
func orDefault[T time.Duration | int](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// UpstreamAddress names the daemon the proxy forwards to, e.g.
// "unix:///var/run/docker.sock".
func (p *Proxy) UpstreamAddress() string { return p.upstream.display }

// exchange is the state of one request until it is audited.
type exchange struct {
	ev      AuditEvent
	audited bool
}

// serveRequest is the data path of one request: classify → read the judged
// body → decide → audit → forward or refuse. Every request, keep-alive and
// pipelined ones included, passes here on its own. It reports whether the
// connection may carry another request.
func (p *Proxy) serveRequest(cc *clientConn, r *http.Request) (keepAlive bool) {
	req := &Request{ID: newRequestID(), Caller: cc.caller, Header: r.Header}
	x := &exchange{ev: AuditEvent{Start: time.Now(), Request: req, Mode: p.cfg.Mode}}
	body := trackBody(r)

	op, err := p.cfg.Classifier.Classify(r)
	if err != nil {
		status := http.StatusBadRequest
		var re *RouteError
		if errors.As(err, &re) && re.Status != 0 {
			status = re.Status
		}
		return p.refuse(cc, r, body, x, "error", status, err.Error(), err.Error())
	}
	req.Operation = op

	if op.JudgeBody {
		judged, status, err := p.readJudgedBody(cc, r, body)
		if err != nil {
			return p.refuse(cc, r, body, x, "error", status, fmt.Sprintf("%s: %v; nothing was forwarded", op.Name, err), err.Error())
		}
		req.Body = judged
	}

	decided := time.Now()
	dec, judged := p.decide(cc.ctx, req)
	x.ev.DecisionTime = time.Since(decided)
	x.ev.Decision = dec
	if !judged {
		return p.refuse(cc, r, body, x, "error", http.StatusInternalServerError,
			fmt.Sprintf("sockproxy could not evaluate its policy for %s; nothing was forwarded", op.Name), "decider failed")
	}
	if !dec.Allow && p.cfg.Mode == "dry-run" {
		p.log.Info("dry-run: forwarding a request the policy refuses", "id", req.ID, "operation", op.Name, "reasons", dec.Reasons)
	} else if !dec.Allow {
		status := dec.Status
		if status == 0 {
			status = http.StatusForbidden
		}
		message := dec.Message
		if message == "" {
			reason := "no reason given"
			if len(dec.Reasons) > 0 {
				reason = strings.Join(dec.Reasons, "; ")
			}
			message = fmt.Sprintf("sockproxy refused %s: %s", op.Name, reason)
		}
		return p.refuse(cc, r, body, x, "deny", status, message, "")
	}

	if p.cfg.Auditor != nil {
		if err := p.cfg.Auditor.Ready(); err != nil {
			return p.refuse(cc, r, body, x, "error", http.StatusServiceUnavailable,
				fmt.Sprintf("sockproxy cannot record %s in its audit log (%v), so it was not forwarded; fix the audit log and retry", op.Name, err),
				"audit not ready: "+err.Error())
		}
	}

	x.ev.Outcome = "allow"
	out := outgoing{body: body}
	if op.JudgeBody || dec.Body != nil {
		// Forward exactly the judged bytes with an explicit length,
		// whatever framing the client used.
		out.judged, out.fixed = req.Body, true
		if dec.Body != nil {
			out.judged = dec.Body
		}
		if len(out.judged) > 0 {
			sum := sha256.Sum256(out.judged)
			x.ev.BodySHA256 = hex.EncodeToString(sum[:])
		}
	}
	// Only operations dockerd hijacks may switch protocols: no other
	// request can open a tunnel past the proxy.
	out.upgrade = op.Hijack && wantsUpgrade(r.Header)
	return p.forward(cc, r, x, out)
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

// refuse audits and answers a request the proxy does not forward. The
// connection stays open only when the request body was read to its end.
func (p *Proxy) refuse(cc *clientConn, r *http.Request, body *trackedBody, x *exchange, outcome string, status int, message, auditErr string) bool {
	x.ev.Outcome = outcome
	x.ev.Status = status
	x.ev.Error = auditErr
	p.audit(x)
	keepAlive := !r.Close && body.done() && !p.shutting.Load()
	writeErrorResponse(cc.bw, isHTTP10(r), status, message, !keepAlive)
	if err := cc.bw.Flush(); err != nil {
		return false
	}
	if !keepAlive && !body.done() {
		lingeringClose(cc.conn) // the rest of the body is not ours to interpret
	}
	return keepAlive
}

// audit records x once: at the upstream's response headers, or when the
// request ends without reaching the upstream.
func (p *Proxy) audit(x *exchange) {
	if x.audited {
		return
	}
	x.audited = true
	ev := &x.ev
	ev.TotalTime = time.Since(ev.Start)
	if ev.Outcome == "" {
		ev.Outcome = "error"
	}
	op := ev.Request.Operation
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug("request", "id", ev.Request.ID, "operation", op.Name, "method", op.Method, "path", op.Path,
			"uid", ev.Request.Caller.UID, "user", ev.Request.Caller.User, "pid", ev.Request.Caller.PID, "known", ev.Request.Caller.Known,
			"outcome", ev.Outcome, "reasons", ev.Decision.Reasons, "status", ev.Status, "decision_time", ev.DecisionTime, "total_time", ev.TotalTime,
			"error", ev.Error)
	}
	if p.cfg.Auditor == nil {
		return
	}
	if err := p.cfg.Auditor.Audit(ev); err != nil {
		p.log.Error("audit record failed", "id", ev.Request.ID, "operation", op.Name, "error", err)
	}
}

// readJudgedBody reads r's whole body (any framing: ReadRequest decodes
// chunked encoding, which overrides any Content-Length) up to limit bytes.
// It answers the status to refuse with when it cannot.
func (p *Proxy) readJudgedBody(cc *clientConn, r *http.Request, body *trackedBody) ([]byte, int, error) {
	if body.done() {
		return nil, 0, nil
	}
	limit := p.cfg.BodyLimit
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge,
			fmt.Errorf("request body of %d bytes is over the %d-byte limit for judged bodies", r.ContentLength, limit)
	}
	if err := continueIfExpected(cc, r); err != nil {
		return nil, http.StatusBadRequest, err
	}
	judged, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("cannot read the request body: %v", err)
	}
	if int64(len(judged)) > limit {
		return nil, http.StatusRequestEntityTooLarge,
			fmt.Errorf("request body is over the %d-byte limit for judged bodies", limit)
	}
	if len(judged) == 0 {
		return nil, 0, nil
	}
	return judged, 0, nil
}

// continueIfExpected tells a client that waits for it ("Expect:
// 100-continue") to send its body; the proxy is about to read it.
func continueIfExpected(cc *clientConn, r *http.Request) error {
	if !isContinue(r.Header.Get("Expect")) || isHTTP10(r) {
		return nil
	}
	r.Header.Del("Expect") // answered here, never forwarded
	_, _ = cc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return cc.bw.Flush()
}

func isContinue(expect string) bool {
	return strings.EqualFold(strings.TrimSpace(expect), "100-continue")
}

func isHTTP10(r *http.Request) bool { return r.ProtoMajor == 1 && r.ProtoMinor == 0 }

// trackedBody is a request body that knows whether it was read to its end,
// which decides whether the connection can carry the next request.
type trackedBody struct {
	r   io.Reader
	eof bool
}

func trackBody(r *http.Request) *trackedBody {
	if r.Body == nil || r.Body == http.NoBody {
		return &trackedBody{eof: true}
	}
	return &trackedBody{r: r.Body}
}

func (b *trackedBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	return n, err
}

func (b *trackedBody) done() bool { return b.eof }

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
