package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// Connection limits and their defaults; Config says how to change them.
const (
	DefaultReadHeaderTimeout     = 30 * time.Second
	DefaultIdleTimeout           = 5 * time.Minute
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultMaxConnections        = 1024

	// maxHeaderBytes caps a request head, as net/http's server does.
	maxHeaderBytes = 1<<20 + 4096
	// clientBufferSize sizes each client connection's read buffer;
	// clientWriteBufferSize its write buffer, which holds a response head
	// and a body of up to that size for one write.
	clientBufferSize      = 4 << 10
	clientWriteBufferSize = 16 << 10
	// lingerTime is how long a connection closed with an unread request
	// body keeps reading, so that the client gets the answer before a reset.
	lingerTime = 500 * time.Millisecond
)

// clientConn is one accepted connection. Its goroutine reads each request,
// serves it to the end and only then reads the next, so pipelined requests
// are judged one by one.
type clientConn struct {
	conn   net.Conn
	limit  limitedReader // under br: caps request heads
	br     *bufio.Reader
	bw     *bufio.Writer
	caller Caller
	ctx    context.Context // carries the caller; ends with the proxy
	// upstream is the daemon connection of the request in progress, so a
	// forced shutdown can cut a stream blocked on it.
	upstream atomic.Pointer[upstreamConn]
	idle     bool // waiting for a request; guarded by Proxy.mu
	// gone is set when the client hung up while its request was waiting.
	gone atomic.Bool
	// ownReader: br came from a client watch's end and nothing but this
	// goroutine can read it (no request body sender), so it can go back
	// to the pool.
	ownReader bool
}

// Serve accepts connections on ln until Shutdown; it may run on several
// listeners at once. Connections on Unix sockets carry their peer's
// credentials; others are anonymous.
func (p *Proxy) Serve(ln net.Listener) error {
	if !p.addListener(ln) {
		ln.Close()
		return nil
	}
	defer p.removeListener(ln)
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.shutting.Load() {
				return nil
			}
			if isTemporaryAcceptError(err) { // out of file descriptors, an aborted handshake: wait and go on
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				p.log.Warn("accept failed; retrying", "error", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		cc, ok := p.register(c)
		if !ok {
			go p.refuseOverCapacity(c)
			continue
		}
		go p.serveConn(cc)
	}
}

// ServeConn serves one client connection until it closes. Serve calls it
// for every connection it accepts; tests and fuzzers may hand it any
// net.Conn (callers of non-Unix connections are anonymous). It returns at
// once, closing c, when the proxy is shutting down or at its connection cap.
func (p *Proxy) ServeConn(c net.Conn) {
	cc, ok := p.register(c)
	if !ok {
		p.refuseOverCapacity(c)
		return
	}
	p.serveConn(cc)
}

func (p *Proxy) serveConn(cc *clientConn) {
	defer p.unregister(cc)
	cc.caller = PeerCaller(cc.conn)
	cc.ctx = WithCaller(p.baseCtx, cc.caller)
	for first := true; ; first = false {
		if !p.awaitRequest(cc, first) {
			return
		}
		r, err := p.readRequest(cc)
		if err != nil {
			p.rejectMalformed(cc, err)
			return
		}
		if !p.serveRequest(cc, r) || p.shutting.Load() {
			return
		}
	}
}

// awaitRequest waits for the first byte of the next request: up to the
// header timeout on a new connection, the idle timeout on a keep-alive one.
// Shutdown closes connections while they wait here.
func (p *Proxy) awaitRequest(cc *clientConn, first bool) bool {
	normalClientBuffers(cc)
	if cc.br.Buffered() > 0 { // pipelined
		return true
	}
	p.mu.Lock()
	if p.shutting.Load() {
		p.mu.Unlock()
		return false
	}
	cc.idle = true
	p.mu.Unlock()
	wait := p.cfg.IdleTimeout
	if first {
		wait = p.cfg.ReadHeaderTimeout
	}
	if wait > 0 {
		_ = cc.conn.SetReadDeadline(time.Now().Add(wait))
	}
	_, err := cc.br.Peek(1)
	p.mu.Lock()
	cc.idle = false
	p.mu.Unlock()
	return err == nil
}

// readRequest reads one request head within the header timeout and the
// size cap. The body is left to read.
func (p *Proxy) readRequest(cc *clientConn) (*http.Request, error) {
	if p.cfg.ReadHeaderTimeout > 0 {
		_ = cc.conn.SetReadDeadline(time.Now().Add(p.cfg.ReadHeaderTimeout))
	} else if p.cfg.IdleTimeout > 0 {
		_ = cc.conn.SetReadDeadline(time.Time{})
	}
	cc.limit.n = maxHeaderBytes
	cc.ownReader = false // the request's body reads from it
	r, err := http.ReadRequest(cc.br)
	overLimit := cc.limit.n == 0
	cc.limit.n = -1
	if p.cfg.ReadHeaderTimeout > 0 || p.cfg.IdleTimeout > 0 {
		_ = cc.conn.SetReadDeadline(time.Time{})
	}
	if overLimit {
		return nil, errHeadTooLarge
	}
	if err != nil {
		return nil, err
	}
	return r, checkRequest(r)
}

var errHeadTooLarge = errors.New("request head larger than 1 MiB")

// checkRequest refuses what net/http's server refuses beyond ReadRequest,
// so that dockerd never sees a request a Go server would not accept.
func checkRequest(r *http.Request) error {
	if r.ProtoMajor != 1 {
		return fmt.Errorf("unsupported protocol version %s", r.Proto)
	}
	if r.ProtoMinor >= 1 && r.Host == "" && r.Method != http.MethodConnect {
		return errors.New("missing required Host header")
	}
	for k, vv := range r.Header {
		if !validFieldName(k) {
			return fmt.Errorf("invalid header name %q", k)
		}
		for _, v := range vv {
			if !validFieldValue(v) {
				return fmt.Errorf("invalid value of header %s", k)
			}
		}
	}
	if e := r.Header.Get("Expect"); e != "" && !isContinue(e) {
		return errExpectation
	}
	return nil
}

var errExpectation = errors.New("unsupported Expect header")

func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == ':' || c == '"' || c == '(' || c == ')' || c == ',' || c == '/' ||
			c == ';' || c == '<' || c == '=' || c == '>' || c == '?' || c == '@' || c == '[' || c == '\\' ||
			c == ']' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// rejectMalformed answers a request that could not be read as HTTP/1.x
// (net/http's server answers the same cases the same way) and ends the
// connection. A client that just hung up gets nothing.
func (p *Proxy) rejectMalformed(cc *clientConn, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET):
		return
	case errors.As(err, &ne) && ne.Timeout():
		p.log.Debug("client sent no complete request head in time; connection closed", "timeout", p.cfg.ReadHeaderTimeout)
		return
	case errors.Is(err, errHeadTooLarge):
		writeErrorResponse(cc.bw, false, http.StatusRequestHeaderFieldsTooLarge, "sockproxy: the request head is over 1 MiB", true)
	case errors.Is(err, errExpectation):
		writeErrorResponse(cc.bw, false, http.StatusExpectationFailed, "sockproxy: unsupported Expect header (only 100-continue is)", true)
	default:
		writeErrorResponse(cc.bw, false, http.StatusBadRequest, "sockproxy: malformed HTTP request: "+err.Error(), true)
	}
	_ = cc.bw.Flush()
	lingeringClose(cc.conn)
}

// register adds an accepted connection, unless the proxy is shutting down
// or at its connection cap.
func (p *Proxy) register(c net.Conn) (*clientConn, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shutting.Load() || (p.cfg.MaxConnections > 0 && len(p.conns) >= p.cfg.MaxConnections) {
		return nil, false
	}
	startHangupPoller() // before any connection: its descriptor and goroutine are the process's
	cc := &clientConn{conn: c}
	cc.limit = limitedReader{r: c, n: -1}
	cc.br = getReader(&clientReaders, &cc.limit)
	cc.bw = getWriter(&clientWriters, c)
	p.conns[cc] = struct{}{}
	return cc, true
}

func (p *Proxy) unregister(cc *clientConn) {
	cc.conn.Close()
	// The buffers go back to their pools; the read buffer only when no
	// streamed request body may still be read from it by its sender.
	switch cc.bw.Size() {
	case clientWriteBufferSize:
		putWriter(&clientWriters, cc.bw)
	case streamWriteBufferSize:
		putWriter(&streamWriters, cc.bw)
	}
	cc.bw = nil
	if cc.ownReader && cc.br.Buffered() == 0 {
		putReader(&clientReaders, cc.br)
		cc.br = nil
	}
	p.mu.Lock()
	delete(p.conns, cc)
	p.mu.Unlock()
}

// refuseOverCapacity answers a connection beyond MaxConnections (or one
// that arrived during shutdown) with a clear error, then closes it.
func (p *Proxy) refuseOverCapacity(c net.Conn) {
	defer c.Close()
	status, msg := http.StatusServiceUnavailable, "sockproxy is shutting down; retry when it is back"
	if !p.shutting.Load() {
		msg = fmt.Sprintf("sockproxy is serving its maximum of %d connections; retry later, close idle clients, or raise the connection limit", p.cfg.MaxConnections)
		if now := time.Now().Unix(); p.lastCapWarning.Swap(now) != now { // at most one warning a second
			p.log.Warn("connection refused: at the connection cap", "max_connections", p.cfg.MaxConnections)
		}
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReaderSize(c, clientBufferSize)
	_, _ = http.ReadRequest(br) // answer after the request head, so the client reads it
	bw := bufio.NewWriterSize(c, 512)
	writeErrorResponse(bw, false, status, msg, true)
	_ = bw.Flush()
	lingeringClose(c)
}

// lingeringClose half-closes c and reads what the client still sends for a
// moment, so that closing with unread bytes does not reset the connection
// before the client read its answer.
func lingeringClose(c net.Conn) {
	closeWrite(c)
	_ = c.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, c, 256<<10)
	c.Close()
}

func (p *Proxy) addListener(ln net.Listener) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shutting.Load() {
		return false
	}
	p.listeners[ln] = struct{}{}
	return true
}

func (p *Proxy) removeListener(ln net.Listener) {
	p.mu.Lock()
	delete(p.listeners, ln)
	p.mu.Unlock()
}

func (p *Proxy) connCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Shutdown stops accepting (closing the listeners removes their socket
// files), closes idle connections and waits for requests in flight,
// streams and hijacked connections included, to end. When ctx ends first
// it cuts whatever is still open and returns ctx's error.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.shutting.Store(true)
	for ln := range p.listeners {
		ln.Close()
	}
	for cc := range p.conns {
		if cc.idle {
			cc.conn.Close()
		}
	}
	p.mu.Unlock()
	defer p.pool.close()

	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for p.connCount() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			p.cutAll()
			return ctx.Err()
		}
	}
	p.cancelBase()
	return nil
}

// cutAll ends every connection, cutting streams and hijacked connections,
// and waits a bounded time for their goroutines.
func (p *Proxy) cutAll() {
	p.cancelBase()
	p.mu.Lock()
	for cc := range p.conns {
		cc.conn.Close()
		if uc := cc.upstream.Load(); uc != nil {
			uc.conn.Close()
		}
	}
	p.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for p.connCount() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := p.connCount(); n > 0 {
		p.log.Warn("connections still open after shutdown", "count", n)
	}
}

// limitedReader caps reads at n bytes (n < 0: no cap); at the cap it
// reports EOF, which ReadRequest turns into an error.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(b []byte) (int, error) {
	if l.n == 0 {
		return 0, io.EOF
	}
	if l.n > 0 && int64(len(b)) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	if l.n > 0 {
		l.n -= int64(n)
	}
	return n, err
}

func isTemporaryAcceptError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED)
}

// writeErrorResponse writes a Docker-style JSON error response.
func writeErrorResponse(bw *bufio.Writer, http10 bool, status int, message string, closeAfter bool) {
	body := errorBody(message)
	writeStatusLine(bw, http10, status)
	_, _ = bw.WriteString("Content-Type: application/json\r\nContent-Length: ")
	_, _ = bw.WriteString(strconv.Itoa(len(body)))
	_, _ = bw.WriteString("\r\n")
	if closeAfter {
		_, _ = bw.WriteString("Connection: close\r\n")
	}
	_, _ = bw.WriteString("\r\n")
	_, _ = bw.Write(body)
}

func writeStatusLine(bw *bufio.Writer, http10 bool, status int) {
	if http10 {
		_, _ = bw.WriteString("HTTP/1.0 ")
	} else {
		_, _ = bw.WriteString("HTTP/1.1 ")
	}
	_, _ = bw.WriteString(strconv.Itoa(status))
	_ = bw.WriteByte(' ')
	text := http.StatusText(status)
	if text == "" {
		text = "status code " + strconv.Itoa(status)
	}
	_, _ = bw.WriteString(text)
	_, _ = bw.WriteString("\r\n")
}
