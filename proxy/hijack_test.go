package proxy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// rawHijack sends a hijacking request without asking for an upgrade, so
// dockerd answers "200 OK" and streams raw. It writes stdin, half-closes
// when told to, and returns everything that comes back until dockerd closes.
func rawHijack(t *testing.T, sock, method, path, body, stdin string, halfClose bool) (status int, header http.Header, output string) {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute)) // hang guard
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", method, path, len(body), body)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, stdin); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		if err := conn.(*net.UnixConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(out)
}

func TestAttachWithoutUpgrade(t *testing.T) {
	sock := e2eProxy(t)
	name := containerName(t)
	dockerOK(t, sock, nil, "run", "-d", "-i", "--name", name, dockertest.Image, "sh", "-c", "read x; echo got-$x")
	status, header, out := rawHijack(t, sock, "POST", "/v1.41/containers/"+name+"/attach?stream=1&stdin=1&stdout=1", "", "abc\n", false) // dockerd ends an attach when its stdin ends
	if status != 200 || header.Get("Content-Type") != "application/vnd.docker.raw-stream" {
		t.Fatalf("answer %d %v, want dockerd's raw 200", status, header)
	}
	// Multiplexed: an 8-byte frame header (stream 1 = stdout), then the line.
	if !strings.Contains(out, "\x01\x00\x00\x00\x00\x00\x00\x08got-abc\n") {
		t.Errorf("output %q", out)
	}
}

// exec start without upgrade: stdin ends with a half-close, cat exits, and
// its output still arrives.
func TestExecStartWithoutUpgrade(t *testing.T) {
	sock := e2eProxy(t)
	name := containerName(t)
	dockerOK(t, sock, nil, "run", "-d", "--name", name, dockertest.Image, "sleep", "600")
	resp, err := dockerClient(sock).Post("http://d/v1.41/containers/"+name+"/exec", "application/json",
		strings.NewReader(`{"AttachStdin":true,"AttachStdout":true,"Cmd":["cat"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || created.ID == "" {
		t.Fatalf("exec create: %d", resp.StatusCode)
	}
	status, _, out := rawHijack(t, sock, "POST", "/v1.41/exec/"+created.ID+"/start", `{"Detach":false,"Tty":false}`, "hi\n", true)
	if status != 200 || !strings.HasSuffix(out, "\x01\x00\x00\x00\x00\x00\x00\x03hi\n") {
		t.Errorf("exec start: %d %q", status, out)
	}
}

func TestAttachWithoutUpgradeToMissingContainer(t *testing.T) {
	sock := e2eProxy(t)
	status, header, out := rawHijack(t, sock, "POST", "/v1.41/containers/sp-test-proxy-missing-"+randomSuffix()+"/attach?stream=1&stdout=1", "", "", true)
	// dockerd hijacks before it looks the container up: its 404 is raw too.
	if status != http.StatusNotFound || header.Get("Content-Type") != "application/vnd.docker.raw-stream" || !strings.HasPrefix(out, "No such container") {
		t.Errorf("answer %d %v %q, want dockerd's raw 404", status, header, out)
	}
}
