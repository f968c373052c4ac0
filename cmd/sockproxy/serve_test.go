package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

func TestServeFlagsOverrideConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "sockproxy.yaml")
	cfgText := "listen:\n  path: /from/config.sock\nupstream:\n  url: unix:///from/config/docker.sock\nlimits:\n  body_bytes: 2MiB\n"
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := parseServeArgs([]string{"--config", cfgPath, "--listen", "/x/p.sock", "--socket-mode", "0600", "--log-format", "json", "--policy-dir", "/p1", "--policy-dir", "/p2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if c.Listen.Path != "/x/p.sock" || c.Listen.Mode != 0o600 || c.Log.Format != "json" || strings.Join(c.Policy.Dirs, ",") != "/p1,/p2" {
		t.Errorf("flags not applied: %+v", c)
	}
	if c.Upstream.URL != "unix:///from/config/docker.sock" || c.Limits.BodyBytes != 2<<20 || s.allowAll {
		t.Errorf("values not given as flags must keep the file's: %+v", c)
	}
}

func TestServeRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--socket-mode", "rw"},
		{"--socket-mode", "01777"},
		{"--log-format", "xml"},
		{"--log-level", "loud"},
		{"--body-limit", "0"},
		{"--mode", "permissive"},
		{"--listen", "relative.sock"},
		{"--config", "/does/not/exist.yaml"},
		{"extra"},
	} {
		if _, err := parseServeArgs(append([]string{"--listen", "/tmp/x.sock"}, args...), io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestServeDefaultIsTheHardenedPolicy(t *testing.T) {
	s, err := parseServeArgs([]string{"--listen", "/tmp/x.sock"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.allowAll || s.cfg.Policy.Mode != "enforce" {
		t.Fatalf("default is not the enforced policy: allowAll=%v mode=%q", s.allowAll, s.cfg.Policy.Mode)
	}
	if s.cfg.Listen.Mode != 0o660 {
		t.Errorf("default socket mode %04o", uint32(s.cfg.Listen.Mode))
	}
}

// serve end to end: the DOCKER_HOST line, the built-in hardened policy in
// front of the real dockerd, and a shutdown that removes the socket.
func TestServeHardenedByDefault(t *testing.T) {
	upstream := dockertest.Require(t)
	dir, err := os.MkdirTemp("", "sp-serve-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "docker.sock")
	o, err := parseServeArgs([]string{"--listen", sock, "--upstream", "unix://" + upstream}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)), stdoutW)
		stdoutW.Close()
	}()
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line != "export DOCKER_HOST=unix://"+sock+"\n" {
		t.Fatalf("stdout line %q", line)
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := client.Get("http://d/v1.41/_ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("ping: %d", resp.StatusCode)
	}
	name := fmt.Sprintf("sp-test-serve-%d", time.Now().UnixNano())
	resp, err = client.Post("http://d/v1.41/containers/create?name="+name, "application/json", strings.NewReader(`{"Image":"`+dockertest.Image+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var msg struct{ Message string }
	_ = json.NewDecoder(resp.Body).Decode(&msg)
	resp.Body.Close()
	// The image's default user is root: the hardened profile refuses it.
	if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(msg.Message, "sockproxy refused container.create: ") || !strings.Contains(msg.Message, "root") {
		t.Errorf("create of a root container under the default policy: %d %q", resp.StatusCode, msg.Message)
	}
	direct := dockertest.Client(upstream)
	resp, err = direct.Get("http://d/containers/" + name + "/json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the refused container exists on the daemon: inspect answered %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("serve did not return after its context ended")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket still there after shutdown: %v", err)
	}
}

// The watcher reports absolute paths: a relative --config must become one,
// or edits to it would never be re-read.
func TestServeConfigPathIsAbsolute(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sockproxy.yaml"), []byte("listen:\n  path: /x/p.sock\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	s, err := parseServeArgs([]string{"--config", "./sockproxy.yaml"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "sockproxy.yaml"); s.configPath != want {
		t.Errorf("configPath = %q, want %q", s.configPath, want)
	}
}
