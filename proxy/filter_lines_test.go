package proxy

import (
	"context"
	"strings"
	"testing"
)

// Lines are found whatever the pieces the stream arrives in: split at every
// offset, the kept lines come out whole, each with its newline; a last line
// without one is filtered too, and an over-long line ends the stream.
func TestLineFilterSplits(t *testing.T) {
	stream := "keep 1\ndrop 2\n\nkeep 3 " + strings.Repeat("x", 100) + "\ndrop 4\nkeep 5"
	want := "keep 1\nkeep 3 " + strings.Repeat("x", 100) + "\nkeep 5\n"
	for cut := 0; cut <= len(stream); cut++ {
		var out strings.Builder
		l := lineFilter{
			ctx:  context.Background(),
			keep: func(_ context.Context, line []byte) bool { return strings.HasPrefix(string(line), "keep") },
			emit: func(b []byte) error { out.Write(b); return nil },
		}
		for _, piece := range []string{stream[:cut], stream[cut:]} {
			if err := l.add([]byte(piece)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.end(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("split at %d: %q, want %q", cut, out.String(), want)
		}
	}
	l := lineFilter{ctx: context.Background(), keep: func(context.Context, []byte) bool { return true }, emit: func([]byte) error { return nil }}
	if err := l.add(make([]byte, MaxFilteredLine+1)); err != errLineTooLong {
		t.Errorf("over-long line: %v", err)
	}
}
