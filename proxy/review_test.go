package proxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/proxy"
)

// dockerd dying right after a spliced chunk, in the middle of the next
// chunk's head, ends the client's answer with an error: the splicer's peek
// of the framing sees the end of stream, instead of waiting for the rest of
// a head that will never come (the socket stays readable with the same
// partial bytes, so no further readiness edge arrives).
func TestSplicedChunkThenDaemonClosesMidHead(t *testing.T) {
	upSock, _ := startRawUpstream(t, func(w *bufio.Writer, r *http.Request) error {
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		fmt.Fprintf(w, "%x\r\n", 100000)
		_, _ = w.Write(pattern(0, 100000))
		_, _ = w.WriteString("\r\n1")
		_ = w.Flush()
		return errors.New("dockerd went away") // closes the connection
	})
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second)) // hang guard, not a speed bound
	fmt.Fprintf(c, "GET /v1.41/containers/a/archive?path=/x HTTP/1.1\r\nHost: d\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the answer hung after %d bytes: the proxy waits for the rest of a chunk head dockerd will never send", n)
	}
	if err == nil {
		t.Fatalf("a body cut by dockerd read to its end (%d bytes)", n)
	}
	if n != 100000 {
		t.Errorf("read %d bytes of chunk data before the cut, want 100000", n)
	}
}

// Bytes dockerd sent after a response without a body (a 204 here) are not
// the next caller's answer: the daemon connection is out of step and is
// not put back in the pool, so the next request gets its own answer.
func TestBytesAfterBodylessAnswerNotHandedOn(t *testing.T) {
	upSock, up := startRawUpstream(t, func(w *bufio.Writer, r *http.Request) error {
		if r.Method == http.MethodDelete {
			_, _ = w.WriteString("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
			return nil
		}
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
		return nil
	})
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	client := dockerClient(sock)
	req, _ := http.NewRequest(http.MethodDelete, "http://d/v1.41/containers/a", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: status %d, want 204", resp.StatusCode)
	}
	status, body := getStatus(t, dockerClient(sock), "http://d/_ping")
	if status != 200 || body != "OK" {
		t.Fatalf("the next caller got %d %q, want 200 \"OK\" (its own answer)", status, body)
	}
	if n := up.conns.Load(); n != 2 {
		t.Errorf("dockerd saw %d connections, want 2 (the one out of step not reused)", n)
	}
}
