package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/proxy"
)

// schemaKeys is the documented schema (docs/audit.md); every line has all of them.
var schemaKeys = []string{"time", "request_id", "decision", "mode", "caller", "operation", "method", "path",
	"api_version", "reasons", "warnings", "policy_revision", "facts", "body_sha256", "status",
	"decision_us", "total_us", "error"}

var callerKeys = []string{"known", "uid", "gid", "pid", "user", "group", "groups", "exe"}

func sampleEvent(i int) *proxy.AuditEvent {
	ev := &proxy.AuditEvent{
		Start: time.Date(2025, 3, 4, 5, 6, 7, 8000, time.UTC).Add(time.Duration(i) * time.Millisecond),
		Request: &proxy.Request{
			ID: fmt.Sprintf("req-%d", i),
			Operation: proxy.Operation{Name: "container.create", Method: "POST",
				Path: "/v1.41/containers/create?name=web", APIVersion: "1.41"},
			Caller: proxy.Caller{Known: true, UID: 1000, GID: 1000, PID: os.Getpid(), User: "alice",
				Group: "alice", Groups: []string{"alice", "docker"}},
		},
		Decision: proxy.Decision{
			Allow:    i%3 != 0,
			Revision: "sha256:0123456789abcdef",
			Facts: map[string]any{
				"image":  "docker.io/library/nginx:latest",
				"user":   map[string]any{"value": "", "root": true},
				"mounts": []any{map[string]any{"type": "bind", "source": "/srv/www", "target": "/usr/share/nginx", "read_only": true}},
				"ports":  []any{map[string]any{"container_port": "80", "host_port": "8080", "host_ip": ""}},
			},
		},
		Outcome:      "allow",
		Status:       201,
		BodySHA256:   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		DecisionTime: 812 * time.Microsecond,
		TotalTime:    23 * time.Millisecond,
	}
	if !ev.Decision.Allow {
		ev.Outcome, ev.Status = "deny", 403
		ev.Decision.Reasons = []string{"containers must not run as root", "bind mount /srv/www is not allowed"}
	}
	return ev
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end with a newline: a torn last line", path)
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func sorted(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}

func TestEveryAuditCallWritesOneSchemaLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := New(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	type want struct{ decision, mode string }
	var events []*proxy.AuditEvent
	var wants []want
	add := func(ev *proxy.AuditEvent, decision, mode string) {
		events, wants = append(events, ev), append(wants, want{decision, mode})
	}
	add(sampleEvent(1), "allow", "enforce")
	add(sampleEvent(3), "deny", "enforce")
	dry := sampleEvent(6) // refused by policy, forwarded in dry-run
	dry.Mode, dry.Outcome, dry.Status = "dry-run", "allow", 201
	add(dry, "would-deny", "dry-run")
	dryAllow := sampleEvent(7)
	dryAllow.Mode = "dry-run"
	add(dryAllow, "allow", "dry-run")
	add(&proxy.AuditEvent{Outcome: "error", Status: 400, Error: "unknown endpoint"}, "error", "enforce") // no request at all
	add(&proxy.AuditEvent{Request: &proxy.Request{ID: "x"}}, "deny", "enforce")                          // no outcome: from Decision
	weird := sampleEvent(2)
	weird.Request.Operation.Path = "/v1.41/containers/\"q\"\\\n\t\x00\x7f\u2028<>&é\xff/json"
	weird.Decision.Warnings = []string{"image is not pinned by digest"}
	weird.Decision.Facts = map[string]any{"n": json.Number("12.5"), "f": 1.5e-9, "i": int64(-3), "typed": struct {
		A string `json:"a"`
	}{"b"}, "nil": nil, "labels": map[string]string{"k": "v"}}
	add(weird, "allow", "enforce")

	for _, ev := range events {
		if err := l.Audit(ev); err != nil {
			t.Fatalf("Audit: %v", err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != len(events) {
		t.Fatalf("%d events produced %d lines", len(events), len(lines))
	}
	self, _ := os.Readlink("/proc/self/exe")
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, line)
		}
		if got := keysOf(m); !reflect.DeepEqual(got, sorted(schemaKeys)) {
			t.Errorf("line %d keys %v, want %v", i, got, sorted(schemaKeys))
		}
		if got := keysOf(m["caller"].(map[string]any)); !reflect.DeepEqual(got, sorted(callerKeys)) {
			t.Errorf("line %d caller keys %v, want %v", i, got, sorted(callerKeys))
		}
		var rec Record
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("line %d does not decode into Record: %v", i, err)
		}
		if rec.Decision != wants[i].decision || rec.Mode != wants[i].mode {
			t.Errorf("line %d: decision %q mode %q, want %q %q", i, rec.Decision, rec.Mode, wants[i].decision, wants[i].mode)
		}
		ts, err := time.Parse(time.RFC3339Nano, rec.Time)
		if err != nil {
			t.Errorf("line %d: time %q: %v", i, rec.Time, err)
		}
		ev := events[i]
		if !ev.Start.IsZero() && !ts.Equal(ev.Start) {
			t.Errorf("line %d: time %v, want %v", i, ts, ev.Start)
		}
		if ev.Request == nil {
			continue
		}
		r := ev.Request
		if rec.RequestID != r.ID || rec.Operation != r.Operation.Name || rec.Method != r.Operation.Method ||
			rec.Path != strings.ToValidUTF8(r.Operation.Path, "\ufffd") || rec.APIVersion != r.Operation.APIVersion {
			t.Errorf("line %d: request fields differ: %+v", i, rec)
		}
		if rec.Caller.UID != r.Caller.UID || rec.Caller.User != r.Caller.User ||
			!reflect.DeepEqual(nilIfEmpty(rec.Caller.Groups), nilIfEmpty(r.Caller.Groups)) {
			t.Errorf("line %d: caller %+v, want %+v", i, rec.Caller, r.Caller)
		}
		if r.Caller.Known && rec.Caller.Exe != self {
			t.Errorf("line %d: exe %q, want this test binary %q", i, rec.Caller.Exe, self)
		}
		if !reflect.DeepEqual(nilIfEmpty(rec.Reasons), nilIfEmpty(ev.Decision.Reasons)) ||
			!reflect.DeepEqual(nilIfEmpty(rec.Warnings), nilIfEmpty(ev.Decision.Warnings)) {
			t.Errorf("line %d: reasons/warnings %q %q", i, rec.Reasons, rec.Warnings)
		}
		if rec.Status != ev.Status || rec.BodySHA256 != ev.BodySHA256 || rec.PolicyRevision != ev.Decision.Revision ||
			rec.DecisionUS != ev.DecisionTime.Microseconds() || rec.TotalUS != ev.TotalTime.Microseconds() {
			t.Errorf("line %d: %+v", i, rec)
		}
		// Facts must say what encoding/json would have said.
		wantFacts := map[string]any{}
		if ev.Decision.Facts != nil {
			enc, err := json.Marshal(ev.Decision.Facts)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(enc, &wantFacts); err != nil {
				t.Fatal(err)
			}
		}
		if !reflect.DeepEqual(rec.Facts, wantFacts) {
			t.Errorf("line %d: facts %v, want %v", i, rec.Facts, wantFacts)
		}
	}
}

func nilIfEmpty(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	return ss
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\/", "\x00\x1f\x7f", "é\u2028\u2029", "\xff\xfe", "a\xc3", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := appendString(nil, s)
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, enc, err)
		}
		var std string
		stdEnc, _ := json.Marshal(s)
		_ = json.Unmarshal(stdEnc, &std)
		if got != std {
			t.Fatalf("%q: we decode to %q, encoding/json to %q", s, got, std)
		}
	})
}

func countLines(t *testing.T, paths []string) (int, map[string]int) {
	t.Helper()
	ids := map[string]int{}
	n := 0
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec Record
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("%s: unparseable line %q: %v", p, sc.Text(), err)
			}
			ids[rec.RequestID]++
			n++
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return n, ids
}

func TestRotationKeepsEveryLine(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "audit.log")
			l, err := New(Options{Path: path, MaxSizeMB: 1, Compress: compress})
			if err != nil {
				t.Fatal(err)
			}
			const writers, each = 8, 1500
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						ev := sampleEvent(i)
						ev.Request.ID = fmt.Sprintf("w%d-%d", w, i)
						if err := l.Audit(ev); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if l.Stats().Rotations < 2 {
				t.Fatalf("only %d rotations: the test does not exercise rotation", l.Stats().Rotations)
			}
			backups, err := listBackups(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(backups) != int(l.Stats().Rotations) {
				t.Errorf("%d rotations but %d backups: %v", l.Stats().Rotations, len(backups), backups)
			}
			for _, b := range backups {
				if compress != strings.HasSuffix(b, ".gz") {
					t.Errorf("backup %s (compress=%v)", b, compress)
				}
				if st, err := os.Stat(b); err == nil && !compress && st.Size() > 1<<20 {
					t.Errorf("backup %s has %d bytes, over the 1 MB limit", b, st.Size())
				}
			}
			n, ids := countLines(t, append(backups, path))
			if n != writers*each || len(ids) != writers*each {
				t.Fatalf("%d events, %d lines with %d distinct ids across %d files", writers*each, n, len(ids), len(backups)+1)
			}
		})
	}
}

func TestMaxBackupsPrunesOldest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := New(Options{Path: path, MaxSizeMB: 1, MaxBackups: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12000 {
		if err := l.Audit(sampleEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	backups, _ := listBackups(path)
	if rot := l.Stats().Rotations; rot < 3 || len(backups) != 2 {
		t.Fatalf("%d rotations left %d backups, want 2: %v", rot, len(backups), backups)
	}
	// The newest lines survive: the last event is in the live file.
	lines := readLines(t, path)
	var rec Record
	if err := json.Unmarshal(lines[len(lines)-1], &rec); err != nil || rec.RequestID != "req-11999" {
		t.Fatalf("last line %s (%v)", lines[len(lines)-1], err)
	}
}

// switchWriter fails while broken is set, optionally after writing part of
// the line (as a full disk does).
type switchWriter struct {
	mu     sync.Mutex
	broken bool
	torn   bool
	buf    bytes.Buffer
}

func (w *switchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken {
		if w.torn {
			w.buf.Write(p[:len(p)/2])
			return len(p) / 2, errors.New("no space left on device")
		}
		return 0, errors.New("broken pipe")
	}
	return w.buf.Write(p)
}

func (w *switchWriter) set(broken bool) {
	w.mu.Lock()
	w.broken = broken
	w.mu.Unlock()
}

func (w *switchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor polls cond until it holds; the deadline only bounds a broken test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWriteFailureFailsReadyUntilRecovered(t *testing.T) {
	for _, torn := range []bool{false, true} {
		t.Run(fmt.Sprintf("torn=%v", torn), func(t *testing.T) {
			w := &switchWriter{torn: torn}
			l, err := New(Options{Stdout: w, RetryInterval: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if err := l.Audit(sampleEvent(1)); err != nil || l.Ready() != nil {
				t.Fatalf("healthy writer: Audit %v, Ready %v", err, l.Ready())
			}
			w.set(true)
			if err := l.Audit(sampleEvent(2)); err == nil {
				t.Fatal("Audit on a failing writer returned nil")
			}
			if err := l.Ready(); err == nil || !strings.Contains(err.Error(), "refusing requests") {
				t.Fatalf("Ready after a failed write: %v", err)
			}
			if err := l.Audit(sampleEvent(3)); err == nil {
				t.Fatal("Audit while failing returned nil")
			}
			if st := l.Stats(); !st.Failing || st.Pending != 2 || st.WriteErrors == 0 {
				t.Fatalf("stats while failing: %+v", st)
			}
			w.set(false)
			waitFor(t, "Ready to recover", func() bool { return l.Ready() == nil })
			if err := l.Audit(sampleEvent(4)); err != nil {
				t.Fatal(err)
			}
			// Every record arrived, in order; a torn fragment stays on its own line.
			var ids []string
			for _, line := range strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n") {
				var rec Record
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					if torn && strings.HasPrefix(line, `{"time":`) && !strings.HasSuffix(line, "}") {
						continue // the half line the full disk took
					}
					t.Fatalf("unexpected line %q", line)
				}
				ids = append(ids, rec.RequestID)
			}
			if want := []string{"req-1", "req-2", "req-3", "req-4"}; !reflect.DeepEqual(ids, want) {
				t.Fatalf("records %v, want %v", ids, want)
			}
		})
	}
}

func TestFullFilesystemFailsReadyUntilRecovered(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Fatalf("this test needs /dev/full (a device whose writes fail with ENOSPC): %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	l, err := New(Options{Path: path, RetryInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Audit(sampleEvent(1)); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Audit on a full device: %v", err)
	}
	if l.Ready() == nil {
		t.Fatal("Ready is healthy after a failed write")
	}
	// The disk gets space: the path now leads to a writable file.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Ready to recover", func() bool { return l.Ready() == nil })
	if err := l.Audit(sampleEvent(2)); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("%d lines after recovery, want the held record and the new one:\n%s", len(lines), bytes.Join(lines, []byte("\n")))
	}
}

func TestFailOpenKeepsReadyHealthy(t *testing.T) {
	w := &switchWriter{broken: true}
	l, err := New(Options{Stdout: w, FailOpen: true, RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Audit(sampleEvent(1)); err == nil {
		t.Fatal("Audit on a failing writer returned nil")
	}
	if err := l.Ready(); err != nil {
		t.Fatalf("FailOpen: Ready %v", err)
	}
	if !l.Stats().Failing {
		t.Fatal("Stats does not report the failure")
	}
}

func TestMaxPendingDropsOldest(t *testing.T) {
	w := &switchWriter{broken: true}
	l, err := New(Options{Stdout: w, MaxPending: 3, RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		_ = l.Audit(sampleEvent(i))
	}
	if st := l.Stats(); st.Pending != 3 || st.Dropped != 2 {
		t.Fatalf("stats %+v, want 3 pending and 2 dropped", st)
	}
	w.set(false)
	if err := l.Close(); err != nil {
		t.Fatalf("Close should write the held records: %v", err)
	}
	if got := strings.Count(w.String(), "\n"); got != 3 {
		t.Fatalf("%d lines written, want the 3 newest", got)
	}
}

func TestReopenAfterExternalRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := New(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Audit(sampleEvent(1)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil { // what logrotate does
		t.Fatal(err)
	}
	if err := l.Audit(sampleEvent(2)); err != nil { // still goes to the moved file
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := l.Audit(sampleEvent(3)); err != nil {
		t.Fatal(err)
	}
	if n := len(readLines(t, path+".1")); n != 2 {
		t.Errorf("rotated file has %d lines, want 2", n)
	}
	lines := readLines(t, path)
	if len(lines) != 1 || !bytes.Contains(lines[0], []byte(`"request_id":"req-3"`)) {
		t.Errorf("new file: %s", bytes.Join(lines, []byte("\n")))
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a destination succeeded")
	}
	// A missing directory is made; one that cannot be (its parent is a
	// file) stops New, so the proxy never starts unaudited.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Path: filepath.Join(dir, "file", "audit.log")}); err == nil {
		t.Error("New with a path under a regular file succeeded")
	}
	l, err := New(Options{Path: filepath.Join(dir, "missing", "sub", "audit.log")})
	if err != nil {
		t.Fatalf("New with a path in a missing directory: %v", err)
	}
	l.Close()
	if fi, err := os.Stat(filepath.Join(dir, "missing", "sub")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("made directory: %v %v", fi, err)
	}
}

func BenchmarkAudit(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			l, err := New(Options{Path: filepath.Join(b.TempDir(), "audit.log"), Sync: sync})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ev := sampleEvent(3)
			b.ReportAllocs()
			for b.Loop() {
				if err := l.Audit(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	ev := sampleEvent(3)
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRecord(buf[:0], ev, "/usr/bin/docker", time.Time{})
	}
	b.SetBytes(int64(len(buf)))
}
