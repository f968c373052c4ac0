package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/proxy"
)

// truth is what the generator wrote, to check the command against without
// going through the reader.
type truth struct {
	id       string
	t        time.Time
	decision string
	known    bool
	uid      int
	user     string
	op       string
	image    string
	reasons  []string
	err      string
}

var (
	genBase    = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	genCallers = []proxy.Caller{
		{Known: true, UID: 1000, GID: 1000, PID: 1, User: "alice", Group: "alice", Groups: []string{"alice", "docker"}},
		{Known: true, UID: 1001, GID: 1001, PID: 1, User: "bob"},
		{Known: true, UID: 0, GID: 0, PID: 1, User: "root"},
		{Known: true, UID: 1002, GID: 1002, PID: 1}, // no name on this host
		{}, // unknown (TCP listener)
	}
	genOps     = []string{"container.create", "container.start", "container.list", "exec.create", "image.pull", "container.logs"}
	genImages  = []string{"docker.io/library/nginx:latest", "registry.example.com/team/app:1.2", "busybox", ""}
	genReasons = []string{"containers must not run as root", "bind mount of /etc is not allowed", "privileged containers are not allowed", "image registry.example.com is not trusted \"here\""}
)

// generateLog writes n records through the real writer and returns what it
// wrote. Records are 7 ms apart, starting at genBase.
func generateLog(tb testing.TB, opts audit.Options, n int, seed uint64) []truth {
	l, err := audit.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]truth, 0, n)
	for i := range n {
		c := genCallers[rng.IntN(len(genCallers))]
		op := genOps[rng.IntN(len(genOps))]
		img := genImages[rng.IntN(len(genImages))]
		ev := &proxy.AuditEvent{
			Start: genBase.Add(time.Duration(i) * 7 * time.Millisecond),
			Request: &proxy.Request{ID: fmt.Sprintf("r%07d", i), Caller: c,
				Operation: proxy.Operation{Name: op, Method: "POST", Path: "/v1.41/" + strings.ReplaceAll(op, ".", "/"), APIVersion: "1.41"}},
			Decision:     proxy.Decision{Allow: true, Revision: "sha256:abc", Facts: map[string]any{}},
			Outcome:      "allow",
			Status:       200,
			DecisionTime: time.Duration(rng.IntN(2000)) * time.Microsecond,
			TotalTime:    time.Duration(rng.IntN(50)) * time.Millisecond,
		}
		if img != "" {
			ev.Decision.Facts["image"] = img
			ev.Decision.Facts["mounts"] = []any{map[string]any{"type": "bind", "source": "/srv/data", "target": "/data", "read_only": rng.IntN(2) == 0}}
			ev.Decision.Facts["user"] = map[string]any{"value": "", "root": true}
		}
		t := truth{id: ev.Request.ID, t: ev.Start, known: c.Known, uid: c.UID, user: c.User, op: op, image: img}
		switch r := rng.IntN(100); {
		case r < 80:
			t.decision = "allow"
		case r < 92:
			t.decision = "deny"
			ev.Decision.Allow, ev.Outcome, ev.Status = false, "deny", 403
			ev.Decision.Reasons = []string{genReasons[rng.IntN(len(genReasons))]}
			if rng.IntN(3) == 0 {
				ev.Decision.Reasons = append(ev.Decision.Reasons, genReasons[rng.IntN(len(genReasons))])
			}
		case r < 97:
			t.decision = "would-deny"
			ev.Mode = "dry-run"
			ev.Decision.Allow = false
			ev.Decision.Reasons = []string{genReasons[rng.IntN(len(genReasons))]}
		default:
			t.decision = "error"
			ev.Outcome, ev.Status, ev.Error = "error", 400, "cannot decode body: unexpected EOF"
			ev.Decision = proxy.Decision{}
			ev.Request.Operation.Name = ""
			t.op = ""
			t.image = ""
		}
		t.reasons = ev.Decision.Reasons
		t.err = ev.Error
		if err := l.Audit(ev); err != nil {
			tb.Fatal(err)
		}
		out = append(out, t)
	}
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func runCmd(t *testing.T, now time.Time, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runAudit(context.Background(), args, &stdout, &stderr, now)
	return stdout.String(), stderr.String(), code
}

func logFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "audit.log*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no log files in %s: %v", dir, err)
	}
	return files
}

func idsOf(t *testing.T, jsonLines string) []string {
	t.Helper()
	var ids []string
	for _, line := range strings.Split(strings.TrimSuffix(jsonLines, "\n"), "\n") {
		if line == "" {
			continue
		}
		var rec audit.Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("--json printed a line that is not a record: %q: %v", line, err)
		}
		ids = append(ids, rec.RequestID)
	}
	return ids
}

func TestAuditFilters(t *testing.T) {
	dir := t.TempDir()
	// Rotated and compressed: the command must read all of it.
	gen := generateLog(t, audit.Options{Path: filepath.Join(dir, "audit.log"), MaxSizeMB: 1, Compress: true}, 6000, 1)
	files := logFiles(t, dir)
	if len(files) < 3 || !strings.HasSuffix(files[1], ".gz") {
		t.Fatalf("the generated log is not rotated and compressed: %v", files)
	}
	// Shuffle the order: the command reads oldest first anyway.
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	now := genBase.Add(time.Duration(len(gen)) * 7 * time.Millisecond) // just after the last record

	has := func(list []string, sub string) bool {
		for _, s := range list {
			if strings.Contains(s, sub) {
				return true
			}
		}
		return false
	}
	cases := []struct {
		flags []string
		want  func(r truth) bool
	}{
		{nil, func(truth) bool { return true }},
		{[]string{"--decision", "deny"}, func(r truth) bool { return r.decision == "deny" }},
		{[]string{"--decision", "deny,would-deny"}, func(r truth) bool { return r.decision == "deny" || r.decision == "would-deny" }},
		{[]string{"--decision", "error"}, func(r truth) bool { return r.decision == "error" }},
		{[]string{"--uid", "1001"}, func(r truth) bool { return r.known && r.uid == 1001 }},
		{[]string{"--uid", "0"}, func(r truth) bool { return r.uid == 0 }}, // unknown callers have uid 0 too
		{[]string{"--user", "alice"}, func(r truth) bool { return r.user == "alice" }},
		{[]string{"--operation", "container.*"}, func(r truth) bool { return strings.HasPrefix(r.op, "container.") }},
		{[]string{"--operation", "exec.create"}, func(r truth) bool { return r.op == "exec.create" }},
		{[]string{"--image", "nginx"}, func(r truth) bool { return strings.Contains(r.image, "nginx") }},
		{[]string{"--reason", "root"}, func(r truth) bool { return has(r.reasons, "root") }},
		{[]string{"--reason", `trusted "here"`}, func(r truth) bool { return has(r.reasons, `trusted "here"`) }},
		{[]string{"--reason", "unexpected EOF"}, func(r truth) bool { return strings.Contains(r.err, "unexpected EOF") }},
		{[]string{"--since", "2025-03-04T10:00:10Z", "--until", "2025-03-04T10:00:20.5Z"}, func(r truth) bool {
			return !r.t.Before(genBase.Add(10*time.Second)) && r.t.Before(genBase.Add(20500*time.Millisecond))
		}},
		{[]string{"--since", "5s"}, func(r truth) bool { return !r.t.Before(now.Add(-5 * time.Second)) }},
		{[]string{"--decision", "deny", "--user", "bob", "--operation", "container.create", "--image", "example.com"}, func(r truth) bool {
			return r.decision == "deny" && r.user == "bob" && r.op == "container.create" && strings.Contains(r.image, "example.com")
		}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.flags, " "), func(t *testing.T) {
			// Flags after the files work too.
			args := append(append([]string{"--json"}, files...), tc.flags...)
			stdout, stderr, code := runCmd(t, now, args...)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var want []string
			for _, r := range gen {
				if tc.want(r) {
					want = append(want, r.id)
				}
			}
			got := idsOf(t, stdout)
			if len(want) == 0 || len(want) == len(gen) && tc.flags != nil {
				t.Fatalf("the filter selects %d of %d records: the case tests nothing", len(want), len(gen))
			}
			if !reflect.DeepEqual(got, want) { // same records, in the order written
				t.Fatalf("got %d records, want %d (first got %v, first want %v)", len(got), len(want), head(got), head(want))
			}
		})
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

func TestAuditTable(t *testing.T) {
	dir := t.TempDir()
	gen := generateLog(t, audit.Options{Path: filepath.Join(dir, "audit.log")}, 400, 2)
	stdout, _, code := runCmd(t, time.Now(), filepath.Join(dir, "audit.log"))
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != len(gen)+1 || !regexp.MustCompile(`^TIME\s+CALLER\s+OPERATION\s+DECISION\s+DETAIL$`).MatchString(lines[0]) {
		t.Fatalf("%d lines, header %q", len(lines), lines[0])
	}
	col := strings.Index(lines[0], "DECISION")
	for i, r := range gen {
		row := lines[i+1]
		if !strings.HasPrefix(row, r.t.Format("2006-01-02T15:04:05.000Z")) {
			t.Fatalf("row %d %q does not start with the time %v", i, row, r.t)
		}
		if got := strings.Fields(row[col:])[0]; got != r.decision {
			t.Fatalf("row %d: decision column %q, want %q", i, got, r.decision)
		}
		caller := "unknown"
		if r.known && r.user != "" {
			caller = r.user + "(" + strconv.Itoa(r.uid) + ")"
		} else if r.known {
			caller = "uid " + strconv.Itoa(r.uid)
		}
		detail := "POST /v1.41/"
		switch {
		case len(r.reasons) > 1:
			detail = r.reasons[0] + " (+1 more)"
		case len(r.reasons) == 1:
			detail = r.reasons[0]
		case r.err != "":
			detail = r.err
		}
		if !strings.Contains(row, caller) || !strings.Contains(row[col:], detail) {
			t.Fatalf("row %d %q lacks caller %q or detail %q", i, row, caller, detail)
		}
	}
}

func TestAuditSummary(t *testing.T) {
	dir := t.TempDir()
	gen := generateLog(t, audit.Options{Path: filepath.Join(dir, "audit.log"), MaxSizeMB: 1}, 5000, 3)
	stdout, stderr, code := runCmd(t, time.Now(), append([]string{"--summary", "--top", "3"}, logFiles(t, dir)...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	decisions := map[string]int{}
	reasons := map[string]int{}
	callers := map[string][2]int{}
	refused := 0
	for _, r := range gen {
		decisions[r.decision]++
		isRefusal := r.decision != "allow"
		if isRefusal {
			refused++
			for _, reason := range r.reasons {
				reasons[reason]++
			}
			if r.err != "" {
				reasons[r.err]++
			}
		}
		key := "unknown"
		if r.known && r.user != "" {
			key = r.user + "(" + strconv.Itoa(r.uid) + ")"
		} else if r.known {
			key = "uid " + strconv.Itoa(r.uid)
		}
		c := callers[key]
		c[0]++
		if isRefusal {
			c[1]++
		}
		callers[key] = c
	}
	g := func(n int) string { // thousands separators, as printed
		s := strconv.Itoa(n)
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		return s
	}
	if !strings.HasPrefix(stdout, g(len(gen))+" records, 2025-03-04T10:00:00.000000000Z .. ") {
		t.Errorf("first line: %q", strings.SplitN(stdout, "\n", 2)[0])
	}
	for d, n := range decisions {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(d) + `\s+` + regexp.QuoteMeta(g(n)) + `\s`).MatchString(stdout) {
			t.Errorf("summary lacks %s = %d:\n%s", d, n, stdout)
		}
	}
	type kv struct {
		k string
		n int
	}
	var top []kv
	for k, n := range reasons {
		top = append(top, kv{k, n})
	}
	sort.Slice(top, func(i, j int) bool { return top[i].n > top[j].n || top[i].n == top[j].n && top[i].k < top[j].k })
	for _, r := range top[:3] {
		if !strings.Contains(stdout, g(r.n)+"  "+r.k+"\n") {
			t.Errorf("summary lacks reason %q x %d:\n%s", r.k, r.n, stdout)
		}
	}
	if !strings.Contains(stdout, fmt.Sprintf("  (%d more)\n", len(top)-3)) {
		t.Errorf("summary does not say how many reasons it left out:\n%s", stdout)
	}
	for _, key := range []string{"alice(1000)", "uid 1002", "unknown"} {
		c := callers[key]
		if !regexp.MustCompile(`(?m)^  `+regexp.QuoteMeta(key)+`\s+`+g(c[0])+`\s+`+g(c[1])+`$`).MatchString(stdout) &&
			!strings.Contains(stdout, "more)") {
			t.Errorf("summary lacks caller %s %v:\n%s", key, c, stdout)
		}
	}
	// The chart's rows add up to the refusals.
	chart := stdout[strings.Index(stdout, "Refusals over time"):]
	sum := 0
	rows := regexp.MustCompile(`(?m)^  \d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?Z  [█ ]{40} ([\d,]+)$`).FindAllStringSubmatch(chart, -1)
	for _, m := range rows {
		n, _ := strconv.Atoi(strings.ReplaceAll(m[2], ",", ""))
		sum += n
	}
	if len(rows) < 2 || len(rows) > 24 || sum != refused {
		t.Errorf("chart has %d rows adding up to %d, want 2..24 rows adding up to %d:\n%s", len(rows), sum, refused, chart)
	}
}

// syncBuffer is written by the follow goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAuditFollow(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.log")
	l, err := audit.New(audit.Options{Path: logPath})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	write := func(id string, allow bool) {
		t.Helper()
		ev := &proxy.AuditEvent{Request: &proxy.Request{ID: id, Operation: proxy.Operation{Name: "container.create"}},
			Decision: proxy.Decision{Allow: allow}}
		if err := l.Audit(ev); err != nil {
			t.Fatal(err)
		}
	}
	write("before-1", false) // already there: not shown without --from-start

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- runAudit(ctx, []string{"-f", "--json", "--poll", "2ms", "--decision", "deny", logPath}, &stdout, &stderr, time.Now())
	}()
	printed := func() []string {
		var ids []string
		for _, id := range idsOf(t, stdout.String()) {
			if !strings.HasPrefix(id, "probe-") {
				ids = append(ids, id)
			}
		}
		return ids
	}
	waitIDs := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := printed()
			if reflect.DeepEqual(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("follow printed %v, want %v (stderr %q)", got, want, stderr.String())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	// The follower starts at the end of the file whenever it gets to open
	// it: write probes until one shows up, then it is surely reading.
	for i := 0; !strings.Contains(stdout.String(), `"probe-`); i++ {
		if i > 5000 {
			t.Fatalf("follow never printed a probe record (stderr %q)", stderr.String())
		}
		write(fmt.Sprintf("probe-%d", i), false)
		time.Sleep(2 * time.Millisecond)
	}
	write("a-1", false)
	write("a-2", true) // filtered out
	waitIDs("a-1")

	// A record written in two pieces appears once, when complete.
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	var rec bytes.Buffer
	enc, err := audit.New(audit.Options{Stdout: &rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Audit(&proxy.AuditEvent{Request: &proxy.Request{ID: "half"}, Outcome: "deny"}); err != nil {
		t.Fatal(err)
	}
	enc.Close()
	line := rec.String()
	f.WriteString(line[:30])
	time.Sleep(20 * time.Millisecond)
	f.WriteString(line[30:])
	f.Close()
	waitIDs("a-1", "half")

	// logrotate: move the file away, the writer reopens; the follower reads
	// the rest of the old file and goes on with the new one.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	write("b-old", false)
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	write("b-new", false)
	waitIDs("a-1", "half", "b-old", "b-new")

	// copytruncate: the file shrinks; the follower starts over.
	if err := os.Truncate(logPath, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil { // the writer's offset does not matter with O_APPEND; reopen resets its size
		t.Fatal(err)
	}
	write("c-1", false)
	waitIDs("a-1", "half", "b-old", "b-new", "c-1")

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("follow exited %d: %s", code, stderr.String())
	}
}

func TestAuditUsageErrors(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.log")
	generateLog(t, audit.Options{Path: logPath}, 10, 4)
	for _, args := range [][]string{
		{},
		{"--decision", "maybe", logPath},
		{"--since", "yesterday", logPath},
		{"--operation", "[", logPath},
		{"-f", logPath, logPath},
		{"-f", "--summary", logPath},
		{"--no-such-flag", logPath},
	} {
		if _, stderr, code := runCmd(t, time.Now(), args...); code != 2 || stderr == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
	if _, stderr, code := runCmd(t, time.Now(), filepath.Join(dir, "missing.log")); code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, stderr)
	}
	// A torn last line (a crash mid-write) is skipped and reported.
	f, _ := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"time":"2025-03-04T10:00:00.0`)
	f.Close()
	stdout, stderr, code := runCmd(t, time.Now(), "--json", logPath)
	if code != 0 || len(idsOf(t, stdout)) != 10 || !strings.Contains(stderr, "skipped 1 lines") {
		t.Errorf("torn line: exit %d, %d records, stderr %q", code, len(idsOf(t, stdout)), stderr)
	}
}

// BenchmarkAuditSummary measures --summary over a generated log of
// SOCKPROXY_AUDIT_BENCH_MB megabytes (default 32). Set
// SOCKPROXY_AUDIT_BENCH_FILE to keep the log at that path (and reuse it),
// e.g. to time the built binary on a 1 GB log by hand.
func BenchmarkAuditSummary(b *testing.B) {
	mb, _ := strconv.Atoi(os.Getenv("SOCKPROXY_AUDIT_BENCH_MB"))
	if mb <= 0 {
		mb = 32
	}
	file := os.Getenv("SOCKPROXY_AUDIT_BENCH_FILE")
	if file == "" {
		file = filepath.Join(b.TempDir(), "audit.log")
	}
	st, err := os.Stat(file)
	if err != nil || st.Size() == 0 { // an existing log is reused as it is
		// About 500 bytes a record.
		generateLog(b, audit.Options{Path: file}, mb<<20/500, 5)
		if st, err = os.Stat(file); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(st.Size())
	b.ResetTimer()
	for b.Loop() {
		var stderr bytes.Buffer
		if code := runAudit(context.Background(), []string{"--summary", file}, io.Discard, &stderr, time.Now()); code != 0 {
			b.Fatalf("exit %d: %s", code, stderr.String())
		}
	}
}
