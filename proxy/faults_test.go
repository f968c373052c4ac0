package proxy_test

// Fault tests: a daemon that is absent, goes away or hangs; clients that
// hang up mid-stream or send their headers slowly; more clients than the
// connection cap. A fake upstream stands in for dockerd to inject the faults.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/proxy"
)

// restartableUpstream is a fake daemon on a fixed socket path that can be
// stopped and started again, as dockerd is on a restart.
type restartableUpstream struct {
	t    *testing.T
	sock string
	srv  *http.Server
}

func (u *restartableUpstream) start() {
	u.t.Helper()
	ln, err := net.Listen("unix", u.sock)
	if err != nil {
		u.t.Fatal(err)
	}
	u.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		_, _ = io.WriteString(w, "OK")
	})}
	go func() { _ = u.srv.Serve(ln) }()
}

func (u *restartableUpstream) stop() { u.srv.Close() } // closes kept-alive connections too

func getStatus(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// dockerd absent at start, then up, then gone mid-run, then back: 502 with
// a JSON message meanwhile, and recovery without restarting the proxy.
func TestDaemonAbsentGoneAndBack(t *testing.T) {
	up := &restartableUpstream{t: t, sock: filepath.Join(shortDir(t), "up.sock")}
	audit := &auditLog{}
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Auditor: audit, Upstream: proxy.Upstream{Address: "unix://" + up.sock}})
	client := dockerClient(sock)

	expect502 := func(when string) {
		t.Helper()
		status, body := getStatus(t, client, "http://d/v1.41/containers/json")
		if status != http.StatusBadGateway || !strings.Contains(body, `"message":"sockproxy cannot reach the Docker daemon at unix://`+up.sock) {
			t.Fatalf("%s: %d %s, want a 502 naming the socket", when, status, body)
		}
	}
	expectOK := func(when string) {
		t.Helper()
		for i := 0; i < 3; i++ { // several requests: kept-alive upstream connections get reused
			if status, body := getStatus(t, client, "http://d/v1.41/containers/json"); status != 200 || body != "OK" {
				t.Fatalf("%s: %d %q, want dockerd's answer", when, status, body)
			}
		}
	}
	expect502("daemon absent at start")
	up.start()
	expectOK("daemon started")
	up.stop()
	expect502("daemon gone mid-run")
	up.start()
	expectOK("daemon back")
	up.stop()

	statuses := map[int]int{}
	for _, ev := range audit.all() {
		statuses[ev.Status]++
	}
	if statuses[502] != 2 || statuses[200] != 6 {
		t.Errorf("audited statuses %v, want 2×502 and 6×200", statuses)
	}
}

// A hung daemon: a call that answers promptly is cut by the response header
// timeout with a 504; calls that legitimately wait, and streams, are not.
func TestHungUpstreamTimesOutOnlyPromptCalls(t *testing.T) {
	const timeout = 200 * time.Millisecond
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	upSock := handlerUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/containers/json"): // hung
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case strings.HasSuffix(r.URL.Path, "/wait"), strings.HasSuffix(r.URL.Path, "/stop"):
			time.Sleep(3 * timeout) // slower than the timeout, and legitimately so
			_, _ = io.WriteString(w, `{"StatusCode":0}`)
		case strings.HasSuffix(r.URL.Path, "/events"):
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			time.Sleep(3 * timeout) // an idle stream
			_, _ = io.WriteString(w, "event\n")
		}
	})
	audit := &auditLog{}
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Auditor: audit, ResponseHeaderTimeout: timeout,
		Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	client := dockerClient(sock)

	status, body := getStatus(t, client, "http://d/v1.41/containers/json")
	if status != http.StatusGatewayTimeout || !strings.Contains(body, "did not answer container.list within 200ms") {
		t.Fatalf("hung list: %d %s, want a 504 that says what timed out", status, body)
	}
	if evs := audit.all(); len(evs) != 1 || evs[0].Status != http.StatusGatewayTimeout || evs[0].Outcome != "allow" {
		t.Errorf("audit %+v", evs)
	}
	for _, path := range []string{"/v1.41/containers/x/wait", "/v1.41/containers/x/stop"} {
		resp, err := client.Post("http://d"+path, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != `{"StatusCode":0}` {
			t.Errorf("POST %s: %d %q, want the slow answer", path, resp.StatusCode, b)
		}
	}
	if status, body := getStatus(t, client, "http://d/v1.41/events"); status != 200 || body != "event\n" {
		t.Errorf("idle stream: %d %q", status, body)
	}
}

// settle waits until the process is back to at most goroutines goroutines
// and fds open files, and fails the test if it does not get there.
func settle(t *testing.T, goroutines, fds int) {
	t.Helper()
	var g, f int
	for range 200 {
		g, f = runtime.NumGoroutine(), openFDs(t)
		if g <= goroutines && f <= fds {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("leak: %d goroutines (was %d), %d fds (was %d)\n%s", g, goroutines, f, fds, buf[:runtime.Stack(buf, true)])
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// Clients that hang up mid-stream, mid-hijack, before the answer, or that
// send their headers too slowly leave no goroutine and no file descriptor
// behind, in the proxy or upstream.
func TestDepartedAndSlowClientsLeakNothing(t *testing.T) {
	upSock := handlerUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Upgrade") == "tcp": // attach: hijack, stream until the proxy closes
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nhijacked\n")
			_ = brw.Flush()
			_, _ = io.Copy(io.Discard, brw)
		case strings.HasSuffix(r.URL.Path, "/events"): // a live stream
			for {
				if _, err := io.WriteString(w, "event\n"); err != nil {
					return
				}
				http.NewResponseController(w).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		case strings.HasSuffix(r.URL.Path, "/wait"): // no answer until the client leaves
			<-r.Context().Done()
		default:
			_, _ = io.WriteString(w, "OK")
		}
	})
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, ReadHeaderTimeout: 300 * time.Millisecond,
		Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	// Warm up, so that the pooled upstream connection is part of the baseline.
	if status, _ := getStatus(t, dockerClient(sock), "http://d/_ping"); status != 200 {
		t.Fatal("warm-up failed")
	}
	dockerClient(sock).CloseIdleConnections()
	settle(t, runtime.NumGoroutine()+10, 1<<20) // let the warm-up connection's goroutines end
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)

	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(time.Minute)) // hang guard
		return c, bufio.NewReader(c)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(4)
		go func() { // mid-stream
			defer wg.Done()
			c, br := dial()
			defer c.Close()
			fmt.Fprintf(c, "GET /v1.41/events HTTP/1.1\r\nHost: d\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || line == "" {
				t.Errorf("stream %d: %q %v", i, line, err)
			}
		}()
		go func() { // mid-hijack
			defer wg.Done()
			c, br := dial()
			defer c.Close()
			fmt.Fprintf(c, "POST /v1.41/containers/x/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
			if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Errorf("attach %d: %v", i, err)
				return
			}
			if line, err := br.ReadString('\n'); err != nil || line != "hijacked\n" {
				t.Errorf("attach %d: %q %v", i, line, err)
			}
		}()
		go func() { // before the answer
			defer wg.Done()
			c, _ := dial()
			fmt.Fprintf(c, "POST /v1.41/containers/x/wait HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n")
			time.Sleep(50 * time.Millisecond) // let it reach the upstream (not an assertion)
			c.Close()
		}()
		go func() { // slow headers: the proxy hangs up after ReadHeaderTimeout
			defer wg.Done()
			c, br := dial()
			defer c.Close()
			fmt.Fprintf(c, "GET /_ping HTTP/1.1\r\nHost: d\r\nX-Slow: ")
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("slow client %d: %v, want the proxy to close the connection", i, err)
			}
		}()
	}
	wg.Wait()
	settle(t, baseG, baseFD)
}

// Beyond MaxConnections a new connection gets a 503 that says why; once a
// connection closes, new ones are served again.
func TestConnectionCap(t *testing.T) {
	upSock := handlerUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "OK") })
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, MaxConnections: 3, Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// The held connections are accepted (and counted) in order; wait until
	// a fourth is refused.
	var resps []*http.Response
	for range 100 {
		if resps = rawExchange(t, sock, "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"); len(resps) == 1 && resps[0].StatusCode == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(resps) != 1 || resps[0].StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("over the cap: %s, want one 503", describe(resps))
	}
	if msg := jsonMessage(t, resps[0]); !strings.Contains(msg, "maximum of 3 connections") {
		t.Errorf("message %q does not say why", msg)
	}
	held[0].Close()
	for range 100 {
		if resps = rawExchange(t, sock, "GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"); len(resps) == 1 && resps[0].StatusCode == 200 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Fatalf("after a connection closed: %s, want 200", describe(resps))
	}
	for _, c := range held[1:] {
		c.Close()
	}
}
