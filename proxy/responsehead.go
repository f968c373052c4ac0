package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
)

// responseHead is one of dockerd's response heads as the proxy relays it.
// dockerd's usual heads are parsed in place (lines copied into buf, fields
// sliced from it): http.ReadResponse cost a third of the proxy's CPU on a
// list and half its allocations. Anything unusual (another protocol
// version, folded or malformed lines, bytes outside the plain sets, odd
// framing headers, a long head) goes to http.ReadResponse instead, so the
// proxy accepts, refuses and relays exactly what it did with it.
type responseHead struct {
	status     int
	statusText []byte // the status line after the protocol: "200 OK"
	// length is what http.Response.ContentLength would be.
	length  int64
	chunked bool // Transfer-Encoding: chunked
	close   bool // dockerd ends the connection after this answer
	// fields are the header lines in dockerd's order, without those
	// http.ReadResponse drops (Transfer-Encoding, Connection: close).
	fields []headField
	buf    []byte
	fast   bool // parsed here, not by http.ReadResponse
}

type headField struct{ name, value []byte }

const (
	// maxFastHead and maxFastFields bound the heads parsed here; larger ones
	// (dockerd sends ~200 bytes, under 10 fields) go to http.ReadResponse.
	maxFastHead   = 16 << 10
	maxFastFields = 64
)

var responseHeads = sync.Pool{New: func() any { return &responseHead{buf: make([]byte, 0, 512), fields: make([]headField, 0, 16)} }}

func newResponseHead() *responseHead { return responseHeads.Get().(*responseHead) }

// release gives h back for another answer; h is unusable after.
func (h *responseHead) release() {
	if cap(h.buf) > maxFastHead+1024 || cap(h.fields) > maxFastFields {
		return
	}
	clear(h.fields)
	*h = responseHead{buf: h.buf[:0], fields: h.fields[:0]}
	responseHeads.Put(h)
}

// read reads one response head to req from br, leaving br at its body.
func (h *responseHead) read(br *bufio.Reader, req *http.Request) error {
	h.buf, h.fields = h.buf[:0], h.fields[:0]
	lineStart, lines := 0, 0
	for {
		piece, err := br.ReadSlice('\n')
		h.buf = append(h.buf, piece...)
		if err == bufio.ErrBufferFull && len(h.buf) <= maxFastHead {
			continue
		}
		if err != nil || len(h.buf) > maxFastHead {
			if err == bufio.ErrBufferFull {
				err = nil
			}
			return h.fallback(br, req, err)
		}
		line := h.buf[lineStart:]
		lineStart = len(h.buf)
		lines++
		if lines > 1 && (len(line) == 1 || len(line) == 2 && line[0] == '\r') {
			break
		}
		if lines > maxFastFields+1 {
			return h.fallback(br, req, nil)
		}
	}
	if !h.parse(req) {
		return h.fallback(br, req, nil)
	}
	h.fast = true
	return nil
}

// parse parses the head in h.buf, and reports false for anything it leaves
// to http.ReadResponse.
func (h *responseHead) parse(req *http.Request) bool {
	rest := h.buf
	line, rest, ok := cutLine(rest)
	const proto = "HTTP/1.1 "
	if !ok || len(line) < len(proto)+3 || string(line[:len(proto)]) != proto {
		return false
	}
	h.statusText = line[len(proto):]
	code := h.statusText
	if !isDigit(code[0]) || !isDigit(code[1]) || !isDigit(code[2]) || len(code) > 3 && code[3] != ' ' {
		return false
	}
	h.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	for _, c := range code[3:] {
		if !validValueByte(c) {
			return false
		}
	}

	var cl, te, conn, pragma int
	cacheControl, pragmaNoCache := false, false
	length := int64(-1)
	h.chunked, h.close = false, false
	for {
		if line, rest, ok = cutLine(rest); !ok {
			return false
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return false
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !canonicalToken(name) {
			return false
		}
		for _, c := range value {
			if !validValueByte(c) {
				return false
			}
		}
		switch string(name) {
		case "Content-Length":
			// one, digits only: dockerd's; the rest is for ReadResponse
			if cl++; cl > 1 || len(value) == 0 || len(value) > 18 {
				return false
			}
			length = 0
			for _, c := range value {
				if !isDigit(c) {
					return false
				}
				length = length*10 + int64(c-'0')
			}
		case "Transfer-Encoding":
			if te++; te > 1 || string(value) != "chunked" {
				return false
			}
			h.chunked = true
			continue // ReadResponse drops it
		case "Pragma":
			if pragma++; pragma == 1 && string(value) == "no-cache" {
				pragmaNoCache = true
			}
		case "Cache-Control":
			cacheControl = true
		case "Trailer":
			return false // ReadResponse moves it
		case "Connection":
			conn++
			if containsToken(value, "close") {
				h.close = true
			}
		}
		h.fields = append(h.fields, headField{name: name, value: value})
	}
	if cl > 0 && te > 0 || pragmaNoCache && !cacheControl {
		return false // ReadResponse drops Content-Length, adds Cache-Control
	}
	if h.close && conn > 0 {
		// ReadResponse drops Connection when it says close.
		kept := h.fields[:0]
		for _, f := range h.fields {
			if string(f.name) != "Connection" {
				kept = append(kept, f)
			}
		}
		clear(h.fields[len(kept):])
		h.fields = kept
	}
	// Content-Length as http.ReadResponse sets it.
	bodyless := h.status/100 == 1 || h.status == http.StatusNoContent || h.status == http.StatusNotModified
	switch {
	case req.Method == http.MethodHead:
		h.length = length
	case bodyless:
		h.length = 0
	case h.chunked:
		h.length = -1
	default:
		h.length = length
		if length < 0 {
			h.close = true // the body ends with the connection
		}
	}
	return true
}

// fallback has http.ReadResponse read the head: the bytes read so far, then
// (unless reading them ended in err) the rest from br, a byte at a time so
// that nothing past the head leaves br.
func (h *responseHead) fallback(br *bufio.Reader, req *http.Request, err error) error {
	src := &replayReader{head: h.buf, err: err, br: br}
	// The same buffer size splits over-long lines alike (errors are the same).
	res, err := http.ReadResponse(bufio.NewReaderSize(src, br.Size()), req)
	if err != nil {
		return err
	}
	h.fast = false
	h.status = res.StatusCode
	h.length = res.ContentLength
	h.chunked = len(res.TransferEncoding) > 0
	h.close = res.Close
	// The fields keep ReadResponse's header, copied into buf.
	n := len(res.Status)
	for k, vv := range res.Header {
		n += len(vv) * len(k)
		for _, v := range vv {
			n += len(v)
		}
	}
	buf := make([]byte, 0, n)
	buf = append(buf, res.Status...)
	h.statusText = buf[:len(res.Status):len(res.Status)]
	h.fields = h.fields[:0]
	for k, vv := range res.Header {
		for _, v := range vv {
			start := len(buf)
			buf = append(buf, k...)
			buf = append(buf, v...)
			h.fields = append(h.fields, headField{name: buf[start : start+len(k) : start+len(k)], value: buf[start+len(k) : len(buf) : len(buf)]})
		}
	}
	h.buf = h.buf[:0]
	return nil
}

// replayReader gives what was read of a head, then err or the rest of br
// byte by byte.
type replayReader struct {
	head []byte
	err  error
	br   *bufio.Reader
}

func (r *replayReader) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	c, err := r.br.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = c
	return 1, nil
}

var _ io.Reader = (*replayReader)(nil)

// get is the first value of the field name, as http.Header.Get.
func (h *responseHead) get(name string) string {
	for _, f := range h.fields {
		if string(f.name) == name {
			return string(f.value)
		}
	}
	return ""
}

// without is a copy of h without the fields called name.
func (h *responseHead) without(name string) *responseHead {
	c := *h
	c.fields = make([]headField, 0, len(h.fields)+1)
	for _, f := range h.fields {
		if string(f.name) != name {
			c.fields = append(c.fields, f)
		}
	}
	return &c
}

// cutLine cuts the first CRLF-ended line off b; a bare LF is not ok.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validValueByte: visible ASCII, space and tab.
func validValueByte(c byte) bool { return c == '\t' || ' ' <= c && c <= '~' }

// canonicalToken reports whether name is a header name in the form
// http.CanonicalHeaderKey gives (letters upper case at the start and after
// '-', lower case elsewhere) and only of token bytes.
func canonicalToken(name []byte) bool {
	upper := true
	for _, c := range name {
		switch {
		case 'A' <= c && c <= 'Z':
			if !upper {
				return false
			}
		case 'a' <= c && c <= 'z':
			if upper {
				return false
			}
		case isDigit(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
		upper = c == '-'
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// containsToken reports whether the comma-separated list v holds token,
// ASCII case-insensitively.
func containsToken(v []byte, token string) bool {
	for len(v) > 0 {
		item := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if strings.EqualFold(string(trimOWS(item)), token) {
			return true
		}
	}
	return false
}
