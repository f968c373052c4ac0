package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// Response heads as dockerd 20.10 sends them (captured from its socket),
// and what it sends around hijacks.
var dockerdHeads = []string{
	// GET /containers/json, closing and kept alive
	"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: Sun, 06 Dec 2026 05:54:15 GMT\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
	"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: Sun, 06 Dec 2026 05:54:15 GMT\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[{}]\n\r\n0\r\n\r\n",
	// GET /_ping
	"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nCache-Control: no-cache, no-store, must-revalidate\r\nDocker-Experimental: false\r\nOstype: linux\r\nPragma: no-cache\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: Sun, 06 Dec 2026 05:54:15 GMT\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOK",
	// a 404 with a fixed length
	"HTTP/1.1 404 Not Found\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: Sun, 06 Dec 2026 05:54:15 GMT\r\nContent-Length: 44\r\n\r\n{\"message\":\"No such container: nope-sp-h5\"}\n",
	// start, stop
	"HTTP/1.1 204 No Content\r\nApi-Version: 1.41\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: Sun, 06 Dec 2026 05:54:15 GMT\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nApi-Version: 1.41\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: Sun, 06 Dec 2026 05:54:15 GMT\r\n\r\n",
	// attach and exec start, upgraded and raw
	"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x03hi\n",
	"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\nraw bytes",
	"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n\r\n",
	// an informational answer before the final one
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: 88\r\n\r\n",
}

// Heads the parser leaves to http.ReadResponse.
var unusualHeads = []string{
	"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody",
	"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
	"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nCONTENT-LENGTH: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nTrailer: X-A\r\nTransfer-Encoding: chunked\r\n\r\n",
	"HTTP/1.1 200 \xc3\xa9t\xc3\xa9\r\nX-Name: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1  200 OK\r\n\r\n",
	"HTTP/1.1 2000 OK\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX-Bad Name: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\n: empty\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n",
	"HTTP/1.1 200",
	"",
	"garbage\r\n\r\n",
}

// headView is what the proxy makes of a response head: its framing, and
// the head it writes to the client for each framing it can use.
type headView struct {
	Err                 string
	Status              int
	StatusText          string
	Length              int64
	Chunked, Close      bool
	Framing             framing
	Written, Hijacked   []string
	WrittenCloseAfter   []string
	Rest                string
	HeadsRead, FastRead int
}

// viewNew reads heads as readResponseHead does (skipping 1xx).
func viewNew(data []byte, method string, bufSize int) headView {
	br := bufio.NewReaderSize(bytes.NewReader(data), bufSize)
	req := &http.Request{Method: method, ProtoMajor: 1, ProtoMinor: 1}
	var v headView
	h := newResponseHead()
	defer h.release()
	for {
		if err := h.read(br, req); err != nil {
			v.Err = err.Error()
			return v
		}
		v.HeadsRead++
		if h.fast {
			v.FastRead++
		}
		if h.status < 100 || h.status >= 200 || h.status == http.StatusSwitchingProtocols {
			break
		}
	}
	v.Status, v.StatusText, v.Length, v.Chunked, v.Close = h.status, string(h.statusText), h.length, h.chunked, h.close
	v.Framing = responseFraming(req, h)
	v.Written = written(func(bw *bufio.Writer) { writeResponseHead(bw, req, h, v.Framing, false) })
	v.WrittenCloseAfter = written(func(bw *bufio.Writer) { writeResponseHead(bw, req, h, v.Framing, true) })
	v.Hijacked = written(func(bw *bufio.Writer) { writeResponseHead(bw, req, h, hijacked, false) })
	rest, _ := io.ReadAll(br)
	v.Rest = string(rest)
	return v
}

// viewOld is the same with http.ReadResponse and the proxy's code before
// the parser.
func viewOld(data []byte, method string, bufSize int) headView {
	br := bufio.NewReaderSize(bytes.NewReader(data), bufSize)
	req := &http.Request{Method: method, ProtoMajor: 1, ProtoMinor: 1}
	var v headView
	var res *http.Response
	for {
		var err error
		if res, err = http.ReadResponse(br, req); err != nil {
			v.Err = err.Error()
			return v
		}
		v.HeadsRead++
		if res.StatusCode < 100 || res.StatusCode >= 200 || res.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	v.Status, v.StatusText, v.Length, v.Chunked, v.Close = res.StatusCode, res.Status, res.ContentLength, len(res.TransferEncoding) > 0, res.Close
	switch {
	case method == http.MethodHead || res.StatusCode < 200 || res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified:
		v.Framing = noBody
	case len(res.TransferEncoding) > 0:
		v.Framing = chunkedBody
	case res.ContentLength == 0:
		v.Framing = noBody
	case res.ContentLength > 0:
		v.Framing = fixedLength
	default:
		v.Framing = untilEOF
	}
	old := func(bw *bufio.Writer, f framing, closeAfter bool) {
		_, _ = bw.WriteString("HTTP/1.1 " + res.Status + "\r\n")
		for k, vv := range res.Header {
			if f != hijacked && (k == "Connection" || k == "Keep-Alive") {
				continue
			}
			for _, v := range vv {
				writeHeaderLine(bw, k, v)
			}
		}
		if f == chunkedBody {
			writeHeaderLine(bw, "Transfer-Encoding", "chunked")
		}
		if closeAfter {
			writeHeaderLine(bw, "Connection", "close")
		}
		_, _ = bw.WriteString("\r\n")
	}
	v.Written = written(func(bw *bufio.Writer) { old(bw, v.Framing, false) })
	v.WrittenCloseAfter = written(func(bw *bufio.Writer) { old(bw, v.Framing, true) })
	v.Hijacked = written(func(bw *bufio.Writer) { old(bw, hijacked, false) })
	rest, _ := io.ReadAll(br)
	v.Rest = string(rest)
	return v
}

// written is the head write writes, its header lines sorted by name
// (stable: a name's values keep their order), as net/http wrote them in
// map order.
func written(write func(*bufio.Writer)) []string {
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	write(bw)
	_ = bw.Flush()
	lines := strings.Split(b.String(), "\r\n")
	if len(lines) > 1 {
		slices.SortStableFunc(lines[1:], func(a, b string) int {
			na, _, _ := strings.Cut(a, ":")
			nb, _, _ := strings.Cut(b, ":")
			return strings.Compare(na, nb)
		})
	}
	return lines
}

func compareHeads(t *testing.T, data []byte, method string, bufSize int) headView {
	t.Helper()
	got, want := viewNew(data, method, bufSize), viewOld(data, method, bufSize)
	fast := got.FastRead
	got.FastRead = 0
	if g, w := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want); g != w {
		t.Fatalf("head %q (%s, buffer %d):\nparser:       %s\nReadResponse: %s", data, method, bufSize, g, w)
	}
	got.FastRead = fast
	return got
}

// TestResponseHeadDockerd: dockerd's heads are parsed in place, to what
// http.ReadResponse made of them.
func TestResponseHeadDockerd(t *testing.T) {
	for _, head := range dockerdHeads {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			for _, size := range []int{16, 4096} {
				v := compareHeads(t, []byte(head), method, size)
				if v.Err != "" || v.FastRead != v.HeadsRead {
					t.Errorf("head %q (%s, buffer %d): %d of %d heads parsed in place, error %q", head, method, size, v.FastRead, v.HeadsRead, v.Err)
				}
			}
		}
	}
	// The order of dockerd's fields is kept.
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	h := newResponseHead()
	defer h.release()
	if err := h.read(bufio.NewReader(strings.NewReader(dockerdHeads[6])), &http.Request{Method: http.MethodPost}); err != nil {
		t.Fatal(err)
	}
	writeResponseHead(bw, &http.Request{ProtoMajor: 1, ProtoMinor: 1}, h, hijacked, false)
	_ = bw.Flush()
	if want := "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"; b.String() != want {
		t.Errorf("upgrade head relayed as %q, want %q", b.String(), want)
	}
}

// TestResponseHeadLive: the heads of the running dockerd (ping, list,
// inspect, version, a 404) are parsed in place, to what
// http.ReadResponse makes of them.
func TestResponseHeadLive(t *testing.T) {
	sock := dockertest.Require(t)
	for _, req := range []string{"GET /v1.41/_ping", "HEAD /v1.41/_ping", "GET /v1.41/containers/json?all=1",
		"GET /v1.41/containers/sp-h5-no-such-container/json", "GET /v1.41/version", "GET /v1.41/images/json"} {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.WriteString(c, req+" HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
		raw, rerr := io.ReadAll(c)
		c.Close()
		if err != nil || rerr != nil {
			t.Fatalf("%s: %v %v", req, err, rerr)
		}
		method, _, _ := strings.Cut(req, " ")
		if v := compareHeads(t, raw, method, 4096); v.Err != "" || v.FastRead != 1 {
			t.Errorf("%s: head %q not parsed in place (error %q)", req, raw[:min(len(raw), 400)], v.Err)
		}
	}
}

// TestResponseHeadUnusual: other heads go to http.ReadResponse, with the
// same outcome as before.
func TestResponseHeadUnusual(t *testing.T) {
	for _, head := range unusualHeads {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			for _, size := range []int{16, 4096} {
				compareHeads(t, []byte(head), method, size)
			}
		}
	}
	// A head over maxFastHead is read whole, and the body after it kept.
	long := "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("a", maxFastHead) + "\r\nContent-Length: 4\r\n\r\nbody"
	if v := compareHeads(t, []byte(long), http.MethodGet, 4096); v.FastRead != 0 || v.Rest != "body" || v.Length != 4 {
		t.Errorf("long head: %d parsed in place, rest %q, length %d", v.FastRead, v.Rest, v.Length)
	}
}

// FuzzResponseHead: the parser and http.ReadResponse make the same of any
// head (status, framing, the head written to the client, the bytes left),
// or both refuse it alike.
func FuzzResponseHead(f *testing.F) {
	for _, h := range append(slices.Clone(dockerdHeads), unusualHeads...) {
		f.Add([]byte(h), false, false)
	}
	f.Add([]byte(dockerdHeads[0]), true, true)
	f.Fuzz(func(t *testing.T, data []byte, head, small bool) {
		method, size := http.MethodGet, 4096
		if head {
			method = http.MethodHead
		}
		if small {
			size = 16
		}
		compareHeads(t, data, method, size)
	})
}

// BenchmarkResponseHead reads dockerd's list head with the parser and with
// http.ReadResponse.
func BenchmarkResponseHead(b *testing.B) {
	data := []byte(dockerdHeads[1])
	req := &http.Request{Method: http.MethodGet}
	rd := bytes.NewReader(data)
	br := bufio.NewReader(rd)
	b.Run("parser", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(data)
			br.Reset(rd)
			h := newResponseHead()
			if err := h.read(br, req); err != nil || !h.fast {
				b.Fatal(err)
			}
			h.release()
		}
	})
	b.Run("ReadResponse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(data)
			br.Reset(rd)
			if _, err := http.ReadResponse(br, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
