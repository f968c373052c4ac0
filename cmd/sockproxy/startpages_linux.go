package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseStartPages gives back the pages of the binary's code and
// read-only data that are resident after the start: most of them served
// only the start (the policy compiler and parser, the Rego test runner),
// and would otherwise count in the resident set for the life of the
// process. The pages requests use are faulted back from the page cache on
// their first use. It returns the KiB that were resident before.
func releaseStartPages() (kib int64) {
	exe, err := os.Executable()
	if err != nil {
		return 0
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0
	}
	defer f.Close()
	var ranges [][2]uintptr
	sc := bufio.NewScanner(f)
	inExe := false
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			// A mapping's first line: range perms offset dev inode [path].
			inExe = len(fields) == 6 && fields[5] == exe && !strings.Contains(fields[1], "w")
			if inExe {
				lo, hi, _ := strings.Cut(fields[0], "-")
				a, err1 := strconv.ParseUint(lo, 16, 64)
				b, err2 := strconv.ParseUint(hi, 16, 64)
				if err1 == nil && err2 == nil {
					ranges = append(ranges, [2]uintptr{uintptr(a), uintptr(b)})
				}
			}
			continue
		}
		if inExe && len(fields) >= 2 && fields[0] == "Rss:" {
			n, _ := strconv.ParseInt(fields[1], 10, 64)
			kib += n
		}
	}
	for _, r := range ranges {
		// Clean file pages: reclaiming them writes nothing. Old kernels
		// without MADV_PAGEOUT refuse it, which changes nothing.
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, r[0], r[1]-r[0], unix.MADV_PAGEOUT)
	}
	return kib
}
