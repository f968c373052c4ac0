package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeSample writes n varied records and returns the path.
func writeSample(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := New(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ev := sampleEvent(i)
		ev.Request.ID = fmt.Sprintf("id-%d", i)
		ev.Request.Caller.UID = 1000 + i%4
		ev.Request.Caller.User = []string{"alice", "bob", "", "carol"}[i%4]
		if i%5 == 0 {
			ev.Request.Operation.Name = "exec.create"
			ev.Decision.Facts = map[string]any{"image": "busybox"}
		}
		if i%7 == 0 {
			ev.Mode, ev.Outcome = "dry-run", "allow"
		}
		if i == n/2 { // a line much longer than a test block
			ev.Decision.Facts = map[string]any{"image": "big", "labels": strings.Repeat("x", 20000)}
		}
		if err := l.Audit(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSummarizeInParallelCountsLikeOneByOne(t *testing.T) {
	path := writeSample(t, 3000)
	defer func(old int) { blockSize = old }(blockSize)
	blockSize = 4096
	for _, q := range []Query{{UID: -1}, {UID: -1, Decisions: []string{"deny", "would-deny"}}, {UID: 1001}} {
		m, err := q.Compile()
		if err != nil {
			t.Fatal(err)
		}
		seq := NewSummary()
		var v View
		if err := ReadFiles([]string{path}, func(line []byte) error {
			ok, err := m.Match(line, &v)
			if err != nil {
				t.Fatalf("unparseable line %q", line)
			}
			if ok {
				seq.Add(&v)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		par, err := Summarize([]string{path}, m, 3)
		if err != nil {
			t.Fatal(err)
		}
		var a, b bytes.Buffer
		seq.Print(&a, 0)
		par.Print(&b, 0)
		if a.String() != b.String() || seq.Records == 0 || par.Unparseable != 0 {
			t.Fatalf("query %+v: sequential\n%s\nparallel\n%s", q, a.String(), b.String())
		}
	}
}

// respell re-encodes a record the way another tool might (keys in another
// order, spaces): the reader must not depend on the writer's layout.
func respell(t *testing.T, line []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(m) // sorted keys: caller before decision, etc.
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(out, []byte(`":`), []byte(`": `))
}

func TestPrefilterAgreesWithFullParse(t *testing.T) {
	path := writeSample(t, 200)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	queries := []Query{
		{UID: -1, Decisions: []string{"deny"}},
		{UID: -1, Decisions: []string{"would-deny", "allow"}},
		{UID: 1002},
		{UID: -1, User: "bob"},
		{UID: -1, Operation: "exec.create"},
		{UID: -1, Operation: "container.*"},
		{UID: -1, Image: "nginx"},
		{UID: -1, Reason: "root"},
		{UID: -1, Since: time.Date(2025, 3, 4, 5, 6, 7, 50e6, time.UTC), Until: time.Date(2025, 3, 4, 5, 6, 7, 120e6, time.UTC)},
	}
	for _, q := range queries {
		m, err := q.Compile()
		if err != nil {
			t.Fatal(err)
		}
		matched := 0
		for _, line := range lines {
			var v1, v2 View
			ok1, err1 := m.Match(line, &v1)
			ok2, err2 := m.Match(respell(t, line), &v2)
			if err1 != nil || err2 != nil || ok1 != ok2 {
				t.Fatalf("query %+v: canonical %v %v, respelled %v %v\n%s", q, ok1, err1, ok2, err2, line)
			}
			if ok1 {
				matched++
				if v1.Decision() != v2.Decision() || v1.CallerLabel() != v2.CallerLabel() || v1.Image() != v2.Image() ||
					v1.Time() != v2.Time() || strings.Join(v1.Reasons(), "|") != strings.Join(v2.Reasons(), "|") {
					t.Fatalf("views differ for %s", line)
				}
			}
		}
		if matched == 0 || matched == len(lines) {
			t.Errorf("query %+v selects %d of %d: it tests nothing", q, matched, len(lines))
		}
	}
}

func TestParseViewRejectsNonRecords(t *testing.T) {
	for _, line := range []string{``, `nope`, `[1]`, `{}`, `{"time":"x"}`, `{"time":"2025-03-04T05:06:07Z","decision":"allow"`, `{"time":"2025`} {
		if _, err := ParseView([]byte(line)); err == nil {
			t.Errorf("%q parsed as a record", line)
		}
	}
}

func TestFollowStopsWithContext(t *testing.T) {
	path := writeSample(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	var got int
	done := make(chan error)
	go func() {
		done <- Follow(ctx, path, true, time.Millisecond, func([]byte) error { got++; return nil })
	}()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got > 3 {
		t.Fatalf("%d lines from a 3-line file", got)
	}
}
