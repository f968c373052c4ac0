// Package e2e runs real clients (the docker CLI, docker-compose, docker-py)
// against a sockproxy binary in front of the real dockerd.
//
// This file holds what every e2e test shares: the binary built once in
// TestMain, a `sockproxy serve` started on a temporary socket, a docker CLI
// pointed at it, and the audit log read back.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
	"github.com/sockproxy/sockproxy/policy/audit"
)

// sockproxyBin is the sockproxy binary TestMain built: static
// (CGO_ENABLED=0), so that it also runs in a scratch image.
var sockproxyBin string

// binDir holds the binaries built for the tests.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sp-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	sockproxyBin = filepath.Join(dir, "sockproxy")
	if err := goBuild(sockproxyBin, "github.com/sockproxy/sockproxy/cmd/sockproxy"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building sockproxy:", err)
		return 1
	}
	return m.Run()
}

// goBuild builds a static binary of pkg (an import path or a directory
// relative to e2e/) at out.
func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// served is a running `sockproxy serve`.
type served struct {
	// Socket is the proxy's listening socket.
	Socket string
	// AuditPath is its audit log (one JSON line per request).
	AuditPath string
	// Dir is the temporary directory holding both (and the config file).
	Dir string

	stderr *lockedBuffer
}

// startServe starts the sockproxy binary in front of the test dockerd on a
// fresh socket, with config (YAML; "" for the built-in hardened profile)
// and extra command-line flags, and returns once it listens. It is stopped
// (SIGTERM) in t.Cleanup; its log is printed when the test failed.
func startServe(t *testing.T, config string, flags ...string) *served {
	t.Helper()
	upstream := dockertest.Require(t)
	// Not t.TempDir(): its long names can pass the 108-byte limit of a
	// socket path.
	dir, err := os.MkdirTemp("", "sp-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &served{
		Socket:    filepath.Join(dir, "docker.sock"),
		AuditPath: filepath.Join(dir, "audit.log"),
		Dir:       dir,
		stderr:    &lockedBuffer{},
	}
	args := []string{"serve", "--listen", s.Socket, "--audit-log", s.AuditPath,
		"--upstream", "unix://" + upstream, "--watch=false"}
	if config != "" {
		path := filepath.Join(dir, "sockproxy.yaml")
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	args = append(args, flags...)
	cmd := exec.Command(sockproxyBin, args...)
	cmd.Stderr = s.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("sockproxy serve did not stop within 30s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("sockproxy serve log:\n%s", s.stderr.String())
		}
	})

	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		l, _ := r.ReadString('\n')
		line <- l
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case l := <-line:
		if want := "export DOCKER_HOST=unix://" + s.Socket + "\n"; l != want {
			t.Fatalf("sockproxy serve printed %q, want %q; its log:\n%s", l, want, s.stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("sockproxy serve did not listen within 2 minutes; its log:\n%s", s.stderr.String())
	}
	return s
}

// Log is what sockproxy serve wrote to stderr so far.
func (s *served) Log() string { return s.stderr.String() }

// Audit reads the audit log back, one record per line.
func (s *served) Audit(t *testing.T) []audit.Record { return readAudit(t, s.AuditPath) }

// readAudit decodes every line of the audit log at path.
func readAudit(t *testing.T, path string) []audit.Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the audit log: %v", err)
	}
	return parseAudit(t, b)
}

// parseAudit decodes audit log lines.
func parseAudit(t *testing.T, b []byte) []audit.Record {
	t.Helper()
	var recs []audit.Record
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("audit line %d is not a record: %v: %s", i+1, err, line)
		}
		recs = append(recs, r)
	}
	return recs
}

// dockerCmd is the docker CLI (from PATH) talking to socket ("" for the
// test dockerd itself), with no user configuration or context in the way.
// The caller sets Stdin/Stdout/Stderr and runs it.
func dockerCmd(ctx context.Context, socket string, args ...string) *exec.Cmd {
	if socket == "" {
		socket = dockertest.Socket()
	}
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = dockerEnv(socket)
	return cmd
}

// dockerEnv is the environment without DOCKER_* variables, with
// DOCKER_HOST at socket.
func dockerEnv(socket string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") && !strings.HasPrefix(kv, "COMPOSE_") {
			env = append(env, kv)
		}
	}
	return append(env, "DOCKER_HOST=unix://"+socket)
}

// docker runs the docker CLI against socket ("" for dockerd itself) and
// returns its stdout and stderr; err is non-nil when it exited non-zero.
func docker(t *testing.T, socket string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := dockerCmd(ctx, socket, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

var nameSeq atomic.Int64

// uniqueName is prefix with a suffix no other run or test shares; prefix
// should be sp-<task>-<what>.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), nameSeq.Add(1))
}

// lockedBuffer is a bytes.Buffer safe for a writer and readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
