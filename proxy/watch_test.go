package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/proxy"
)

// Waiting requests are watched for a hang-up without a goroutine each, and
// a client that leaves cuts its upstream call: the daemon sees its
// connection end, and the proxy is back to its goroutines and descriptors.
func TestClientWatchHasNoGoroutinePerRequestAndCutsOnHangup(t *testing.T) {
	const streams = 20
	var started, ended atomic.Int64
	upSock := handlerUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/events"): // a quiet stream
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
		case strings.HasSuffix(r.URL.Path, "/wait"): // no answer yet
		default:
			_, _ = io.WriteString(w, "OK")
			return
		}
		started.Add(1)
		<-r.Context().Done() // the proxy closed the daemon connection
		ended.Add(1)
	})
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	if status, _ := getStatus(t, dockerClient(sock), "http://d/_ping"); status != 200 {
		t.Fatal("warm-up failed")
	}
	dockerClient(sock).CloseIdleConnections()
	settle(t, runtime.NumGoroutine()+10, 1<<20)
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)

	var conns []net.Conn
	for i := range streams {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(time.Minute)) // hang guard
		conns = append(conns, c)
		if i%2 == 0 {
			fmt.Fprintf(c, "GET /v1.41/events HTTP/1.1\r\nHost: d\r\n\r\n")
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
				t.Fatalf("stream %d: %v", i, err)
			}
		} else {
			fmt.Fprintf(c, "POST /v1.41/containers/x/wait HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n")
		}
	}
	waitFor(t, "every request to reach the daemon", func() bool { return started.Load() == streams })
	if n := goroutinesIn("proxy.watchClient"); n != 0 {
		t.Errorf("%d goroutines watch clients for %d waiting requests, want none (one poller)", n, streams)
	}
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, "every daemon call to be cut", func() bool { return ended.Load() == streams })
	settle(t, baseG, baseFD)
}

// A request pipelined behind one that waits ends the watch without
// cutting anything: both are answered, in order.
func TestClientWatchLeavesPipelinedRequest(t *testing.T) {
	release := make(chan struct{})
	var waiting atomic.Bool
	var cut atomic.Bool
	upSock := handlerUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/wait") {
			_, _ = io.WriteString(w, "OK")
			return
		}
		waiting.Store(true)
		select {
		case <-release:
			_, _ = io.WriteString(w, `{"StatusCode":0}`)
		case <-r.Context().Done():
			cut.Store(true)
		}
	})
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	c := dialRaw(t, sock)
	fmt.Fprintf(c, "POST /v1.41/containers/x/wait HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n")
	waitFor(t, "the wait to reach the daemon", waiting.Load)
	fmt.Fprintf(c, "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
	time.Sleep(50 * time.Millisecond) // let the watch see it (not an assertion)
	close(release)
	br := bufio.NewReader(c)
	for _, want := range []string{`{"StatusCode":0}`, "OK"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer %q: %v", want, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
	if cut.Load() {
		t.Error("the pipelined request cut the waiting call")
	}
}

// A client that half-closes while its request waits is gone, as a reader
// would see it: the call is cut.
func TestClientWatchCutsOnHalfClose(t *testing.T) {
	done := make(chan struct{})
	var once sync.Once
	upSock := handlerUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		once.Do(func() { close(done) })
	})
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1.41/containers/x/wait HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n")
	time.Sleep(50 * time.Millisecond) // let it reach the daemon (not an assertion)
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second): // hang guard
		t.Fatal("the daemon call was not cut after the client half-closed")
	}
}

// waitFor polls cond (hang guard: 30 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// goroutinesIn counts the goroutines with fn on their stack.
func goroutinesIn(fn string) int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}
