// Package dockertest gives tests a real dockerd and the local test images.
//
// Tests call Require; when no daemon answers it runs scripts/testenv.sh up
// (which installs docker.io, starts dockerd and imports the images). Without
// the rights to do that a test is skipped when run by hand, and fails when
// CI=true: CI must never go green by skipping.
package dockertest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

const (
	// Image is a busybox image whose default user is root.
	Image = "sockproxy-test:latest"
	// NonRootImage is Image with USER 1000:1000.
	NonRootImage = "sockproxy-test-nonroot:latest"
)

// Socket is the dockerd socket the tests use.
func Socket() string {
	if s := os.Getenv("SOCKPROXY_TEST_DOCKER_SOCK"); s != "" {
		return s
	}
	return "/var/run/docker.sock"
}

var (
	once    sync.Once
	prepErr error
)

// Require returns the socket of a running dockerd that has the test images,
// starting one if needed.
func Require(t testing.TB) string {
	t.Helper()
	once.Do(func() { prepErr = prepare() })
	if prepErr != nil {
		if os.Getenv("CI") == "true" || os.Geteuid() == 0 {
			t.Fatalf("a real dockerd is required: %v", prepErr)
		}
		t.Skipf("skipping: no dockerd and no rights to start one (%v); run `make test` as root", prepErr)
	}
	return Socket()
}

func prepare() error {
	if ready() {
		return nil
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("dockerd does not answer on %s or the test images are missing, and starting it needs root", Socket())
	}
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "testenv.sh"), "up")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/testenv.sh up: %w", err)
	}
	if !ready() {
		return fmt.Errorf("scripts/testenv.sh up finished but dockerd on %s is still not ready", Socket())
	}
	return nil
}

// ready reports whether dockerd answers and both test images exist.
func ready() bool {
	c := Client(Socket())
	for _, path := range []string{"/_ping", "/images/" + Image + "/json", "/images/" + NonRootImage + "/json"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
		resp, err := c.Do(req)
		cancel()
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	return true
}

// Client returns an HTTP client that talks to the Unix socket at path.
func Client(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		dir = parent
	}
}
