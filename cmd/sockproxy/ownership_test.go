package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// dockerAs runs the real docker CLI against one proxy socket as one uid:
// every call is a new process with that uid, so the proxy reads that uid
// from the kernel (SO_PEERCRED) for each connection.
type dockerAs struct {
	t    *testing.T
	uid  uint32 // 0: the test's own (root) credentials
	sock string
	home string
}

func newDockerAs(t *testing.T, sock string, uid uint32) *dockerAs {
	home, err := os.MkdirTemp("", "sp-own-home-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	if err := os.Chown(home, int(uid), int(uid)); err != nil {
		t.Fatal(err)
	}
	return &dockerAs{t: t, uid: uid, sock: sock, home: home}
}

func (d *dockerAs) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command("docker", append([]string{"-H", "unix://" + d.sock}, args...)...)
	cmd.Env = []string{"HOME=" + d.home, "DOCKER_CONFIG=" + d.home, "PATH=" + os.Getenv("PATH")}
	if d.uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: d.uid, Gid: d.uid, Groups: []uint32{}}}
	}
	return cmd
}

// run runs docker and returns its stdout, or its stderr when it fails.
func (d *dockerAs) run(args ...string) (string, error) {
	cmd := d.cmd(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stderr.String(), fmt.Errorf("uid %d: docker %s: %w: %s", d.uid, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func (d *dockerAs) ok(args ...string) string {
	d.t.Helper()
	out, err := d.run(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// refused checks that docker fails with the proxy's refusal and that the
// reason contains want.
func (d *dockerAs) refused(want string, args ...string) {
	d.t.Helper()
	out, err := d.run(args...)
	if err == nil {
		d.t.Errorf("uid %d: docker %s succeeded; want a refusal naming %q", d.uid, strings.Join(args, " "), want)
		return
	}
	if !strings.Contains(out, "sockproxy refused") || !strings.Contains(out, want) {
		d.t.Errorf("uid %d: docker %s: %q; want a sockproxy refusal containing %q", d.uid, strings.Join(args, " "), out, want)
	}
}

// names runs a list command printing one name a line.
func (d *dockerAs) names(args ...string) []string {
	d.t.Helper()
	return strings.Fields(d.ok(args...))
}

// eventStream is a live `docker events` as one uid.
type eventStream struct {
	cmd   *exec.Cmd
	lines chan dockerEvent
}

type dockerEvent struct {
	Type   string
	Action string
	Actor  struct {
		ID         string
		Attributes map[string]string
	}
}

// name is the object an event is about: the container or network name, the
// volume's name (its ID).
func (e dockerEvent) name() string {
	if e.Type == "volume" {
		return e.Actor.ID
	}
	return e.Actor.Attributes["name"]
}

func (d *dockerAs) events() *eventStream {
	d.t.Helper()
	// --since: dockerd replays what happened from now on even if the CLI
	// subscribes only after the test's first create (it starts apart).
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	cmd := d.cmd("events", "--since", since, "--format", "{{json .}}")
	out, err := cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	s := &eventStream{cmd: cmd, lines: make(chan dockerEvent, 1024)}
	d.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev dockerEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err == nil {
				s.lines <- ev
			}
		}
	}()
	return s
}

// until collects the stream's events up to the first volume create of
// marker, which the test makes last: everything before it has been
// relayed (or filtered out) by then.
func (s *eventStream) until(t *testing.T, marker string) []dockerEvent {
	t.Helper()
	var got []dockerEvent
	guard := time.NewTimer(2 * time.Minute) // a hang guard, not a timed assertion
	defer guard.Stop()
	for {
		select {
		case ev, ok := <-s.lines:
			if !ok {
				t.Fatalf("the event stream ended before the marker %s; got %v", marker, got)
			}
			got = append(got, ev)
			if ev.Type == "volume" && ev.Action == "create" && ev.Actor.ID == marker {
				return got
			}
		case <-guard.C:
			t.Fatalf("no event for the marker %s; got %v", marker, got)
		}
	}
}

// Ownership with two callers on one socket: uid 1000 and uid 1001 run the
// docker CLI against the same proxy (ownership.enabled, admin uid 0).
// Objects carry their creator's labels; the other caller is refused every
// operation on them with a reason naming the owner and the objects stay as
// they were; the owner and the admin may act; lists and the live event
// stream show each caller only its own objects, the admin everything.
func TestOwnershipTwoCallers(t *testing.T) {
	upstream := dockertest.Require(t)
	dir, err := os.MkdirTemp("", "sp-own-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // the callers reach the socket
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	cfgPath := filepath.Join(dir, "sockproxy.yaml")
	cfg := "policy:\n  data:\n    ownership:\n      enabled: true\n      admin_uids: [0]\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := parseServeArgs([]string{"--config", cfgPath, "--listen", sock, "--socket-mode", "0666", "--upstream", "unix://" + upstream}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)), stdoutW)
		stdoutW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	if _, err := bufio.NewReader(stdoutR).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()

	alice, bob, admin := newDockerAs(t, sock, 1000), newDockerAs(t, sock, 1001), newDockerAs(t, sock, 0)
	aliceOwner := "belongs to uid 1000"
	if u, err := user.LookupId("1000"); err == nil {
		aliceOwner += " (" + u.Username + ")"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "sp-own-" + hex.EncodeToString(b) + "-"
	cA, nA, vA := prefix+"c-alice", prefix+"n-alice", prefix+"v-alice"
	cB, nB, vB := prefix+"c-bob", prefix+"n-bob", prefix+"v-bob"
	endA, endB := prefix+"end-alice", prefix+"end-bob"
	cAnet, cBnet := prefix+"c-alice-on-n-alice", prefix+"c-bob-on-n-alice"
	direct := dockertest.Client(upstream)
	t.Cleanup(func() {
		for _, path := range []string{"/containers/" + cA + "?force=1", "/containers/" + cB + "?force=1",
			"/containers/" + cAnet + "?force=1", "/containers/" + cBnet + "?force=1",
			"/networks/" + nA, "/networks/" + nB, "/volumes/" + vA, "/volumes/" + vB, "/volumes/" + endA, "/volumes/" + endB} {
			req, _ := http.NewRequest(http.MethodDelete, "http://d"+path, nil)
			if resp, err := direct.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	})

	aliceEvents, bobEvents := alice.events(), bob.events()

	for _, d := range []struct {
		who     *dockerAs
		c, n, v string
	}{{alice, cA, nA, vA}, {bob, cB, nB, vB}} {
		d.who.ok("run", "-d", "--name", d.c, dockertest.NonRootImage, "sleep", "600")
		d.who.ok("network", "create", d.n)
		d.who.ok("volume", "create", d.v)
	}

	// The owner labels dockerd stores name the creator.
	idA, idB := strings.TrimSpace(admin.ok("inspect", "--format", "{{.Id}}", cA)), strings.TrimSpace(admin.ok("inspect", "--format", "{{.Id}}", cB))
	uidLabel := `{{index .Config.Labels "io.sockproxy.owner.uid"}}`
	if got := strings.TrimSpace(admin.ok("inspect", "--format", uidLabel, cA)); got != "1000" {
		t.Errorf("container %s owner uid label %q, want 1000", cA, got)
	}
	if got := strings.TrimSpace(admin.ok("network", "inspect", "--format", `{{index .Labels "io.sockproxy.owner.uid"}}`, nB)); got != "1001" {
		t.Errorf("network %s owner uid label %q, want 1001", nB, got)
	}
	if got := strings.TrimSpace(admin.ok("volume", "inspect", "--format", `{{index .Labels "io.sockproxy.owner.uid"}}`, vA)); got != "1000" {
		t.Errorf("volume %s owner uid label %q, want 1000", vA, got)
	}

	// Bob may not touch Alice's objects, and they stay as they were.
	bob.refused(aliceOwner, "stop", cA)
	bob.refused(aliceOwner, "start", cA)
	bob.refused(aliceOwner, "restart", cA)
	bob.refused(aliceOwner, "kill", cA)
	bob.refused(aliceOwner, "exec", cA, "true")
	bob.refused(aliceOwner, "rm", "-f", cA)
	bob.refused(aliceOwner, "network", "connect", nB, cA)
	bob.refused(aliceOwner, "network", "rm", nA)
	bob.refused(aliceOwner, "volume", "rm", vA)
	if got := strings.TrimSpace(admin.ok("inspect", "--format", "{{.State.Running}} {{len .NetworkSettings.Networks}}", cA)); got != "true 1" {
		t.Errorf("after bob's refused requests, container %s: running, networks = %q, want true 1", cA, got)
	}
	admin.ok("network", "inspect", nA)
	admin.ok("volume", "inspect", vA)

	// A network is named at create as it is joined at connect: its owner
	// may create a container on it (NetworkMode and EndpointsConfig both
	// name it: docker create --network), nobody else, though neither
	// network is in allowed_networks.
	alice.ok("create", "--name", cAnet, "--network", nA, dockertest.NonRootImage, "true")
	if got := strings.TrimSpace(admin.ok("inspect", "--format", "{{.HostConfig.NetworkMode}}", cAnet)); got != nA {
		t.Errorf("container %s network mode %q, want %s", cAnet, got, nA)
	}
	alice.ok("rm", cAnet)
	bob.refused("network "+nA+" is not allowed", "create", "--name", cBnet, "--network", nA, dockertest.NonRootImage, "true")
	if _, err := admin.run("inspect", cBnet); err == nil {
		t.Errorf("bob's refused create on alice's network made container %s", cBnet)
	}

	// Lists: each caller sees its own objects, the admin all.
	lists := [][]string{
		{"ps", "-a", "--format", "{{.Names}}"},
		{"network", "ls", "--format", "{{.Name}}"},
		{"volume", "ls", "--format", "{{.Name}}"},
	}
	objects := [][2]string{{cA, cB}, {nA, nB}, {vA, vB}}
	for i, list := range lists {
		a, bb, all := alice.names(list...), bob.names(list...), admin.names(list...)
		own, other := objects[i][0], objects[i][1]
		if !slices.Contains(a, own) || slices.Contains(a, other) {
			t.Errorf("alice's docker %s: %v; want %s and not %s", strings.Join(list, " "), a, own, other)
		}
		if !slices.Contains(bb, other) || slices.Contains(bb, own) {
			t.Errorf("bob's docker %s: %v; want %s and not %s", strings.Join(list, " "), bb, other, own)
		}
		if !slices.Contains(all, own) || !slices.Contains(all, other) {
			t.Errorf("the admin's docker %s: %v; want both %s and %s", strings.Join(list, " "), all, own, other)
		}
	}

	// The owner may act on its objects; the admin on anyone's.
	alice.ok("exec", cA, "true")
	alice.ok("network", "connect", nA, cA)
	alice.ok("stop", "-t", "1", cA)
	alice.ok("start", cA)
	admin.ok("stop", "-t", "1", cB)
	admin.ok("rm", cB)
	admin.ok("network", "rm", nB)
	admin.ok("volume", "rm", vB)
	alice.ok("rm", "-f", cA)
	alice.ok("network", "rm", nA)
	alice.ok("volume", "rm", vA)

	// Events: the markers come last, so each stream has relayed everything
	// before them when they arrive.
	alice.ok("volume", "create", endA)
	bob.ok("volume", "create", endB)
	seen := func(evs []dockerEvent) map[string]bool {
		m := map[string]bool{}
		for _, ev := range evs {
			m[ev.Type+" "+strings.Join(strings.Fields(ev.Action), " ")+" "+ev.name()] = true
		}
		return m
	}
	aliceSaw, bobSaw := aliceEvents.until(t, endA), bobEvents.until(t, endB)
	a, bb := seen(aliceSaw), seen(bobSaw)
	for _, want := range []string{
		"container create " + cA, "container start " + cA, "container exec_create: true " + cA, "container destroy " + cA,
		"network create " + nA, "network connect " + nA, "network destroy " + nA,
		"volume create " + vA, "volume destroy " + vA,
	} {
		if !a[want] {
			t.Errorf("alice's event stream lacks %q", want)
		}
	}
	for _, want := range []string{"container create " + cB, "container destroy " + cB, "network create " + nB, "network destroy " + nB, "volume create " + vB, "volume destroy " + vB} {
		if !bb[want] {
			t.Errorf("bob's event stream lacks %q", want)
		}
	}
	// The connect and disconnect of the default bridge name the container.
	for _, c := range []struct {
		who    string
		evs    []dockerEvent
		own    string
		others string
	}{{"alice", aliceSaw, idA, idB}, {"bob", bobSaw, idB, idA}} {
		connects := 0
		for _, ev := range c.evs {
			if ev.Actor.ID == c.others || ev.Actor.Attributes["container"] == c.others {
				t.Errorf("%s's event stream shows the other's container: %+v", c.who, ev)
			}
			if ev.Type == "network" && ev.Action == "connect" && ev.Actor.Attributes["container"] == c.own {
				connects++
			}
		}
		if connects == 0 {
			t.Errorf("%s's event stream lacks the network connect of its container", c.who)
		}
	}
	for k := range a {
		if strings.Contains(k, "-bob") {
			t.Errorf("alice's event stream shows bob's event %q", k)
		}
	}
	for k := range bb {
		if strings.Contains(k, "-alice") {
			t.Errorf("bob's event stream shows alice's event %q", k)
		}
	}
}
