package main

import (
	"bufio"
	"context"
	"encoding/json"
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

func TestServeFlagsOverrideBase(t *testing.T) {
	base := defaultServeOptions()
	base.Listen = "/from/config.sock"
	base.Upstream = "unix:///from/config/docker.sock"
	o, err := parseServeArgs(base, []string{"--listen", "/x/p.sock", "--socket-mode", "0600", "--body-limit", "42", "--log-format", "json"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Listen != "/x/p.sock" || o.SocketMode != 0o600 || o.BodyLimit != 42 || o.LogFormat != "json" {
		t.Errorf("flags not applied: %+v", o)
	}
	if o.Upstream != "unix:///from/config/docker.sock" || o.AllowAll {
		t.Errorf("values not given as flags must keep the base: %+v", o)
	}
}

func TestServeRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--socket-mode", "rw"},
		{"--socket-mode", "01777"},
		{"--log-format", "xml"},
		{"--log-level", "loud"},
		{"--body-limit", "0"},
		{"extra"},
	} {
		if _, err := parseServeArgs(defaultServeOptions(), args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestServeDefaultIsNotAllowAll(t *testing.T) {
	o := defaultServeOptions()
	if o.AllowAll {
		t.Fatal("allow-all by default")
	}
	if o.SocketMode != 0o660 {
		t.Errorf("default socket mode %v", o.SocketMode.String())
	}
}

// serve end to end: the DOCKER_HOST line, the built-in read-only policy in
// front of the real dockerd, and a shutdown that removes the socket.
func TestServeReadOnlyByDefault(t *testing.T) {
	upstream := dockertest.Require(t)
	dir, err := os.MkdirTemp("", "sp-serve-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "docker.sock")
	o, err := parseServeArgs(defaultServeOptions(), []string{"--listen", sock, "--upstream", "unix://" + upstream}, io.Discard)
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
	resp, err = client.Post("http://d/v1.41/containers/create", "application/json", strings.NewReader(`{"Image":"`+dockertest.Image+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var msg struct{ Message string }
	_ = json.NewDecoder(resp.Body).Decode(&msg)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(msg.Message, "read-only policy") {
		t.Errorf("create under the default policy: %d %q", resp.StatusCode, msg.Message)
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
