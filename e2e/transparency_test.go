package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// transparencyCase is one docker CLI scenario, run once per side. Every
// docker command it runs through s lands in the side's transcript; the
// normalized transcripts of both sides must be equal.
type transparencyCase struct {
	name string
	// numbers: also normalize every number (sizes and counts of the shared
	// daemon that other tests change between the two runs).
	numbers bool
	run     func(t *testing.T, s *side)
}

// nonRootUser is the non-root user every container of the suite runs as: the
// default library refuses root, and the point is that what it allows
// behaves exactly as it does without the proxy.
const nonRootUser = "1000:1000"

// transparencyConfig allows every command of the suite with the default
// library and data only: binds under mountRoot read-only, builds with the
// classic builder of images named sp-e2et-*.
func transparencyConfig(mountRoot string) string {
	return fmt.Sprintf(`policy:
  data:
    mount_roots:
      - path: %s
        modes: [ro]
    writable_images: ["sp-e2et-*"]
    operations:
      image.build: judge
`, mountRoot)
}

// TestTransparency runs docker CLI commands against dockerd directly and
// through sockproxy (default library, data that allows them) and requires
// the same output, errors and exit codes once IDs, names, times and
// addresses are normalized. Any difference is a bug of the proxy.
func TestTransparency(t *testing.T) {
	dockertest.Require(t)
	run := fmt.Sprintf("%06d", rand.IntN(1000000))
	base, err := os.MkdirTemp("", "sp-e2et-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	// Real path: the library compares binds by the path they really reach.
	if base, err = filepath.EvalSymlinks(base); err != nil {
		t.Fatal(err)
	}
	// What the containers read through a bind, and what `docker cp` and
	// `docker build` send; the same files for both sides (same mtimes).
	shared := filepath.Join(base, "shared")
	writeTree(t, shared)
	proxy := startServe(t, transparencyConfig(shared))

	sides := func(t *testing.T) []*side {
		var out []*side
		for _, k := range []string{"d", "p"} {
			s := &side{t: t, Key: k, Socket: dockertest.Socket(), Prefix: "sp-e2et-" + run + "-" + k}
			if k == "p" {
				s.Socket = proxy.Socket
			}
			s.Dir = filepath.Join(base, s.Prefix+"-"+dirNameOf(t.Name()))
			if err := os.MkdirAll(s.Dir, 0o755); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}

	cases := transparencyCases(shared)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ss := sides(t)
			for _, s := range ss {
				c.run(t, s)
				if t.Failed() {
					t.Fatalf("side %s failed; transcript:\n%s", s.Key, s.tr.String())
				}
			}
			n := normalizer{run: run, numbers: c.numbers}
			direct, proxied := n.apply(ss[0].tr.String()), n.apply(ss[1].tr.String())
			proxied = knownDifferences.rewrite(t, proxied)
			if d := lineDiff(direct, proxied); d != "" {
				t.Errorf("docker %s differs through sockproxy (- direct, + proxied):\n%s", c.name, d)
			} else {
				t.Logf("same output directly and through sockproxy:\n%s", proxied)
			}
		})
	}
	knownDifferences.checkUsed(t)
	t.Logf("%d docker CLI scenarios compared", len(cases))
}

func dirNameOf(s string) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(s)
}

// writeTree makes the files the cases send: a text file, a binary file, a
// nested directory, an executable and a symlink.
func writeTree(t *testing.T, dir string) {
	t.Helper()
	bin := make([]byte, 256<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range bin {
		bin[i] = byte(r.UintN(256))
	}
	files := map[string]string{
		"hello.txt":      "hello from the host\n",
		"sub/data.bin":   string(bin),
		"sub/deeper/x":   "x\n",
		"run.sh":         "#!/bin/sh\necho run\n",
		"build/file.txt": "built into the image\n",
		"build/Dockerfile": "FROM sockproxy-test:latest\n" +
			"COPY file.txt /file.txt\n" +
			"RUN cat /file.txt && echo step done\n" +
			"LABEL sp-e2et=build\n" +
			"USER 1000:1000\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("hello.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

func stdinOf(s string) *strings.Reader { return strings.NewReader(s) }

// daemon runs a detached container under the side's prefix and returns its name.
func runDetached(s *side, what string, extra ...string) string {
	s.t.Helper()
	name := s.Name(what)
	removeObjectsLater(s.t, "container", name)
	args := append([]string{"run", "-d", "--name", name, "-u", nonRootUser, "--label", "sp-e2et=" + s.Prefix}, extra...)
	s.MustDocker(nil, args...)
	return name
}

func transparencyCases(shared string) []transparencyCase {
	const img = dockertest.Image
	sleeper := []string{img, "sleep", "300"}
	return []transparencyCase{
		{name: "ps", run: func(t *testing.T, s *side) {
			runDetached(s, "ps-up", sleeper...)
			created := s.Name("ps-created")
			removeObjectsLater(t, "container", created)
			s.MustDocker(nil, "create", "--name", created, "-u", nonRootUser, "--label", "sp-e2et="+s.Prefix, "-p", "127.0.0.1::8080", img, "true")
			filter := "label=sp-e2et=" + s.Prefix
			s.Docker(nil, "ps", "--filter", filter)
			s.Docker(nil, "ps", "-a", "--filter", filter)
			s.Docker(nil, "ps", "-a", "--no-trunc", "--filter", filter)
			s.Docker(nil, "ps", "-aq", "--filter", filter)
			s.Docker(nil, "ps", "-a", "--filter", filter, "--filter", "status=created", "--format", "{{.Names}}\t{{.Image}}\t{{.Command}}\t{{.Ports}}\t{{.Labels}}")
			s.Docker(nil, "ps", "-a", "-s", "--filter", "name="+s.Name("ps-up"), "--format", "{{.Names}} {{.Status}} {{.Mounts}} {{.Networks}}")
		}},
		{name: "inspect", run: func(t *testing.T, s *side) {
			name := s.Name("inspect")
			removeObjectsLater(t, "container", name)
			s.MustDocker(nil, "create", "--name", name, "-u", nonRootUser, "--label", "sp-e2et="+s.Prefix,
				"-e", "A=1", "-w", "/tmp", "--hostname", "box", "-v", shared+":/in:ro", "--tmpfs", "/scratch:size=1m",
				"-p", "127.0.0.1::80/tcp", "--security-opt", "no-new-privileges", "--cap-drop", "ALL",
				"--memory", "64m", "--pids-limit", "64", "--restart", "on-failure:2", img, "sh", "-c", "cat /in/hello.txt; sleep 300")
			s.Docker(nil, "inspect", name)
			s.MustDocker(nil, "start", name)
			s.Docker(nil, "container", "inspect", "-f", "{{.State.Status}} {{.Config.User}} {{json .Mounts}} {{json .HostConfig.PortBindings}}", name)
			s.Docker(nil, "inspect", "--type", "container", name)
			s.Docker(nil, "inspect", "--type", "image", img)
			s.Docker(nil, "inspect", s.Name("no-such-object"))
		}},
		{name: "run-i", run: func(t *testing.T, s *side) {
			base := []string{"run", "-i", "--rm", "-u", nonRootUser, "--label", "sp-e2et=" + s.Prefix}
			s.Docker(stdinOf("hello\nworld\n"), append(base, "-v", shared+":/in:ro", img, "sh", "-c", "cat; cat /in/hello.txt; echo to-stderr >&2; exit 3")...)
			// 1 MiB through stdin and back out (streams in both directions, half-close).
			big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10)
			r := s.Docker(bytes.NewReader(big), append(base, img, "sh", "-c", "cat | md5sum")...)
			if want := fmt.Sprintf("%x", md5.Sum(big)); !strings.HasPrefix(r.Stdout, want) {
				t.Errorf("side %s: md5 of stdin echoed back is %q, want %s", s.Key, r.Stdout, want)
			}
			s.DockerDigest(nil, append(base, img, "sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x")...)
			s.Docker(nil, append(base, img, "no-such-command")...)
		}},
		{name: "run-t", run: func(t *testing.T, s *side) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// The container waits for the terminal size the CLI sends after
			// start, reads a line, then waits for a resize.
			script := `until s=$(stty size 2>/dev/null); [ -n "$s" ] && [ "$s" != "0 0" ]; do sleep 0.05; done; ` +
				`tty; echo "size $s"; printf 'ready> '; read line; echo "got:$line"; ` +
				`until [ "$(stty size)" = "50 120" ]; do sleep 0.05; done; echo resized; exit 4`
			cmd := dockerCmd(ctx, s.Socket, "run", "-it", "--rm", "-u", nonRootUser, "--label", "sp-e2et="+s.Prefix, img, "sh", "-c", script)
			p := startPTY(t, cmd, 40, 100)
			p.waitFor(ctx, t, "ready> ")
			if _, err := p.master.Write([]byte("typed text\r")); err != nil {
				t.Fatal(err)
			}
			p.waitFor(ctx, t, "got:typed text")
			if err := setWinsize(p.master, 50, 120); err != nil {
				t.Fatal(err)
			}
			out, code := p.finish(t)
			s.add("$ docker run -it (pseudo-terminal 40x100, then 50x120)", fmt.Sprintf("%q\nexit %d\n", out, code))
			if code != 4 || !strings.Contains(out, "resized") {
				t.Errorf("side %s: run -t: exit %d, output %q", s.Key, code, out)
			}
		}},
		{name: "exec-i", run: func(t *testing.T, s *side) {
			name := runDetached(s, "exec", sleeper...)
			s.Docker(stdinOf("line 1\nline 2\n"), "exec", "-i", name, "sh", "-c", "cat; id; exit 5")
			s.Docker(nil, "exec", "-e", "FOO=bar", "-w", "/tmp", name, "sh", "-c", "echo $FOO; pwd; echo err >&2")
			s.Docker(nil, "exec", "-u", "1000:1000", name, "id")
			s.Docker(nil, "exec", name, "no-such-command")
			s.Docker(nil, "exec", s.Name("no-such-container"), "true")
		}},
		{name: "logs-f", run: func(t *testing.T, s *side) {
			name := runDetached(s, "logs", img, "sh", "-c", "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; sleep 0.1; done")
			s.Docker(nil, "logs", "-f", name) // ends when the container exits
			s.Docker(nil, "logs", "--tail", "2", name)
			s.Docker(nil, "logs", "-t", "--since", "2000-01-01T00:00:00Z", name)
			s.Docker(nil, "wait", name)
		}},
		{name: "cp", run: func(t *testing.T, s *side) {
			// archive.put is judged: the container must run with no-new-privileges.
			name := runDetached(s, "cp", append([]string{"--security-opt", "no-new-privileges"}, sleeper...)...)
			s.Docker(nil, "cp", shared, name+":/work/in")
			s.Docker(nil, "cp", filepath.Join(shared, "hello.txt"), name+":/tmp/one.txt")
			tarball := s.DockerDigest(nil, "cp", name+":/etc/passwd", "-") // a tar stream on stdout
			s.Docker(bytes.NewReader([]byte(tarball.Stdout)), "cp", "-", name+":/tmp")
			s.Docker(nil, "exec", name, "sh", "-c", "cd /work/in && find . | sort && md5sum $(find . -type f | sort) && cat /tmp/one.txt /tmp/passwd && ls -ln /work/in")
			out := filepath.Join(s.Dir, "out")
			s.Docker(nil, "cp", name+":/work/in", out)
			s.Docker(nil, "cp", name+":/tmp/one.txt", filepath.Join(s.Dir, "one.txt"))
			s.add("tree copied back", treeListing(t, out))
			if got, want := treeListing(t, out), treeListing(t, shared); got != want {
				t.Errorf("side %s: tree copied in and back out differs from the original:\n%s", s.Key, lineDiff(want, got))
			}
			s.Docker(nil, "cp", name+":/no/such/path", filepath.Join(s.Dir, "x"))
		}},
		{name: "events", run: func(t *testing.T, s *side) {
			since := time.Now().Add(-time.Second).Unix()
			name := s.Name("events")
			removeObjectsLater(t, "container", name)
			s.MustDocker(nil, "run", "--name", name, "-u", nonRootUser, "--label", "sp-e2et="+s.Prefix, img, "true")
			s.MustDocker(nil, "rm", name)
			// Bounded: both calls end once the past is replayed.
			events := []string{"events", "--since", strconv.FormatInt(since, 10), "--until", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)}
			s.DockerLabel("docker events --since T0 --until T1 --filter container="+name, nil,
				append(events, "--filter", "container="+name)...)
			s.DockerLabel("docker events --since T0 --until T1 --filter container="+name+" --filter event=start --format ...", nil,
				append(events, "--filter", "container="+name, "--filter", "event=start",
					"--format", `{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{index .Actor.Attributes "sp-e2et"}}`)...)
		}},
		{name: "build", run: func(t *testing.T, s *side) {
			tag := s.Name("img")
			removeObjectsLater(t, "image", tag)
			legacy := []string{"DOCKER_BUILDKIT=0"}
			s.DockerEnv(legacy, nil, "build", "--no-cache", "-t", tag, filepath.Join(shared, "build"))
			s.Docker(nil, "image", "inspect", "-f", "{{.Config.User}} {{json .Config.Labels}} {{.Config.Cmd}}", tag)
			s.Docker(nil, "run", "--rm", tag, "sh", "-c", "cat /file.txt; id")
			s.Docker(nil, "rmi", tag)
		}},
		{name: "attach", run: func(t *testing.T, s *side) {
			// The container prints only after it read what attach sent. stdin
			// stays open until the output arrived: when an attach's stdin
			// ends, dockerd closes its stdout and stderr (container not
			// StdinOnce), whatever is still to come.
			name := runDetached(s, "attach", "-i", img, "sh", "-c", "read x; echo got:$x; echo bye >&2; exit 6")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := dockerCmd(ctx, s.Socket, "attach", name)
			var stdout, stderr lockedBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(stdin, "hello attach\n"); err != nil {
				t.Fatal(err)
			}
			for !strings.Contains(stdout.String(), "got:") || !strings.Contains(stderr.String(), "bye") {
				if ctx.Err() != nil {
					t.Fatalf("side %s: attach output did not arrive: stdout %q, stderr %q", s.Key, stdout.String(), stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			stdin.Close()
			code := cmdExitCode(t, cmd.Wait())
			s.add("$ docker attach "+name+" (stdin: hello attach, closed after the output)",
				fmt.Sprintf("stdout:\n%sstderr:\n%sexit %d\n", stdout.String(), stderr.String(), code))
			s.Docker(nil, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name)
		}},
		{name: "stats", numbers: true, run: func(t *testing.T, s *side) {
			name := runDetached(s, "stats", sleeper...)
			s.Docker(nil, "stats", "--no-stream", name)
		}},
		{name: "wait", run: func(t *testing.T, s *side) {
			a := runDetached(s, "wait-a", img, "sh", "-c", "exit 7")
			b := runDetached(s, "wait-b", img, "sh", "-c", "sleep 0.3; exit 0")
			s.Docker(nil, "wait", a, b)
			s.Docker(nil, "wait", s.Name("no-such-container"))
		}},
		{name: "pause-unpause", run: func(t *testing.T, s *side) {
			name := runDetached(s, "pause", sleeper...)
			state := []string{"inspect", "-f", "{{.State.Status}} {{.State.Paused}}", name}
			s.Docker(nil, "pause", name)
			s.Docker(nil, state...)
			s.Docker(nil, "pause", name)
			s.Docker(nil, "unpause", name)
			s.Docker(nil, state...)
			s.Docker(nil, "unpause", name)
		}},
		{name: "rename", run: func(t *testing.T, s *side) {
			old, renamed, other := s.Name("rename-a"), s.Name("rename-b"), s.Name("rename-c")
			removeObjectsLater(t, "container", old, renamed, other)
			s.MustDocker(nil, "create", "--name", old, "-u", nonRootUser, img, "true")
			s.MustDocker(nil, "create", "--name", other, "-u", nonRootUser, img, "true")
			s.Docker(nil, "rename", old, renamed)
			s.Docker(nil, "inspect", "-f", "{{.Name}}", renamed)
			s.Docker(nil, "inspect", "-f", "{{.Name}}", old)
			s.Docker(nil, "rename", renamed, other)
		}},
		{name: "network-ls", run: func(t *testing.T, s *side) {
			net := s.Name("net")
			removeObjectsLater(t, "network", net)
			s.MustDocker(nil, "network", "create", "--label", "sp-e2et="+s.Prefix, net)
			s.Docker(nil, "network", "ls", "--filter", "label=sp-e2et="+s.Prefix)
			s.Docker(nil, "network", "ls", "--no-trunc", "--filter", "name="+net, "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}")
			s.Docker(nil, "network", "ls", "--filter", "type=builtin")
			s.Docker(nil, "network", "ls", "-q", "--filter", "label=sp-e2et="+s.Prefix)
		}},
		{name: "volume-ls", run: func(t *testing.T, s *side) {
			vol := s.Name("vol")
			removeObjectsLater(t, "volume", vol)
			s.MustDocker(nil, "volume", "create", "--label", "sp-e2et="+s.Prefix, vol)
			s.Docker(nil, "volume", "ls", "--filter", "label=sp-e2et="+s.Prefix)
			s.Docker(nil, "volume", "ls", "-q", "--filter", "name="+vol)
			s.Docker(nil, "volume", "ls", "--filter", "name="+vol, "--format", "{{.Name}} {{.Driver}} {{.Labels}}")
		}},
		{name: "not-found", run: func(t *testing.T, s *side) {
			// Every command on a missing object: the same error, status and
			// exit code as dockerd's own.
			m := s.Name("missing")
			for _, args := range [][]string{
				{"inspect", m}, {"container", "inspect", m}, {"image", "inspect", m}, {"network", "inspect", m}, {"volume", "inspect", m},
				{"start", m}, {"stop", m}, {"kill", m}, {"pause", m}, {"unpause", m}, {"restart", m}, {"rm", m}, {"rm", "-f", m},
				{"logs", m}, {"top", m}, {"port", m}, {"rename", m, m + "2"}, {"exec", m, "true"}, {"wait", m}, {"attach", m},
				{"cp", m + ":/etc/passwd", "-"}, {"update", "--pids-limit", "10", m}, {"diff", m}, {"export", m},
				{"network", "rm", m}, {"network", "connect", m, m}, {"network", "disconnect", m, m},
				{"volume", "rm", m}, {"rmi", m}, {"history", m},
			} {
				s.Docker(nil, args...)
			}
		}},
		{name: "system-df", numbers: true, run: func(t *testing.T, s *side) {
			s.Docker(nil, "system", "df")
			s.Docker(nil, "system", "df", "--format", "{{.Type}}")
		}},
	}
}
