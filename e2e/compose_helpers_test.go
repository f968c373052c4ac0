package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// repoRoot is the repository's root (the tests run in e2e/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// composeProject is a docker-compose (1.x, Debian's) project run by a test.
type composeProject struct {
	name  string   // -p: unique, so that its objects are the test's own
	files []string // -f, absolute
	env   []string // added to the environment (KEY=value)
}

// run runs docker-compose with the project's files and name against
// socket ("" for the test dockerd itself) and returns its combined output.
func (p *composeProject) run(t *testing.T, socket string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatalf("docker-compose is not installed (scripts/testenv.sh up installs Debian's): %v", err)
	}
	full := []string{"--no-ansi", "-p", p.name}
	for _, f := range p.files {
		full = append(full, "-f", f)
	}
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-compose", full...)
	if socket == "" {
		socket = dockertest.Socket()
	}
	cmd.Env = dockerEnv(socket)
	cmd.Env = append(cmd.Env, p.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// spclientBin builds testdata/compose/client once (static, for a busybox
// container) and returns its path.
var spclientBin = sync.OnceValues(func() (string, error) {
	out := filepath.Join(binDir, "spclient")
	return out, goBuild(out, "github.com/sockproxy/sockproxy/testdata/compose/client")
})
