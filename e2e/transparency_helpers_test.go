package e2e

// What the transparency suite (transparency_test.go) runs on: one side per
// path to dockerd, a transcript of every docker command a case runs, the
// normalization that makes two transcripts comparable, a line diff, and a
// pseudo-terminal for `docker run -t`.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

// side is one way to reach dockerd: directly ("d") or through sockproxy
// ("p"). Every object a case makes is named under Prefix, which differs
// between the sides only in its last letter, so that the normalized
// transcripts can be equal (and table columns as wide).
type side struct {
	t      *testing.T
	Key    string // "d" or "p"
	Socket string // the socket the side's docker CLI talks to
	Prefix string // sp-e2et-<run>-<key>
	// Dir is a scratch directory named after Prefix.
	Dir string

	tr     strings.Builder
	digest bool // record stdout as its length and digest
}

// add appends a labelled part to the transcript.
func (s *side) add(label, text string) {
	fmt.Fprintf(&s.tr, "## %s\n%s", label, text)
	if text != "" && !strings.HasSuffix(text, "\n") {
		s.tr.WriteString("\n")
	}
}

// Name is an object name under the side's prefix.
func (s *side) Name(what string) string { return s.Prefix + "-" + what }

// cmdResult is what one docker command did.
type cmdResult struct {
	Stdout, Stderr string
	Code           int
}

// Docker runs the docker CLI on the side with stdin (may be nil) and
// records the command line, its stdout, stderr and exit code.
func (s *side) Docker(stdin io.Reader, args ...string) cmdResult {
	s.t.Helper()
	return s.run(stdin, nil, args...)
}

// DockerEnv is Docker with extra environment variables.
func (s *side) DockerEnv(env []string, stdin io.Reader, args ...string) cmdResult {
	s.t.Helper()
	return s.run(stdin, env, args...)
}

// DockerLabel is Docker recorded under label instead of its command line
// (for arguments that differ between the runs, such as times).
func (s *side) DockerLabel(label string, stdin io.Reader, args ...string) cmdResult {
	s.t.Helper()
	return s.runLabel("$ "+label, stdin, nil, args...)
}

// DockerDigest is Docker for a large or binary stdout: the transcript
// gets its length and SHA-256 instead of the bytes.
func (s *side) DockerDigest(stdin io.Reader, args ...string) cmdResult {
	s.t.Helper()
	s.digest = true
	defer func() { s.digest = false }()
	return s.run(stdin, nil, args...)
}

func (s *side) run(stdin io.Reader, env []string, args ...string) cmdResult {
	s.t.Helper()
	return s.runLabel("$ docker "+strings.Join(args, " "), stdin, env, args...)
}

func (s *side) runLabel(label string, stdin io.Reader, env []string, args ...string) cmdResult {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := dockerCmd(ctx, s.Socket, args...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	r := cmdResult{Code: cmdExitCode(s.t, cmd.Run())}
	r.Stdout, r.Stderr = out.String(), errb.String()
	stdout := withNL(r.Stdout)
	if s.digest {
		stdout = fmt.Sprintf("%d bytes, sha256 %x\n", len(r.Stdout), sha256.Sum256(out.Bytes()))
	}
	s.add(label, fmt.Sprintf("stdout:\n%sstderr:\n%sexit %d\n", stdout, withNL(r.Stderr), r.Code))
	return r
}

// MustDocker is Docker that fails the test when the command fails (setup
// steps whose failure would make the comparison meaningless).
func (s *side) MustDocker(stdin io.Reader, args ...string) cmdResult {
	s.t.Helper()
	r := s.Docker(stdin, args...)
	if r.Code != 0 {
		s.t.Fatalf("side %s: docker %s: exit %d: %s", s.Key, strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r
}

func withNL(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// exitCode is the exit status of a finished command; a command that could
// not run at all fails the test.
func cmdExitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("run docker: %v", err)
	return -1
}

// removeLater removes the named docker objects of kind (container, image,
// network, volume) through dockerd directly when the test ends.
func removeObjectsLater(t *testing.T, kind string, names ...string) {
	t.Cleanup(func() {
		var args []string
		switch kind {
		case "container":
			args = append([]string{"rm", "-f", "-v"}, names...)
		case "image":
			args = append([]string{"rmi", "-f"}, names...)
		default:
			args = append([]string{kind, "rm"}, names...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = dockerCmd(ctx, dockertest.Socket(), args...).Run()
	})
}

// normalizer turns a transcript into what must be equal on both sides:
// the run's prefixes, object IDs (numbered in order of appearance),
// timestamps, durations, addresses and process ids become placeholders.
type normalizer struct {
	run string
	// numbers also replaces every number (sizes, percentages, counts that
	// other tests on the shared daemon change).
	numbers bool
}

var (
	reHexID     = regexp.MustCompile(`\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b`)
	reTimestamp = regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?( ?Z| ?[+-]\d\d:?\d\d( [A-Z]{3,4})?)?`)
	reDuration  = regexp.MustCompile(`Less than a second|About a minute|About an hour|An hour|\b\d+ (second|minute|hour|day|week|month|year)s?\b`)
	reIPv4      = regexp.MustCompile(`\b(\d{1,3}\.){3}\d{1,3}\b`)
	reMAC       = regexp.MustCompile(`\b([0-9a-f]{2}:){5}[0-9a-f]{2}\b`)
	rePid       = regexp.MustCompile(`"Pid": \d+`)
	reHostPort  = regexp.MustCompile(`"HostPort": "\d+"|(127\.0\.0\.1|0\.0\.0\.0|\[::1?\]|::):\d+->`)
	reNumber    = regexp.MustCompile(`\d+(\.\d+)?`)
	reSize      = regexp.MustCompile(`\b\d+(\.\d+)?\s?([kKMGTP]i?)?B\b`)
	reSpaces    = regexp.MustCompile(`[ \t]{2,}`)
	reTrailing  = regexp.MustCompile(`[ \t]+\n`)
)

func (n normalizer) apply(s string) string {
	s = regexp.MustCompile(`sp-e2et-`+regexp.QuoteMeta(n.run)+`-[dp]\b`).ReplaceAllString(s, "sp-e2et-RUN-S")
	s = reTimestamp.ReplaceAllString(s, "<TIME>")
	ids := map[string]string{}
	s = reHexID.ReplaceAllStringFunc(s, func(id string) string {
		key := id[:12]
		p, ok := ids[key]
		if !ok {
			p = fmt.Sprintf("<ID%d>", len(ids)+1)
			ids[key] = p
		}
		return p
	})
	s = reDuration.ReplaceAllString(s, "<DUR>")
	s = reMAC.ReplaceAllString(s, "<MAC>")
	s = reHostPort.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, `"HostPort"`) {
			return `"HostPort": "<PORT>"`
		}
		return m[:strings.LastIndex(m, ":")] + ":<PORT>->"
	})
	s = reIPv4.ReplaceAllStringFunc(s, func(ip string) string {
		if ip == "127.0.0.1" || ip == "0.0.0.0" {
			return ip
		}
		return "<IP>"
	})
	s = rePid.ReplaceAllString(s, `"Pid": <PID>`)
	if n.numbers {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			if !strings.HasPrefix(l, "exit ") && !strings.HasPrefix(l, "## ") {
				lines[i] = reNumber.ReplaceAllString(reSize.ReplaceAllString(l, "<SIZE>"), "N")
			}
		}
		s = strings.Join(lines, "\n")
	}
	// Table columns are as wide as their widest cell: a normalized cell
	// may have been wider on one side.
	s = reSpaces.ReplaceAllString(s, "  ")
	return reTrailing.ReplaceAllString(s, "\n")
}

// lineDiff is a unified-style line diff of a and b (longest common
// subsequence), "" when they are equal.
func lineDiff(a, b string) string {
	if a == b {
		return ""
	}
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			fmt.Fprintf(&out, "  %s\n", x[i])
			i++
			j++
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&out, "+ %s\n", y[j])
			j++
		default:
			fmt.Fprintf(&out, "- %s\n", x[i])
			i++
		}
	}
	return out.String()
}

// treeListing describes every file under dir: path, mode, size, the
// SHA-256 of a regular file's contents, a symlink's target.
func treeListing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	var walk func(rel string)
	walk = func(rel string) {
		entries, err := os.ReadDir(dir + "/" + rel)
		if err != nil {
			t.Fatalf("list %s: %v", dir+"/"+rel, err)
		}
		for _, e := range entries {
			p := strings.TrimPrefix(rel+"/"+e.Name(), "/")
			fi, err := os.Lstat(dir + "/" + p)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case fi.Mode()&os.ModeSymlink != 0:
				target, _ := os.Readlink(dir + "/" + p)
				fmt.Fprintf(&b, "%s %v -> %s\n", p, fi.Mode(), target)
			case fi.IsDir():
				fmt.Fprintf(&b, "%s %v\n", p, fi.Mode())
				walk(p)
			default:
				data, err := os.ReadFile(dir + "/" + p)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "%s %v %d %x\n", p, fi.Mode(), fi.Size(), sha256.Sum256(data))
			}
		}
	}
	walk("")
	return b.String()
}

// ptyProcess is a command whose controlling terminal is a pseudo-terminal
// the test holds the master side of.
type ptyProcess struct {
	cmd    *exec.Cmd
	master *os.File

	mu   sync.Mutex
	out  bytes.Buffer
	more chan struct{} // closed and replaced whenever output arrives
	done chan struct{} // closed when the master reads EOF/EIO
}

func ptyIoctl(fd uintptr, req uint, arg unsafe.Pointer) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, uintptr(req), uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// openPTY opens a new pseudo-terminal pair (Linux /dev/ptmx), sized rows x cols.
func openPTY(rows, cols uint16) (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	var unlock int32
	var n uint32
	if err = ptyIoctl(master.Fd(), syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err == nil {
		err = ptyIoctl(master.Fd(), syscall.TIOCGPTN, unsafe.Pointer(&n))
	}
	if err == nil {
		slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	}
	if err == nil {
		err = setWinsize(master, rows, cols)
	}
	if err != nil {
		master.Close()
		if slave != nil {
			slave.Close()
		}
		return nil, nil, fmt.Errorf("open a pseudo-terminal: %w", err)
	}
	return master, slave, nil
}

// setWinsize sets the terminal's size; the kernel signals SIGWINCH to its
// foreground process group.
func setWinsize(f *os.File, rows, cols uint16) error {
	ws := struct{ Row, Col, X, Y uint16 }{rows, cols, 0, 0}
	return ptyIoctl(f.Fd(), syscall.TIOCSWINSZ, unsafe.Pointer(&ws))
}

// startPTY starts cmd as a session leader with a new pseudo-terminal of
// rows x cols as its controlling terminal and standard streams.
func startPTY(t *testing.T, cmd *exec.Cmd, rows, cols uint16) *ptyProcess {
	t.Helper()
	master, slave, err := openPTY(rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		master.Close()
		slave.Close()
		t.Fatal(err)
	}
	slave.Close() // the child holds it now: the master reads EIO once it is gone
	p := &ptyProcess{cmd: cmd, master: master, more: make(chan struct{}), done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
			if err != nil {
				close(p.done)
				return
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		master.Close()
	})
	return p
}

// waitFor waits until the terminal's output contains s; it fails the test
// (with the output so far) when ctx ends first.
func (p *ptyProcess) waitFor(ctx context.Context, t *testing.T, s string) {
	t.Helper()
	for {
		p.mu.Lock()
		got, more := p.out.String(), p.more
		p.mu.Unlock()
		if strings.Contains(got, s) {
			return
		}
		select {
		case <-more:
		case <-p.done:
			p.mu.Lock()
			got = p.out.String()
			p.mu.Unlock()
			if !strings.Contains(got, s) {
				t.Fatalf("terminal closed before %q appeared; output:\n%q", s, got)
			}
			return
		case <-ctx.Done():
			t.Fatalf("%q did not appear on the terminal: %v; output so far:\n%q", s, ctx.Err(), got)
		}
	}
}

// finish waits for the command to exit and the terminal to drain, and
// returns everything it wrote and its exit code.
func (p *ptyProcess) finish(t *testing.T) (string, int) {
	t.Helper()
	code := cmdExitCode(t, p.cmd.Wait())
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String(), code
}

// knownDifference is a difference this suite found, reported and not yet
// fixed. In the proxied transcript, the block of command (normalized, "" for
// every block) has proxied (a regular expression) replaced by direct; each
// use is logged. One that no longer occurs fails the test, so the list only
// shrinks as the proxy is fixed.
type knownDifference struct {
	command string
	proxied *regexp.Regexp
	direct  string
	why     string
	used    bool
	seen    []string // the commands it was seen in
}

type knownDifferenceList []*knownDifference

// knownDifferences is empty: the synthesized 404s for missing objects it
// once listed now carry dockerd's own words.
var knownDifferences = knownDifferenceList{}

// rewrite applies the known differences to a normalized proxied transcript.
func (l knownDifferenceList) rewrite(t *testing.T, transcript string) string {
	blocks := strings.SplitAfter(transcript, "\n## ")
	for i, b := range blocks {
		header, _, _ := strings.Cut(strings.TrimPrefix(b, "## "), "\n")
		for _, k := range l {
			if k.command != "" && "$ "+k.command != header {
				continue
			}
			if k.proxied.MatchString(b) {
				k.used = true
				k.seen = append(k.seen, header)
				b = k.proxied.ReplaceAllString(b, k.direct)
			}
		}
		blocks[i] = b
	}
	return strings.Join(blocks, "")
}

// checkUsed logs where each known difference was seen and fails for one
// that was not.
func (l knownDifferenceList) checkUsed(t *testing.T) {
	for _, k := range l {
		if !k.used {
			t.Errorf("known difference (%s) in %q no longer occurs: remove it from knownDifferences", k.why, k.command)
			continue
		}
		t.Logf("KNOWN DIFFERENCE (a proxy bug, reported; rewritten before the comparison): %s: %d command(s): %s",
			k.why, len(k.seen), strings.Join(k.seen, "; "))
	}
}
