package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
)

// ResponseFilter rewrites dockerd's answer to an allowed request before the
// client sees it: a list cut down to the objects the caller may see, an
// event stream without other callers' events. The Decider makes it (and
// knows what it keeps); the proxy only applies it. It applies to
// successful (2xx) answers that have a body, in enforce mode; any other
// answer is relayed as it came. Set exactly one of Whole and Line.
type ResponseFilter struct {
	// Whole gets the complete body of the answer (at most MaxFilteredBody
	// bytes) and returns the body to send in its place, with its own length.
	// An error is answered 502: the client never gets the unfiltered body.
	Whole func(ctx context.Context, body []byte) ([]byte, error)
	// Line is for streams of newline-delimited documents (events): it gets
	// each line, without its newline, as it arrives, and reports whether to
	// send it. line is only valid during the call. The stream flushes as
	// unfiltered streams do; a line longer than MaxFilteredLine ends it.
	Line func(ctx context.Context, line []byte) bool
}

const (
	// MaxFilteredBody caps the answers a Whole filter reads.
	MaxFilteredBody = 64 << 20
	// MaxFilteredLine caps one line of a stream a Line filter reads.
	MaxFilteredLine = 1 << 20
)

// responseFilter is the filter to apply to res, or nil to relay it as it
// came.
func (p *Proxy) responseFilter(x *exchange, res *responseHead, f framing) *ResponseFilter {
	flt := x.ev.Decision.Filter
	if flt == nil || f == noBody || res.status < 200 || res.status > 299 {
		return nil
	}
	if p.cfg.Mode == "dry-run" {
		// dry-run changes nothing clients see; the decision's facts say
		// what the filter would have kept.
		return nil
	}
	return flt
}

// relayFiltered relays a response body through flt in place of relayBody:
// whole answers are read, filtered and sent with their new length; line
// streams are re-chunked (or, to HTTP/1.0 clients, sent until close) as
// their kept lines arrive. It reports whether the daemon connection may be
// reused and whether the client connection must close.
func (p *Proxy) relayFiltered(cc *clientConn, r *http.Request, x *exchange, up *upstreamConn, res *responseHead, f framing, closeAfter bool, flt *ResponseFilter) (reusable, closeOut bool, err error) {
	op := x.ev.Request.Operation
	head := res.without("Content-Length")
	if enc := res.get("Content-Encoding"); enc != "" && enc != "identity" {
		err = fmt.Errorf("dockerd answered %s with Content-Encoding %q, which sockproxy cannot filter", op.Name, enc)
		return false, true, p.filterFailed(cc, r, x, err)
	}

	if flt.Line != nil {
		http10 := isHTTP10(r)
		out := chunkWriter{conn: cc.conn, bw: cc.bw, chunked: true}
		defer out.release()
		lines := lineFilter{ctx: cc.ctx, keep: flt.Line, emit: out.add}
		flush := out.flush
		outFraming := chunkedBody
		if http10 {
			outFraming, closeAfter = untilEOF, true
			lines.emit = func(b []byte) error { _, err := cc.bw.Write(b); return err }
			flush = cc.bw.Flush
		}
		writeResponseHead(cc.bw, r, head, outFraming, closeAfter)
		reusable, err = readBody(up, f, res.length, waitsLong(op), flush, lines.add)
		if err == nil {
			err = lines.end()
		}
		if err == nil && !http10 {
			err = out.finish()
		} else if err == nil {
			err = cc.bw.Flush()
		} else {
			_ = flush()
		}
		return reusable, closeAfter, err
	}

	var body []byte
	reusable, err = readBody(up, f, res.length, false, nil, func(b []byte) error {
		if len(body)+len(b) > MaxFilteredBody {
			return fmt.Errorf("the answer to %s is over %d MiB, more than sockproxy filters", op.Name, MaxFilteredBody>>20)
		}
		body = append(body, b...)
		return nil
	})
	if err != nil {
		return false, true, p.filterFailed(cc, r, x, fmt.Errorf("reading dockerd's answer to %s: %w", op.Name, err))
	}
	filtered, err := flt.Whole(cc.ctx, body)
	if err != nil {
		return reusable, true, p.filterFailed(cc, r, x, fmt.Errorf("filtering dockerd's answer to %s: %w", op.Name, err))
	}
	head.fields = append(head.fields, headField{name: []byte("Content-Length"), value: strconv.AppendInt(nil, int64(len(filtered)), 10)})
	writeResponseHead(cc.bw, r, head, fixedLength, closeAfter)
	_, _ = cc.bw.Write(filtered)
	return reusable, closeAfter, cc.bw.Flush()
}

// filterFailed answers 502 for an answer that could not be filtered (the
// audit record already holds dockerd's status) and returns err.
func (p *Proxy) filterFailed(cc *clientConn, r *http.Request, x *exchange, err error) error {
	p.log.Warn("response filter failed; answered 502", "id", x.ev.Request.ID, "operation", x.ev.Request.Operation.Name, "error", err)
	writeErrorResponse(cc.bw, isHTTP10(r), http.StatusBadGateway, "sockproxy: "+err.Error(), true)
	_ = cc.bw.Flush()
	return err
}

// lineFilter splits a stream into lines, and emits those keep keeps, each
// with its newline.
type lineFilter struct {
	ctx     context.Context
	keep    func(context.Context, []byte) bool
	emit    func([]byte) error
	partial []byte // a line begun in earlier data
}

var (
	newline        = []byte{'\n'}
	errLineTooLong = fmt.Errorf("a line of the stream is over %d KiB, more than sockproxy filters", MaxFilteredLine>>10)
)

func (l *lineFilter) add(data []byte) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(l.partial)+len(data) > MaxFilteredLine {
				return errLineTooLong
			}
			l.partial = append(l.partial, data...)
			return nil
		}
		line := data[:i]
		if len(l.partial) > 0 {
			if len(l.partial)+i > MaxFilteredLine {
				return errLineTooLong
			}
			l.partial = append(l.partial, line...)
			line = l.partial
		}
		if err := l.line(line); err != nil {
			return err
		}
		l.partial = l.partial[:0]
		data = data[i+1:]
	}
	return nil
}

// end filters a last line the stream did not end with a newline.
func (l *lineFilter) end() error {
	if len(l.partial) == 0 {
		return nil
	}
	err := l.line(l.partial)
	l.partial = l.partial[:0]
	return err
}

func (l *lineFilter) line(line []byte) error {
	if !l.keep(l.ctx, line) {
		return nil
	}
	if err := l.emit(line); err != nil {
		return err
	}
	return l.emit(newline)
}
