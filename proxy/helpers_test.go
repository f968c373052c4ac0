package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/proxy"
)

// shortDir is a temporary directory with a short path: Unix socket paths
// are limited to 108 bytes, which t.TempDir() can exceed.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// testLogger sends the proxy's logs to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// startProxy runs a proxy on a fresh socket and returns the socket path.
// Missing Classifier defaults to the test classifier, missing Upstream to
// the real dockerd.
func startProxy(t testing.TB, cfg proxy.Config) (string, *proxy.Proxy) {
	t.Helper()
	if cfg.Classifier == nil {
		cfg.Classifier = testClassifier()
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shortDir(t), "proxy.sock")
	ln, err := proxy.ListenUnix(sock, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return sock, p
}

// recorder is a Decider that records what it was asked and answers with
// verdict (allow when nil).
type recorder struct {
	mu      sync.Mutex
	reqs    []proxy.Request
	verdict func(*proxy.Request) proxy.Decision
}

func (r *recorder) Decide(_ context.Context, req *proxy.Request) proxy.Decision {
	r.mu.Lock()
	r.reqs = append(r.reqs, *req)
	r.mu.Unlock()
	if r.verdict != nil {
		return r.verdict(req)
	}
	return proxy.Decision{Allow: true}
}

func (r *recorder) requests() []proxy.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]proxy.Request(nil), r.reqs...)
}

// auditLog is an Auditor that keeps events in memory.
type auditLog struct {
	mu     sync.Mutex
	events []proxy.AuditEvent
	err    error // returned by Ready
}

func (a *auditLog) Ready() error { a.mu.Lock(); defer a.mu.Unlock(); return a.err }
func (a *auditLog) Audit(ev *proxy.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, *ev)
	return nil
}
func (a *auditLog) all() []proxy.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]proxy.AuditEvent(nil), a.events...)
}

// docker runs the real docker CLI against the socket at sock.
func docker(t testing.TB, ctx context.Context, sock string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+shortDir(t), "DOCKER_CLI_HINTS=false")
	return cmd
}

// dockerOK runs the docker CLI and fails the test unless it succeeds; it
// returns stdout.
func dockerOK(t testing.TB, sock string, stdin io.Reader, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := docker(t, ctx, sock, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// rawExchange writes raw bytes to the socket and returns every response
// until the server closes the connection (the last request should say
// Connection: close). A deadline guards against a hang.
// dialRaw connects to the proxy at sock for hand-written HTTP, closed when
// the test ends, with a minute's deadline as a hang guard.
func dialRaw(t testing.TB, sock string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(time.Minute)) // hang guard
	return c
}

func rawExchange(t testing.TB, sock, raw string) []*http.Response {
	t.Helper()
	conn := dialRaw(t, sock)
	defer conn.Close() // the exchange ends here, not with the test
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var out []*http.Response
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		if resp.StatusCode == http.StatusContinue {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
		if resp.Close {
			return out
		}
	}
}

// fakeUpstream is a stand-in daemon for fault injection: it records every
// request that reaches it.
type fakeUpstream struct {
	sock string
	srv  *http.Server
	mu   sync.Mutex
	got  []string // "METHOD PATH CL=<length> TE=<transfer-encodings> BODY"
}

func startFakeUpstream(t testing.TB, sock string) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{sock: sock}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.got = append(f.got, fmt.Sprintf("%s %s CL=%d TE=%v %s", r.Method, r.URL.Path, r.ContentLength, r.TransferEncoding, body))
		f.mu.Unlock()
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "OK")
	})}
	go func() { _ = f.srv.Serve(ln) }()
	t.Cleanup(func() { f.srv.Close() })
	return f
}

func (f *fakeUpstream) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}
