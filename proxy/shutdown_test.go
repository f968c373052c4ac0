package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/proxy"
)

// handlerUpstream serves h on a Unix socket, as a stand-in daemon.
func handlerUpstream(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(shortDir(t), "up.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return sock
}

// unmanagedProxy starts a proxy whose shutdown the test drives itself.
func unmanagedProxy(t *testing.T, upstream string) (string, *proxy.Proxy, <-chan error) {
	t.Helper()
	p, err := proxy.New(proxy.Config{Classifier: testClassifier(), Decider: proxy.AllowAll, Logger: testLogger(t),
		Upstream: proxy.Upstream{Address: "unix://" + upstream}})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shortDir(t), "p.sock")
	ln, err := proxy.ListenUnix(sock, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	return sock, p, served
}

func TestShutdownLetsInFlightRequestsFinish(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	up := handlerUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	sock, p, served := unmanagedProxy(t, up)

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := dockerClient(sock).Get("http://d/v1.41/containers/json")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-arrived
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shut <- p.Shutdown(ctx)
	}()
	// The listener closes at once: the socket file goes away.
	for _, err := os.Stat(sock); err == nil; _, err = os.Stat(sock) {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "done" {
		t.Fatalf("in-flight request: %q %v", r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := net.Dial("unix", sock); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

// Streams and hijacked connections that outlive the bound are cut.
func TestShutdownCutsStreamsAndHijackedConnections(t *testing.T) {
	up := handlerUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "tcp" {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nhijacked\n")
			_ = brw.Flush()
			_, _ = io.Copy(io.Discard, brw) // until the proxy closes its side
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "streaming\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	sock, p, served := unmanagedProxy(t, up)

	resp, err := dockerClient(sock).Get("http://d/v1.41/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := bufio.NewReader(resp.Body)
	if line, err := events.ReadString('\n'); err != nil || line != "streaming\n" {
		t.Fatalf("stream: %q %v", line, err)
	}

	hijacked, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer hijacked.Close()
	_, _ = io.WriteString(hijacked, "POST /v1.41/containers/x/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	hr := bufio.NewReader(hijacked)
	up101, err := http.ReadResponse(hr, nil)
	if err != nil || up101.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", up101, err)
	}
	if line, err := hr.ReadString('\n'); err != nil || line != "hijacked\n" {
		t.Fatalf("hijacked stream: %q %v", line, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("shutdown with open streams: %v, want the deadline", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	_, _ = io.ReadAll(events) // returns only because the proxy cut the stream
	if rest, _ := io.ReadAll(hr); len(rest) != 0 {
		t.Errorf("hijacked connection got %q after shutdown", rest)
	}
}

// Response headers reach the client before any body byte (docker run waits
// for the headers of .../wait), and a client that goes away cancels the
// upstream request.
func TestHeadersFlushedAndClientGoneCancelsUpstream(t *testing.T) {
	cancelled := make(chan struct{})
	up := handlerUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
		close(cancelled)
	})
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + up}})
	resp, err := dockerClient(sock).Post("http://d/v1.41/containers/x/wait?condition=next-exit", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	resp.Body.Close() // unread body: the client drops the connection
	<-cancelled
}

func TestTCPCallersAreAnonymous(t *testing.T) {
	upstream := handlerUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "OK") })
	dec := &recorder{}
	p, err := proxy.New(proxy.Config{Classifier: testClassifier(), Decider: dec, Logger: testLogger(t),
		Upstream: proxy.Upstream{Address: "unix://" + upstream}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Serve(ln) }()
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	resp, err := http.Get("http://" + ln.Addr().String() + "/_ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if reqs := dec.requests(); len(reqs) != 1 || reqs[0].Caller.Known || reqs[0].Caller.UID != 0 || reqs[0].Caller.PID != 0 {
		t.Errorf("TCP caller %+v, want anonymous", reqs)
	}
}
