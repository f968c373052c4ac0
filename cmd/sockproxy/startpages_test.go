//go:build linux

package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// releaseStartPages leaves fewer of the binary's pages resident than there
// were, and the process runs on (what it uses is faulted back).
func TestReleaseStartPagesGivesBackBinaryPages(t *testing.T) {
	before := binaryResidentKiB(t)
	reported := releaseStartPages()
	after := binaryResidentKiB(t)
	t.Logf("binary resident: %d KiB before (%d reported), %d KiB after", before, reported, after)
	if reported <= 0 || after >= before {
		t.Fatalf("binary resident %d KiB before, %d KiB after (%d reported): nothing was given back", before, after, reported)
	}
}

// binaryResidentKiB sums the resident pages of the executable's read-only
// mappings.
func binaryResidentKiB(t *testing.T) int64 {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kib int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) == 6 && fields[5] == exe && !strings.Contains(fields[1], "w")
			continue
		}
		if in && len(fields) >= 2 && fields[0] == "Rss:" {
			n, _ := strconv.ParseInt(fields[1], 10, 64)
			kib += n
		}
	}
	if kib == 0 {
		t.Fatalf("no resident pages of %s in /proc/self/smaps", exe)
	}
	return kib
}
