package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/proxy"
)

// arrival is a request as the fake daemon received it, or as the decider
// allowed it.
type arrival struct {
	method, path string
	query        url.Values
	body         []byte // judged bodies only
	judged       bool
	upgrade      bool
}

// recordingDaemon is a fake dockerd that records every request it receives
// and counts its open connections, so a test can wait until it is quiet.
type recordingDaemon struct {
	sock  string
	mu    sync.Mutex
	got   []arrival
	conns atomic.Int64
}

func startRecordingDaemon(f *testing.F) *recordingDaemon {
	d := &recordingDaemon{sock: filepath.Join(shortDir(f), "up.sock")}
	ln, err := net.Listen("unix", d.sock)
	if err != nil {
		f.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			u, err := url.ParseRequestURI(r.RequestURI)
			if err != nil {
				u = &url.URL{Path: "unparseable " + r.RequestURI}
			}
			q, _ := url.ParseQuery(u.RawQuery)
			d.mu.Lock()
			d.got = append(d.got, arrival{method: r.Method, path: u.EscapedPath(), query: q, body: body, upgrade: r.Header.Get("Upgrade") != ""})
			d.mu.Unlock()
			_, _ = io.WriteString(w, "OK")
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				d.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				d.conns.Add(-1)
			}
		},
	}
	go func() { _ = srv.Serve(ln) }()
	f.Cleanup(func() { srv.Close() })
	return d
}

// take returns and forgets what arrived, once every connection to the
// daemon is closed (so nothing is still on its way).
func (d *recordingDaemon) take(t *testing.T) []arrival {
	for i := 0; d.conns.Load() != 0; i++ {
		if i > 2000 {
			t.Fatalf("the fake daemon still has %d connections open", d.conns.Load())
		}
		time.Sleep(time.Millisecond)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	got := d.got
	d.got = nil
	return got
}

// socketPair is a connected pair of Unix stream sockets: a pipe with
// half-close, whose server end the proxy serves directly.
func socketPair(t *testing.T) (client, server *net.UnixConn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1]
}

// FuzzServeRequest throws raw bytes at a connection of the proxy, in front
// of a fake daemon that records what reaches it. Invariants: the proxy
// never panics or hangs, and every request that reaches the daemon is one
// the decider allowed: same method, path and query, and for judged bodies
// the same bytes; only hijacking operations may ask to upgrade.
func FuzzServeRequest(f *testing.F) {
	for _, seed := range []string{
		"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n",
		"POST /v1.41/containers/create?name=x HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"Image\":\"busy\"}",
		"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"Ima\r\nb\r\nge\":\"busy\"}\r\n0\r\n\r\n",
		"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\nPOST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n",
		"POST /v1.41/containers/abc/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nstdin bytes",
		"GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
		"POST /v1.41/exec/abc/start HTTP/1.1\r\nHost: d\r\nExpect: 100-continue\r\nContent-Length: 13\r\n\r\n{\"Detach\":true}",
		"GET /v1.41/containers/a%2fb/json HTTP/1.1\r\nHost: d\r\n\r\n",
		"PUT /v1.41/containers/x/archive?path=/ HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntar\r\n0\r\n\r\n",
		"GET http://d/v1.41/info HTTP/1.1\r\nHost: e\r\n\r\n",
		"GET /_ping HTTP/1.0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	daemon := startRecordingDaemon(f)
	classifier := testClassifier()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	f.Fuzz(func(t *testing.T, raw []byte) {
		var mu sync.Mutex
		var allowed []arrival
		dec := proxy.DeciderFunc(func(_ context.Context, r *proxy.Request) proxy.Decision {
			op := r.Operation
			if len(op.Path)%3 == 0 || bytes.Contains(r.Body, []byte("Privileged")) {
				return proxy.Decision{Reasons: []string{"refused by the fuzz decider"}}
			}
			mu.Lock()
			allowed = append(allowed, arrival{method: op.Method, path: op.Path, query: op.Query, body: r.Body, judged: op.JudgeBody, upgrade: op.Hijack})
			mu.Unlock()
			return proxy.Decision{Allow: true}
		})
		p, err := proxy.New(proxy.Config{Classifier: classifier, Decider: dec, Logger: logger,
			Upstream: proxy.Upstream{Address: "unix://" + daemon.sock}})
		if err != nil {
			t.Fatal(err)
		}
		client, server := socketPair(t)
		defer client.Close()
		_ = client.SetDeadline(time.Now().Add(30 * time.Second)) // hang guard
		served := make(chan struct{})
		go func() {
			defer close(served)
			p.ServeConn(server)
		}()
		go func() {
			_, _ = client.Write(raw)
			_ = client.CloseWrite()
		}()
		_, _ = io.Copy(io.Discard, client) // until the proxy closes
		select {
		case <-served:
		case <-time.After(30 * time.Second):
			t.Fatal("the proxy did not finish serving the connection")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}

		for _, got := range daemon.take(t) {
			i := matchAllowed(allowed, got)
			if i < 0 {
				t.Fatalf("the daemon received a request nobody allowed: %s\nallowed: %s", describeArrival(got), describeArrivals(allowed))
			}
			allowed = append(allowed[:i], allowed[i+1:]...)
		}
	})
}

// matchAllowed finds the allowed request that got is, or -1.
func matchAllowed(allowed []arrival, got arrival) int {
	for i, a := range allowed {
		if a.method != got.method || a.path != got.path || !sameQuery(a.query, got.query) {
			continue
		}
		if a.judged && !bytes.Equal(a.body, got.body) {
			continue
		}
		if got.upgrade && !a.upgrade {
			continue
		}
		return i
	}
	return -1
}

func sameQuery(a, b url.Values) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func describeArrival(a arrival) string {
	return fmt.Sprintf("%s %s %v body=%q upgrade=%v", a.method, a.path, a.query, a.body, a.upgrade)
}

func describeArrivals(as []arrival) string {
	var parts []string
	for _, a := range as {
		parts = append(parts, describeArrival(a))
	}
	return strings.Join(parts, "; ")
}
