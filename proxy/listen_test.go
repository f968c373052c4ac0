package proxy_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sockproxy/sockproxy/proxy"
)

func TestListenUnixModeAndGroup(t *testing.T) {
	sock := filepath.Join(shortDir(t), "sub", "p.sock") // parent created
	ln, err := proxy.ListenUnix(sock, 0o600, strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	ln.Close()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("closing the listener left the socket file: %v", err)
	}
}

func TestListenUnixUnknownGroup(t *testing.T) {
	sock := filepath.Join(shortDir(t), "p.sock")
	if _, err := proxy.ListenUnix(sock, 0, "sp-no-such-group-"+randomSuffix()); err == nil {
		t.Fatal("an unknown group was accepted")
	}
}

func TestListenUnixReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(shortDir(t), "p.sock")
	dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	dead.SetUnlinkOnClose(false)
	dead.Close() // the file stays, nobody accepts: what a killed proxy leaves
	if _, err := os.Stat(sock); err != nil {
		t.Fatal(err)
	}
	ln, err := proxy.ListenUnix(sock, 0, "")
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer ln.Close()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("new socket does not accept: %v", err)
	}
	conn.Close()
}

func TestListenUnixRefusesLiveSocket(t *testing.T) {
	sock := filepath.Join(shortDir(t), "p.sock")
	live, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	_, err = proxy.ListenUnix(sock, 0, "")
	if err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Fatalf("live socket: err %v, want a clear refusal", err)
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("the live socket was disturbed: %v", err)
	}
	conn.Close()
}

func TestListenUnixRefusesNonSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "p.sock")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := proxy.ListenUnix(path, 0, ""); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: err %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Error("the regular file was touched")
	}
}
