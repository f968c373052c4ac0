package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// outgoing is what is forwarded of an allowed request besides its head.
type outgoing struct {
	body *trackedBody // the client's body; streamed through unless fixed
	// fixed: forward judged (the bytes the Decider saw, or its replacement)
	// with an explicit length instead of the client's body.
	fixed  bool
	judged []byte
	// upgrade: ask dockerd to switch protocols (hijacking operations only).
	upgrade bool
}

// forward sends an allowed request to dockerd over a pooled connection and
// relays the answer: the head as soon as it arrives, then the body in its
// own framing, or, when dockerd hijacks the connection, the bytes of both
// directions. It reports whether the client connection may carry another
// request.
func (p *Proxy) forward(cc *clientConn, r *http.Request, x *exchange, out outgoing) (keepAlive bool) {
	op := x.ev.Request.Operation
	streamed := !out.fixed && !out.body.done()
	bounded := p.cfg.ResponseHeaderTimeout > 0 && !waitsLong(op)

	// Send the request; a body the client streams goes on in the
	// background, so that dockerd can answer before it has read it all.
	var (
		up     *upstreamConn
		sender *bodySender
		res    *responseHead
		err    error
	)
	stopWatch := func() {}
	for attempt := 0; ; attempt++ {
		if up, err = p.pool.get(cc.ctx); err != nil {
			return p.upstreamFailed(cc, r, x, out, nil, err)
		}
		cc.upstream.Store(up)
		if sender, err = p.sendRequest(cc, r, up, out, streamed, bounded); err == nil {
			// While dockerd takes its time (wait, logs, events...), notice a
			// client that hangs up, and end the upstream call with it.
			if waitsLong(op) && !op.Hijack && !streamed {
				stopWatch = watchClient(cc, up)
			}
			res, err = readResponseHead(r, up, sender, bounded)
			if err == nil {
				break
			}
			stopWatch()
		}
		up.conn.Close()
		cc.upstream.Store(nil)
		// A kept-alive connection that dockerd closed (it restarted) fails
		// on first use: retry once on a new one when the request can be
		// sent again and cannot have been acted on.
		if attempt == 0 && up.reused && !streamed && !cc.gone.Load() && staleConnection(err, r.Method) {
			p.pool.closeIdle()
			continue
		}
		return p.upstreamFailed(cc, r, x, out, sender, err)
	}
	defer cc.upstream.Store(nil)
	defer res.release()
	x.ev.Status = res.status
	p.audit(x)

	framing := responseFraming(r, res)
	if res.status == http.StatusSwitchingProtocols || (op.Hijack && framing == untilEOF) {
		stopWatch()
		return p.relayHijack(cc, r, x, up, res, out, sender)
	}

	closeAfter := r.Close || framing == untilEOF || p.shutting.Load() || (sender != nil && !sender.finished())
	var reusable bool
	if flt := p.responseFilter(x, res, framing); flt != nil {
		reusable, closeAfter, err = p.relayFiltered(cc, r, x, up, res, framing, closeAfter, flt)
	} else {
		writeResponseHead(cc.bw, r, res, framing, closeAfter)
		reusable, err = relayBody(cc.conn, cc.bw, up, framing, res.length, waitsLong(op))
	}
	stopWatch() // before up can serve anyone else
	if sender != nil && !sender.finished() {
		// dockerd answered without reading the whole body: the connection
		// is out of step; end it (which also ends the sender).
		up.conn.Close()
		<-sender.done
		reusable, closeAfter = false, true
	}
	if sender != nil && sender.err != nil {
		reusable, closeAfter = false, true
	}
	// A client seen gone by the watcher may have had up closed under the
	// relay's feet (after the body, before stopWatch): never pool it.
	if err != nil || !reusable || res.close || cc.gone.Load() {
		up.conn.Close()
	} else {
		p.pool.put(up)
	}
	if err != nil {
		if !cc.gone.Load() {
			p.log.Debug("response relay ended early", "id", x.ev.Request.ID, "operation", op.Name, "error", err)
		}
		return false
	}
	return !closeAfter && !cc.gone.Load() && out.body.done()
}

// relayHijack relays dockerd's switch to a raw stream (101 UPGRADED, or the
// raw 200 of attach and exec start without upgrade): its head as sent,
// then bytes both ways with half-close.
func (p *Proxy) relayHijack(cc *clientConn, r *http.Request, x *exchange, up *upstreamConn, res *responseHead, out outgoing, sender *bodySender) bool {
	defer up.conn.Close()
	if (res.status == http.StatusSwitchingProtocols && !out.upgrade) || sender != nil {
		err := fmt.Errorf("dockerd switched protocols (%s) on %s, which did not ask to", res.statusText, x.ev.Request.Operation.Name)
		x.ev.Error = err.Error()
		writeErrorResponse(cc.bw, isHTTP10(r), http.StatusBadGateway, "sockproxy: "+err.Error(), true)
		_ = cc.bw.Flush()
		return false
	}
	writeResponseHead(cc.bw, r, res, hijacked, false)
	if err := cc.bw.Flush(); err != nil {
		return false
	}
	relayBothWays(cc.conn, cc.br, up)
	return false
}

// sendRequest writes the request head and body to dockerd. A body the
// client streams is copied by a bodySender in the background.
func (p *Proxy) sendRequest(cc *clientConn, r *http.Request, up *upstreamConn, out outgoing, streamed, bounded bool) (*bodySender, error) {
	if streamed {
		if err := continueIfExpected(cc, r); err != nil {
			return nil, err
		}
	}
	p.writeRequestHead(up.bw, r, out, streamed)
	if out.fixed {
		_, _ = up.bw.Write(out.judged)
	}
	if err := up.bw.Flush(); err != nil {
		return nil, &upstreamWriteError{err}
	}
	if !streamed {
		if bounded {
			_ = up.conn.SetReadDeadline(time.Now().Add(p.cfg.ResponseHeaderTimeout))
		}
		return nil, nil
	}
	s := &bodySender{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = copyRequestBody(up, out.body, r.ContentLength < 0)
		if s.err != nil {
			up.conn.Close() // dockerd would wait for the rest forever
			return
		}
		s.mu.Lock()
		if bounded && !s.headRead {
			_ = up.conn.SetReadDeadline(time.Now().Add(p.cfg.ResponseHeaderTimeout))
		}
		s.mu.Unlock()
	}()
	return s, nil
}

// bodySender copies a streamed request body to dockerd.
type bodySender struct {
	done     chan struct{}
	err      error // valid once done is closed
	mu       sync.Mutex
	headRead bool // the response head arrived: arm no header timeout
}

func (s *bodySender) finished() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// readResponseHead reads dockerd's response head, skipping informational
// answers, and lifts the header timeout once it is there. The caller
// releases the head.
func readResponseHead(r *http.Request, up *upstreamConn, sender *bodySender, bounded bool) (*responseHead, error) {
	res := newResponseHead()
	for {
		if err := res.read(up.br, r); err != nil {
			res.release()
			return nil, err
		}
		if res.status >= 100 && res.status < 200 && res.status != http.StatusSwitchingProtocols {
			continue
		}
		if bounded {
			if sender != nil {
				sender.mu.Lock()
				sender.headRead = true
				defer sender.mu.Unlock()
			}
			_ = up.conn.SetReadDeadline(time.Time{})
		}
		return res, nil
	}
}

// upstreamFailed answers a request whose upstream call failed before
// dockerd's response head: 502 when dockerd cannot be reached, 504 when it
// did not answer in time.
func (p *Proxy) upstreamFailed(cc *clientConn, r *http.Request, x *exchange, out outgoing, sender *bodySender, err error) bool {
	op := x.ev.Request.Operation
	x.ev.Error = err.Error()
	var bodyErr *clientBodyError
	status, msg := http.StatusBadGateway, ""
	switch {
	case cc.gone.Load():
		x.ev.Error = "the client went away before dockerd answered: " + err.Error()
		p.audit(x)
		return false
	case p.baseCtx.Err() != nil:
		status, msg = http.StatusServiceUnavailable, "sockproxy is shutting down; retry when it is back"
	case sender != nil && errors.As(sender.err, &bodyErr):
		status, msg = http.StatusBadRequest, fmt.Sprintf("sockproxy could not read the body of %s from the client: %v", op.Name, bodyErr.err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		status = http.StatusGatewayTimeout
		msg = fmt.Sprintf("the Docker daemon at %s did not answer %s within %s; it may be hung or overloaded: check it (docker info, its logs), or raise the response header timeout",
			p.upstream.display, op.Name, p.cfg.ResponseHeaderTimeout)
		p.log.Warn("upstream answered too late", "id", x.ev.Request.ID, "operation", op.Name, "timeout", p.cfg.ResponseHeaderTimeout)
	default:
		msg = fmt.Sprintf("sockproxy cannot reach the Docker daemon at %s (%v); check that dockerd is running and that --upstream names its socket", p.upstream.display, err)
		p.log.Warn("upstream unreachable", "upstream", p.upstream.display, "error", err)
	}
	x.ev.Status = status
	p.audit(x)
	keepAlive := !r.Close && out.body.done() && sender == nil && !p.shutting.Load()
	writeErrorResponse(cc.bw, isHTTP10(r), status, msg, !keepAlive)
	if err := cc.bw.Flush(); err != nil {
		return false
	}
	return keepAlive
}

// upstreamWriteError is a failure to send a request to dockerd.
type upstreamWriteError struct{ err error }

func (e *upstreamWriteError) Error() string { return "send the request to dockerd: " + e.err.Error() }
func (e *upstreamWriteError) Unwrap() error { return e.err }

// clientBodyError is a failure to read a streamed body from the client.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "read the request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// staleConnection tells whether err is what a kept-alive connection that
// dockerd already closed gives: the request never reached dockerd (write
// failed) or, for a request without effects, no answer came.
func staleConnection(err error, method string) bool {
	var we *upstreamWriteError
	if errors.As(err, &we) {
		return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
	}
	if method != http.MethodGet && method != http.MethodHead {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// longWaits are operations outside the Stream and Hijack sets whose answer
// may take long without anything being wrong: the response header timeout
// never cuts them.
var longWaits = map[string]bool{
	"container.stop": true, "container.restart": true, "container.kill": true, "container.commit": true,
	"container.prune": true, "image.prune": true, "volume.prune": true, "network.prune": true, "image.build.prune": true,
	"system.df": true, "checkpoint.create": true, "plugin.enable": true, "plugin.disable": true, "plugin.create": true,
	"plugin.set": true, "swarm.init": true, "swarm.join": true, "swarm.leave": true, "container.archive.put": true,
}

// waitsLong reports whether op may legitimately keep its client waiting:
// streams (logs, events, stats, wait, pulls, pushes, loads, builds),
// hijacks (attach, exec start) and longWaits.
func waitsLong(op Operation) bool { return op.Stream || op.Hijack || longWaits[op.Name] }

// hopByHop are headers that concern one connection, never forwarded.
var hopByHop = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "Expect": true, "Host": true,
}

// writeRequestHead writes the request line and headers as the client sent
// them (path and query byte for byte), minus hop-by-hop headers, with the
// framing of the body that is forwarded.
func (p *Proxy) writeRequestHead(bw *bufio.Writer, r *http.Request, out outgoing, streamed bool) {
	_, _ = bw.WriteString(r.Method)
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(requestURI(r))
	if isHTTP10(r) {
		_, _ = bw.WriteString(" HTTP/1.0\r\nHost: ")
	} else {
		_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	}
	_, _ = bw.WriteString(p.upstream.host)
	_, _ = bw.WriteString("\r\n")
	named := connectionOptions(r.Header)
	for k, vv := range r.Header {
		if hopByHop[k] || named[k] {
			continue
		}
		for _, v := range vv {
			writeHeaderLine(bw, k, v)
		}
	}
	if out.upgrade {
		writeHeaderLine(bw, "Connection", "Upgrade")
		writeHeaderLine(bw, "Upgrade", r.Header.Get("Upgrade"))
	}
	switch {
	case out.fixed:
		writeHeaderLine(bw, "Content-Length", strconv.Itoa(len(out.judged)))
	case streamed && r.ContentLength > 0:
		writeHeaderLine(bw, "Content-Length", strconv.FormatInt(r.ContentLength, 10))
	case streamed:
		writeHeaderLine(bw, "Transfer-Encoding", "chunked")
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		writeHeaderLine(bw, "Content-Length", "0")
	}
	_, _ = bw.WriteString("\r\n")
}

// requestURI is the request target as the client sent it, in origin form.
func requestURI(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// connectionOptions are the headers a Connection header names as
// hop-by-hop.
func connectionOptions(h http.Header) map[string]bool {
	values := h["Connection"]
	if len(values) == 0 {
		return nil
	}
	named := map[string]bool{}
	for _, v := range values {
		for token := range strings.SplitSeq(v, ",") {
			if token = strings.TrimSpace(token); token != "" {
				named[http.CanonicalHeaderKey(token)] = true
			}
		}
	}
	return named
}

func writeHeaderLine(bw *bufio.Writer, k, v string) {
	_, _ = bw.WriteString(k)
	_, _ = bw.WriteString(": ")
	_, _ = bw.WriteString(v)
	_, _ = bw.WriteString("\r\n")
}

// copyRequestBody streams a client's body to dockerd, re-chunked when the
// client chunked it.
func copyRequestBody(up *upstreamConn, body io.Reader, chunked bool) error {
	buf := bigBuffers.Get().(*[]byte)
	defer bigBuffers.Put(buf)
	var w io.Writer = up.bw
	var cw io.WriteCloser
	if chunked {
		cw = httputil.NewChunkedWriter(up.bw)
		w = cw
	}
	for {
		n, rerr := body.Read(*buf)
		if n > 0 {
			if _, err := w.Write((*buf)[:n]); err != nil {
				return &upstreamWriteError{err}
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return &clientBodyError{rerr}
		}
	}
	if cw != nil {
		_ = cw.Close()
		_, _ = up.bw.WriteString("\r\n")
	}
	if err := up.bw.Flush(); err != nil {
		return &upstreamWriteError{err}
	}
	return nil
}

// framing is how a response body is delimited.
type framing int

const (
	noBody      framing = iota
	fixedLength         // Content-Length
	chunkedBody         // Transfer-Encoding: chunked
	untilEOF            // until dockerd closes: the connection ends with it
	hijacked            // a switched protocol: bytes both ways, head as sent
)

func responseFraming(r *http.Request, res *responseHead) framing {
	switch {
	case r.Method == http.MethodHead || res.status < 200 || res.status == http.StatusNoContent || res.status == http.StatusNotModified:
		return noBody
	case res.chunked: // the only transfer coding accepted
		return chunkedBody
	case res.length == 0:
		return noBody
	case res.length > 0:
		return fixedLength
	}
	return untilEOF
}

// writeResponseHead writes dockerd's status line and headers to the
// client, in dockerd's order, minus its connection headers (a hijack keeps
// them all).
func writeResponseHead(bw *bufio.Writer, r *http.Request, res *responseHead, f framing, closeAfter bool) {
	if isHTTP10(r) {
		_, _ = bw.WriteString("HTTP/1.0 ")
	} else {
		_, _ = bw.WriteString("HTTP/1.1 ")
	}
	_, _ = bw.Write(res.statusText)
	_, _ = bw.WriteString("\r\n")
	for _, fl := range res.fields {
		if f != hijacked && (string(fl.name) == "Connection" || string(fl.name) == "Keep-Alive") {
			continue
		}
		_, _ = bw.Write(fl.name)
		_, _ = bw.WriteString(": ")
		_, _ = bw.Write(fl.value)
		_, _ = bw.WriteString("\r\n")
	}
	if f == chunkedBody {
		writeHeaderLine(bw, "Transfer-Encoding", "chunked")
	}
	if closeAfter {
		writeHeaderLine(bw, "Connection", "close")
	}
	_, _ = bw.WriteString("\r\n")
}

// relayBody copies a response body from dockerd to the client. A stream
// (logs, events, progress: live) is flushed whenever nothing more is
// pending: a log line or event goes out at once, a burst of them in one
// write. Any other answer is only useful whole, so it goes out in as few
// writes as its size allows. Chunked bodies are re-chunked, so that a burst
// of dockerd's small chunks (one per log frame) leaves as one chunk. It
// reports whether the daemon connection ended exactly with the body, so it
// can carry another request.
func relayBody(client net.Conn, bw *bufio.Writer, up *upstreamConn, f framing, length int64, live bool) (reusable bool, err error) {
	if f == noBody {
		// Anything dockerd sent after a bodyless answer would be read as
		// the next caller's answer: such a connection is out of step.
		return up.br.Buffered() == 0, bw.Flush()
	}
	out := chunkWriter{conn: client, bw: bw, chunked: f == chunkedBody}
	defer out.release()
	var beforeWait func() error
	if live {
		beforeWait = out.flush
	}
	sink := out.add
	if f != chunkedBody {
		sink = func(data []byte) error {
			_, err := bw.Write(data)
			return err
		}
	}
	// Large data goes by splice when both ends allow it; the splicer is
	// made at the first large piece, so small answers cost nothing more.
	var handoff func(chunkScanner, int64) (chunkScanner, int64, bool, error)
	if f == chunkedBody || f == fixedLength {
		var sp *bodySplicer
		defer func() { sp.close() }()
		handoff = func(chunks chunkScanner, remaining int64) (chunkScanner, int64, bool, error) {
			if sp == nil {
				sp = newBodySplicer(client, up.conn)
			}
			if !sp.usable() {
				return chunks, remaining, false, nil
			}
			if err := out.flush(); err != nil {
				return chunks, remaining, false, err
			}
			end, err := sp.relay(bw, f, &chunks, &remaining)
			return chunks, remaining, end, err
		}
	}
	if reusable, err = readBodyFrom(up, f, length, live, beforeWait, sink, handoff); err != nil {
		_ = out.flush() // what came before the failure still goes out
		return false, err
	}
	return reusable, out.finish()
}

// readBody reads a response body from dockerd in its framing and hands its
// data to sink (valid only during the call); beforeWait runs when it would
// block (a writer's flush). It reports whether the daemon connection ended
// exactly with the body.
func readBody(up *upstreamConn, f framing, length int64, live bool, beforeWait func() error, sink func([]byte) error) (reusable bool, err error) {
	return readBodyFrom(up, f, length, live, beforeWait, sink, nil)
}

// readBodyFrom is readBody that hands the body over to handoff (if not
// nil) whenever a large piece of data is next in the socket and nothing is
// buffered: handoff relays some of it, updating the framing state, and
// says whether the body ended with it. (The state goes by value, so that
// it stays on the stack of a body that is never handed over.)
func readBodyFrom(up *upstreamConn, f framing, length int64, live bool, beforeWait func() error, sink func([]byte) error,
	handoff func(chunks chunkScanner, remaining int64) (chunkScanner, int64, bool, error)) (reusable bool, err error) {
	in := burstReader{br: up.br, coalesce: live}
	defer in.release()
	var chunks chunkScanner
	remaining := length
	for {
		if handoff != nil && in.idle() && large(f, &chunks, remaining) {
			var end bool
			chunks, remaining, end, err = handoff(chunks, remaining)
			if err != nil || end {
				return err == nil, err
			}
		}
		data, rerr := in.next(beforeWait)
		if len(data) > 0 {
			n, end := len(data), false
			switch f {
			case fixedLength:
				if int64(n) >= remaining {
					n, end = int(remaining), true
				}
				remaining -= int64(n)
				err = sink(data[:n])
			case chunkedBody:
				n, end, err = chunks.scan(data, sink)
			default:
				err = sink(data)
			}
			if err != nil {
				return false, err
			}
			in.consume(n)
			if end {
				return n == len(data), nil
			}
		}
		if rerr != nil {
			if f == untilEOF && errors.Is(rerr, io.EOF) {
				return false, nil
			}
			if errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			return false, rerr
		}
	}
}

// chunkWriter collects the data of dockerd's chunks and writes it as one
// chunk per flush. Its buffer is taken from the pool only while data is
// pending, so a quiet stream holds none.
type chunkWriter struct {
	conn    net.Conn
	bw      *bufio.Writer
	chunked bool
	pending *[]byte
	n       int
	head    [18]byte // a chunk's size line, without allocating
}

// add takes chunk data; a full buffer is written out at once.
func (w *chunkWriter) add(data []byte) error {
	for len(data) > 0 {
		if w.pending == nil {
			w.pending = bigBuffers.Get().(*[]byte)
		}
		c := copy((*w.pending)[w.n:], data)
		w.n += c
		data = data[c:]
		if w.n == len(*w.pending) {
			if err := w.writeChunk(); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeChunk writes the pending data as one chunk: through the buffered
// writer when small, in one writev with its framing when large.
func (w *chunkWriter) writeChunk() error {
	if w.n == 0 {
		return nil
	}
	head := strconv.AppendInt(w.head[:0], int64(w.n), 16)
	head = append(head, '\r', '\n')
	data := (*w.pending)[:w.n]
	w.n = 0
	if len(data) < w.bw.Available() {
		_, _ = w.bw.Write(head)
		_, _ = w.bw.Write(data)
		_, err := w.bw.WriteString("\r\n")
		return err
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	bufs := net.Buffers{head, data, []byte("\r\n")}
	_, err := bufs.WriteTo(w.conn)
	return err
}

// flush sends everything pending to the client and gives the buffer back.
func (w *chunkWriter) flush() error {
	if err := w.writeChunk(); err != nil {
		return err
	}
	w.release()
	return w.bw.Flush()
}

// finish ends a chunked body with the last chunk, and flushes.
func (w *chunkWriter) finish() error {
	if w.chunked {
		if err := w.writeChunk(); err != nil {
			return err
		}
		_, _ = w.bw.WriteString("0\r\n\r\n")
	}
	return w.flush()
}

func (w *chunkWriter) release() {
	if w.pending != nil {
		bigBuffers.Put(w.pending)
		w.pending = nil
	}
}

// chunkScanner follows chunked framing over raw bytes, so that a chunked
// body is relayed verbatim and its end found.
type chunkScanner struct {
	state   int
	size    int64 // the chunk size being read, then the data bytes left
	lineLen int
}

const (
	csSize         = iota // hex digits of a chunk size
	csExt                 // a chunk extension, up to CR
	csSizeLF              // LF after the size line
	csData                // chunk data
	csDataCR              // CR after chunk data
	csDataLF              // LF after chunk data
	csTrailerStart        // a trailer line, or the final CRLF
	csTrailer             // a trailer line, up to CR
	csTrailerLF           // LF after a trailer line
	csEndLF               // the last LF of the body
)

var errChunkFraming = errors.New("dockerd sent malformed chunked framing")

// scan consumes p up to the end of the body, handing chunk data to data: n
// bytes of p belong to the body, and end says the body ended with them.
// Chunk extensions and trailers are dropped.
func (s *chunkScanner) scan(p []byte, data func([]byte) error) (n int, end bool, err error) {
	for n < len(p) {
		c := p[n]
		switch s.state {
		case csData:
			take := min(int64(len(p)-n), s.size)
			if err := data(p[n : n+int(take)]); err != nil {
				return n, false, err
			}
			n += int(take)
			if s.size -= take; s.size == 0 {
				s.state = csDataCR
			}
			continue
		case csSize:
			switch v := unhex(c); {
			case v >= 0 && s.lineLen < 15:
				s.size = s.size<<4 | int64(v)
			case c == ';' && s.lineLen > 0:
				s.state = csExt
			case c == '\r' && s.lineLen > 0:
				s.state = csSizeLF
			default:
				return n, false, errChunkFraming
			}
			s.lineLen++
		case csExt, csTrailer:
			if c == '\n' || s.lineLen > 4096 {
				return n, false, errChunkFraming
			}
			if c == '\r' {
				if s.state == csExt {
					s.state = csSizeLF
				} else {
					s.state = csTrailerLF
				}
			}
			s.lineLen++
		case csSizeLF:
			if c != '\n' {
				return n, false, errChunkFraming
			}
			s.lineLen = 0
			if s.size == 0 {
				s.state = csTrailerStart
			} else {
				s.state = csData
			}
		case csDataCR:
			if c != '\r' {
				return n, false, errChunkFraming
			}
			s.state = csDataLF
		case csDataLF:
			if c != '\n' {
				return n, false, errChunkFraming
			}
			s.state, s.size, s.lineLen = csSize, 0, 0
		case csTrailerStart:
			if c == '\r' {
				s.state = csEndLF
			} else {
				s.state, s.lineLen = csTrailer, 1
			}
		case csTrailerLF:
			if c != '\n' {
				return n, false, errChunkFraming
			}
			s.state, s.lineLen = csTrailerStart, 0
		case csEndLF:
			if c != '\n' {
				return n, false, errChunkFraming
			}
			return n + 1, true, nil
		}
		n++
	}
	return n, false, nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
