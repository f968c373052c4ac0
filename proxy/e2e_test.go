package proxy_test

// End-to-end tests: the real docker CLI talks to a proxy started in-process
// on a temporary socket, in front of the real dockerd.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
	"github.com/sockproxy/sockproxy/proxy"
)

// e2eProxy starts an allow-all proxy in front of the real dockerd.
func e2eProxy(t *testing.T) string {
	t.Helper()
	upstream := dockertest.Require(t)
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upstream}})
	return sock
}

// containerName is a unique name for a container this test owns; it is
// removed (through dockerd directly) when the test ends.
func containerName(t *testing.T) string {
	t.Helper()
	name := "sp-test-proxy-" + randomSuffix()
	t.Cleanup(func() { _ = exec.Command("docker", "-H", "unix://"+dockertest.Socket(), "rm", "-f", name).Run() })
	return name
}

func TestDockerVersionAndInfo(t *testing.T) {
	sock := e2eProxy(t)
	out := dockerOK(t, sock, nil, "version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}")
	if !strings.HasPrefix(out, "1.") || !strings.Contains(out, "linux") {
		t.Errorf("docker version: %q", out)
	}
	out = dockerOK(t, sock, nil, "info", "--format", "{{.OSType}} {{.ServerVersion}}")
	if !strings.HasPrefix(out, "linux ") {
		t.Errorf("docker info: %q", out)
	}
}

func TestDockerRun(t *testing.T) {
	sock := e2eProxy(t)
	out := dockerOK(t, sock, nil, "run", "--rm", "--name", containerName(t), dockertest.Image, "echo", "hi")
	if out != "hi\n" {
		t.Errorf("docker run printed %q, want %q", out, "hi\n")
	}
}

// The CLI half-closes its side when stdin ends; cat only exits, and its
// output only arrives, if the proxy passes that on and keeps reading.
func TestDockerRunStdinHalfClose(t *testing.T) {
	sock := e2eProxy(t)
	out := dockerOK(t, sock, strings.NewReader("hi\n"), "run", "-i", "--rm", "--name", containerName(t), dockertest.Image, "cat")
	if out != "hi\n" {
		t.Errorf("echo hi | docker run -i cat printed %q", out)
	}
}

func TestDockerExecStdinHalfClose(t *testing.T) {
	sock := e2eProxy(t)
	name := containerName(t)
	dockerOK(t, sock, nil, "run", "-d", "--name", name, dockertest.Image, "sleep", "600")
	out := dockerOK(t, sock, strings.NewReader("hi\n"), "exec", "-i", name, "cat")
	if out != "hi\n" {
		t.Errorf("echo hi | docker exec -i cat printed %q", out)
	}
}

// docker logs -f must deliver lines while the container is still writing:
// the second line is written only after the first has arrived.
func TestDockerLogsFollow(t *testing.T) {
	sock := e2eProxy(t)
	name := containerName(t)
	dockerOK(t, sock, nil, "run", "-d", "--name", name, dockertest.Image, "sh", "-c", "echo first; exec sleep 600")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := docker(t, ctx, sock, "logs", "-f", name)
	stdout, err := logs.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := logs.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = logs.Wait() }()
	lines := bufio.NewScanner(stdout)
	expectLine(t, lines, "first")
	// PID 1's stdout is the container's log; write to it from an exec.
	dockerOK(t, sock, nil, "exec", name, "sh", "-c", "echo second > /proc/1/fd/1")
	expectLine(t, lines, "second")
}

func expectLine(t *testing.T, lines *bufio.Scanner, want string) {
	t.Helper()
	if !lines.Scan() {
		t.Fatalf("stream ended before %q: %v", want, lines.Err())
	}
	if got := lines.Text(); got != want {
		t.Fatalf("got line %q, want %q", got, want)
	}
}

// docker events must stay open however long nothing happens (the proxy has
// no idle timeout at all; the test idles 5 s to stay quick) and then deliver.
func TestDockerEventsSurvivesIdle(t *testing.T) {
	sock := e2eProxy(t)
	label := "sp-test-proxy=" + randomSuffix()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	events := docker(t, ctx, sock, "events", "--filter", "label="+label, "--format", "{{.Type}} {{.Action}}")
	stdout, err := events.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = events.Wait() }()
	time.Sleep(5 * time.Second) // idle period, not an assertion
	dockerOK(t, sock, nil, "create", "--label", label, "--name", containerName(t), dockertest.Image, "true")
	expectLine(t, bufio.NewScanner(stdout), "container create")
}

func TestDockerCpLargeFileBothWays(t *testing.T) {
	sock := e2eProxy(t)
	name := containerName(t)
	dockerOK(t, sock, nil, "create", "--name", name, dockertest.Image, "true")

	dir := shortDir(t)
	src := filepath.Join(dir, "big")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, 64<<20+12345); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := hex.EncodeToString(h.Sum(nil))

	dockerOK(t, sock, nil, "cp", src, name+":/big")
	back := filepath.Join(dir, "back")
	dockerOK(t, sock, nil, "cp", name+":/big", back)
	if got := fileSHA256(t, back); got != want {
		t.Fatalf("copied back sha256 %s, sent %s", got, want)
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// docker attach relays stdin to a running container and its output back.
// Stdin stays open until the output arrived: when stdin ends first, the CLI
// stops reading output as soon as the container exits, proxy or not.
func TestDockerAttach(t *testing.T) {
	sock := e2eProxy(t)
	name := containerName(t)
	dockerOK(t, sock, nil, "run", "-d", "-i", "--name", name, dockertest.Image, "sh", "-c", "read x; echo got-$x")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	attach := docker(t, ctx, sock, "attach", name)
	stdin, err := attach.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := attach.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := attach.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "hello\n"); err != nil {
		t.Fatal(err)
	}
	expectLine(t, bufio.NewScanner(stdout), "got-hello")
	stdin.Close()
	if err := attach.Wait(); err != nil {
		t.Errorf("docker attach: %v", err)
	}
}

func TestDockerBuildFromScratch(t *testing.T) {
	sock := e2eProxy(t)
	dir := shortDir(t)
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("static file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY f /f\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := "sp-test-proxy-build-" + randomSuffix() + ":latest"
	t.Cleanup(func() { _ = exec.Command("docker", "-H", "unix://"+dockertest.Socket(), "rmi", "-f", tag).Run() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := docker(t, ctx, sock, "build", "-t", tag, dir)
	build.Env = append(build.Env, "DOCKER_BUILDKIT=0") // no buildx plugin here: the classic builder
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	out := dockerOK(t, sock, nil, "image", "inspect", "--format", "{{len .RootFS.Layers}}", tag)
	if out != "1\n" {
		t.Errorf("built image has %q layers, want 1", out)
	}
}

func TestDockerCLIShowsRefusal(t *testing.T) {
	upstream := dockertest.Require(t)
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.ReadOnlyDecider, Upstream: proxy.Upstream{Address: "unix://" + upstream}})
	dockerOK(t, sock, nil, "version") // reads pass
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := docker(t, ctx, sock, "create", "--name", containerName(t), dockertest.Image, "true").CombinedOutput()
	if err == nil {
		t.Fatalf("docker create passed the read-only policy: %s", out)
	}
	want := "Error response from daemon: sockproxy refused container.create: the built-in read-only policy refuses container.create"
	if !strings.Contains(string(out), want) {
		t.Errorf("docker create printed %q, want it to contain %q", out, want)
	}
}

func TestCallerIsThePeerProcess(t *testing.T) {
	upstream := dockertest.Require(t)
	dec := &recorder{}
	sock, _ := startProxy(t, proxy.Config{Decider: dec, Upstream: proxy.Upstream{Address: "unix://" + upstream}})
	resp, err := dockerClient(sock).Get("http://d/_ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	reqs := dec.requests()
	if len(reqs) != 1 {
		t.Fatalf("decider saw %d requests", len(reqs))
	}
	c := reqs[0].Caller
	if !c.Known || c.UID != os.Getuid() || c.GID != os.Getgid() || c.PID != os.Getpid() {
		t.Errorf("caller %+v, want uid %d gid %d pid %d", c, os.Getuid(), os.Getgid(), os.Getpid())
	}
	if c.UID == 0 && (c.User != "root" || c.Group != "root" || !contains(c.Groups, "root")) {
		t.Errorf("caller %+v: names of uid 0 not resolved", c)
	}
	if resp.Header.Get("Api-Version") == "" || resp.Header.Get("Ostype") == "" {
		t.Errorf("daemon headers did not pass through: %v", resp.Header)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
