package proxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"testing"

	"github.com/sockproxy/sockproxy/internal/dockertest"
	"github.com/sockproxy/sockproxy/proxy"
)

// BenchmarkPing: the smallest answer (see benchGet).
func BenchmarkPing(b *testing.B) { benchGet(b, "/v1.41/_ping") }

// BenchmarkList: the bench's list request, a bodyless request with a
// chunked JSON answer (see benchGet).
func BenchmarkList(b *testing.B) { benchGet(b, "/v1.41/containers/json") }

// benchGet measures GET path through the real dockerd, directly and
// through the proxy (route classifier, allow-all decider, no audit), on
// one keep-alive connection each.
func benchGet(b *testing.B, path string) {
	upstream := dockertest.Require(b)
	sock, _ := startProxy(b, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upstream},
		Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	for _, c := range []struct{ name, sock string }{{"direct", upstream}, {"proxied", sock}} {
		b.Run(c.name, func(b *testing.B) {
			client := dockerClient(c.sock)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Get("http://d" + path)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// BenchmarkArchive64MiB streams a 64 MiB file out of a container (GET
// .../archive, a chunked response), directly and through the proxy: the
// cost of flushing as bytes arrive.
func BenchmarkArchive64MiB(b *testing.B) {
	upstream := dockertest.Require(b)
	sock, _ := startProxy(b, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upstream},
		Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	name := "sp-test-proxy-bench-" + randomSuffix()
	b.Cleanup(func() { _ = exec.Command("docker", "-H", "unix://"+upstream, "rm", "-f", name).Run() })
	if out, err := exec.Command("docker", "-H", "unix://"+upstream, "run", "--name", name, dockertest.Image,
		"sh", "-c", "head -c 67108864 /dev/urandom > /big").CombinedOutput(); err != nil {
		b.Fatalf("prepare: %v %s", err, out)
	}
	for _, c := range []struct{ name, sock string }{{"direct", upstream}, {"proxied", sock}} {
		b.Run(c.name, func(b *testing.B) {
			client := dockerClient(c.sock)
			b.SetBytes(64 << 20)
			for b.Loop() {
				resp, err := client.Get("http://d/v1.41/containers/" + name + "/archive?path=/big")
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || n < 64<<20 {
					b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
				}
			}
		})
	}
}

// listAnswerSize is the size of the bench's list answer (three idle
// containers): dockerd sends it chunked, head, chunk and last chunk in one
// write.
const listAnswerSize = 2447

// BenchmarkRelayList relays a list-sized JSON answer as dockerd sends it
// (one chunk, all in one write); BenchmarkRelayListFixed the same body with
// a Content-Length. The difference is the cost of the chunked relay of a
// small answer.
func BenchmarkRelayList(b *testing.B) {
	data := bytes.Repeat([]byte("x"), listAnswerSize)
	benchRelay(b, "/v1.41/containers/json", listAnswerSize, func(w *bufio.Writer, r *http.Request) error {
		fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", len(data))
		_, _ = w.Write(data)
		_, err := w.WriteString("\r\n0\r\n\r\n")
		return err
	})
}

func BenchmarkRelayListFixed(b *testing.B) {
	data := bytes.Repeat([]byte("x"), listAnswerSize)
	benchRelay(b, "/v1.41/containers/json", listAnswerSize, func(w *bufio.Writer, r *http.Request) error {
		fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(data))
		_, err := w.Write(data)
		return err
	})
}
