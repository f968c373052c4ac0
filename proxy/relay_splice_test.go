package proxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/proxy"
)

// rawUpstream is a fake dockerd that answers each request on a connection
// with what answer writes, raw, and counts the connections it accepted.
type rawUpstream struct {
	conns atomic.Int32
}

func startRawUpstream(t testing.TB, answer func(w *bufio.Writer, r *http.Request) error) (string, *rawUpstream) {
	t.Helper()
	sock := filepath.Join(shortDir(t), "up.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	u := &rawUpstream{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			go func() {
				defer c.Close()
				br, bw := bufio.NewReader(c), bufio.NewWriterSize(c, 64<<10)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if answer(bw, r) != nil || bw.Flush() != nil {
						return
					}
				}
			}()
		}
	}()
	return sock, u
}

// pattern is n bytes that differ with their offset and seed, so that a
// byte out of place shows.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9 + seed)
	}
	return b
}

// rawChunk is one chunk as it came to the client.
type rawChunk struct {
	ext  string
	data []byte
}

// readRawChunked reads a chunked body without decoding it away, so that
// the test sees the chunks and extensions the client got.
func readRawChunked(t *testing.T, br *bufio.Reader) (chunks []rawChunk, trailer string) {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("chunk head: %v", err)
		}
		line = strings.TrimSuffix(line, "\r\n")
		sizeHex, ext, _ := strings.Cut(line, ";")
		size, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil {
			t.Fatalf("chunk head %q: %v", line, err)
		}
		if size == 0 {
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("trailer: %v", err)
				}
				if l == "\r\n" {
					return chunks, trailer
				}
				trailer += l
			}
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(br, data); err != nil {
			t.Fatalf("chunk data: %v", err)
		}
		if crlf, _ := br.Peek(2); string(crlf) != "\r\n" {
			t.Fatalf("chunk of %d bytes not followed by CRLF but %q", size, crlf)
		}
		_, _ = br.Discard(2)
		chunks = append(chunks, rawChunk{ext, data})
	}
}

// Large chunks of a chunked answer (an archive) are relayed by splice,
// verbatim, extensions included; the head, small chunks and the end go
// through the copy. Parts of the body wait in the proxy's read buffer,
// parts in the socket. The client gets every byte in order, the body ends
// exactly (the next request on the same connections works), and dockerd's
// connection is reused.
func TestLargeChunksRelayedVerbatimAndConnectionReused(t *testing.T) {
	type piece struct {
		size  int
		ext   string
		pause bool // flush and wait before the chunk: it arrives apart
	}
	body := []piece{{512, "", false}, {40000, "", false}, {40000, "", true}, {70000, ";part=3", true}, {70000, ";part=4", false},
		{10, "", true}, {300000, "", false}, {50000, `;name="quoted;value"`, true}, {100, "", false}}
	upSock, up := startRawUpstream(t, func(w *bufio.Writer, r *http.Request) error {
		seed, _ := strconv.Atoi(r.URL.Query().Get("seed"))
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n")
		for i, p := range body {
			if p.pause {
				if err := w.Flush(); err != nil {
					return err
				}
				time.Sleep(5 * time.Millisecond) // let the proxy catch up (not an assertion)
			}
			fmt.Fprintf(w, "%x%s\r\n", p.size, p.ext)
			_, _ = w.Write(pattern(seed+i, p.size))
			_, _ = w.WriteString("\r\n")
		}
		_, _ = w.WriteString("0\r\nX-Checksum: none\r\n\r\n")
		return nil
	})
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	c := dialRaw(t, sock)
	br := bufio.NewReader(c)
	// archive.get is a stream (flushed as it comes); container.list is not.
	for round, path := range []string{"/v1.41/containers/a/archive?path=/x&seed=1", "/v1.41/containers/json?seed=2", "/v1.41/containers/a/archive?path=/x&seed=3"} {
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: d\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if resp.StatusCode != 200 || len(resp.TransferEncoding) != 1 {
			t.Fatalf("round %d: %s, transfer encoding %v", round, resp.Status, resp.TransferEncoding)
		}
		chunks, _ := readRawChunked(t, br)
		seed := []int{1, 2, 3}[round]
		var want, got bytes.Buffer
		for i, p := range body {
			want.Write(pattern(seed+i, p.size))
		}
		exts := map[string]bool{}
		for _, ch := range chunks {
			got.Write(ch.data)
			exts[ch.ext] = true
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("round %d: the client got %d bytes, not the %d sent (or not in order)", round, got.Len(), want.Len())
		}
		// Chunks 3 and 4 follow a large one: they went verbatim, by splice.
		if runtime.GOOS == "linux" && (!exts["part=3"] || !exts["part=4"] || !exts[`name="quoted;value"`]) {
			t.Errorf("round %d: extensions of spliced chunks lost: %v", round, exts)
		}
	}
	if n := up.conns.Load(); n != 1 {
		t.Errorf("dockerd saw %d connections for three answers on one client connection, want 1 (reused)", n)
	}
}

// A large fixed-length answer, partly buffered with its head, partly
// spliced, ends exactly where its length says: the next answer on the
// same daemon connection is intact.
func TestLargeFixedLengthBodyEndsExactly(t *testing.T) {
	const size = 1<<20 + 17
	upSock, up := startRawUpstream(t, func(w *bufio.Writer, r *http.Request) error {
		seed, _ := strconv.Atoi(r.URL.Query().Get("seed"))
		data := pattern(seed, size)
		fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", size)
		_, _ = w.Write(data[:3000])
		if err := w.Flush(); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond) // the rest arrives apart (not an assertion)
		_, err := w.Write(data[3000:])
		return err
	})
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	client := dockerClient(sock)
	for seed := range 3 {
		resp, err := client.Get(fmt.Sprintf("http://d/v1.41/containers/a/export?seed=%d", seed))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, pattern(seed, size)) {
			t.Fatalf("answer %d: %d bytes (%v), want the %d sent", seed, len(got), err, size)
		}
	}
	if n := up.conns.Load(); n != 1 {
		t.Errorf("dockerd saw %d connections for three answers, want 1 (reused)", n)
	}
}

// Broken framing after a spliced chunk ends the answer early for the
// client and the daemon connection is not reused.
func TestBrokenFramingAfterSplicedChunk(t *testing.T) {
	upSock, up := startRawUpstream(t, func(w *bufio.Writer, r *http.Request) error {
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		if r.URL.Query().Get("broken") == "" {
			_, _ = w.WriteString("3\r\nabc\r\n0\r\n\r\n")
			return nil
		}
		fmt.Fprintf(w, "%x\r\n", 100000)
		_, _ = w.Write(pattern(0, 100000))
		if err := w.Flush(); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
		_, _ = w.WriteString("\r\n" + strings.Repeat("z", 40000) + "\r\n")
		return nil
	})
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	client := dockerClient(sock)
	resp, err := client.Get("http://d/v1.41/containers/a/archive?path=/x&broken=1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("a body with broken framing read to its end (%d bytes)", len(got))
	}
	resp, err = client.Get("http://d/v1.41/containers/a/archive?path=/x")
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(got) != "abc" {
		t.Fatalf("next answer: %q, %v", got, err)
	}
	if n := up.conns.Load(); n != 2 {
		t.Errorf("dockerd saw %d connections, want 2 (the broken one not reused)", n)
	}
}

// Clients that hang up in the middle of a spliced answer leave no
// goroutine and no file descriptor (pipe, sockets) behind.
func TestClientLeavingMidSpliceLeaksNothing(t *testing.T) {
	upSock, _ := startRawUpstream(t, func(w *bufio.Writer, r *http.Request) error {
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		if r.URL.Path == "/_ping" {
			_, _ = w.WriteString("2\r\nOK\r\n0\r\n\r\n")
			return nil
		}
		data := pattern(0, 64<<10)
		for { // until the proxy hangs up
			fmt.Fprintf(w, "%x\r\n", len(data))
			_, _ = w.Write(data)
			if _, err := w.WriteString("\r\n"); err != nil {
				return err
			}
		}
	})
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	if status, _ := getStatus(t, dockerClient(sock), "http://d/_ping"); status != 200 {
		t.Fatal("warm-up failed")
	}
	dockerClient(sock).CloseIdleConnections()
	settle(t, runtime.NumGoroutine()+10, 1<<20)
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)
	for i := range 10 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(time.Minute)) // hang guard
		fmt.Fprintf(c, "GET /v1.41/containers/a/archive?path=/x HTTP/1.1\r\nHost: d\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := io.CopyN(io.Discard, resp.Body, int64(i+1)*300<<10); err != nil {
			t.Fatalf("client %d read %d bytes: %v", i, n, err)
		}
		c.Close()
	}
	settle(t, baseG, baseFD)
}

// benchRelay reads, per iteration, one answer of the fake upstream through
// the proxy to its end, and reports the process CPU per byte relayed
// (client, proxy and fake upstream together: the proxy is the part that
// changes).
func benchRelay(b *testing.B, path string, size int64, answer func(w *bufio.Writer, r *http.Request) error) {
	upSock, _ := startRawUpstream(b, answer)
	sock, _ := startProxy(b, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upSock},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	b.SetBytes(size)
	b.ReportAllocs()
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b.Loop() {
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: d\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != size {
			b.Fatalf("read %d bytes (%v), want %d", n, err, size)
		}
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkRelayArchive: a 16 MiB archive as dockerd sends it (32 KiB
// chunks).
func BenchmarkRelayArchive(b *testing.B) {
	const chunk, n = 32 << 10, 512
	var body bytes.Buffer
	data := pattern(1, chunk)
	for range n {
		fmt.Fprintf(&body, "%x\r\n", chunk)
		body.Write(data)
		body.WriteString("\r\n")
	}
	body.WriteString("0\r\n\r\n")
	benchRelay(b, "/v1.41/containers/a/archive?path=/big", chunk*n, func(w *bufio.Writer, r *http.Request) error {
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n")
		_, err := w.Write(body.Bytes())
		return err
	})
}

// BenchmarkRelayLogs: 2 MiB of log frames as dockerd sends them (a
// 108-byte frame per chunk, each written and flushed on its own).
func BenchmarkRelayLogs(b *testing.B) {
	const frame, n = 108, 2 << 20 / 108
	data := pattern(2, frame)
	benchRelay(b, "/v1.41/containers/a/logs?stdout=1", frame*n, func(w *bufio.Writer, r *http.Request) error {
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		for range n {
			fmt.Fprintf(w, "%x\r\n", frame)
			_, _ = w.Write(data)
			_, _ = w.WriteString("\r\n")
			if err := w.Flush(); err != nil {
				return err
			}
		}
		_, _ = w.WriteString("0\r\n\r\n")
		return nil
	})
}
