package route

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// CompareVersions compares two API versions the way dockerd does: part by
// part (split on "."), each part read as a decimal integer, a missing or
// unreadable part counting as 0 (so "1.41.0" equals "1.41" and "01.41" equals
// "1.41"). It returns -1, 0 or 1.
func CompareVersions(a, b string) int {
	if a == b {
		return 0
	}
	for a != "" || b != "" {
		var pa, pb string
		pa, a = nextPart(a)
		pb, b = nextPart(b)
		na, nb := partValue(pa), partValue(pb)
		if na > nb {
			return 1
		}
		if na < nb {
			return -1
		}
	}
	return 0
}

// nextPart splits off the first "."-separated part of v.
func nextPart(v string) (part, rest string) {
	if i := strings.IndexByte(v, '.'); i >= 0 {
		return v[:i], v[i+1:]
	}
	return v, ""
}

// partValue reads one version part as dockerd does: strconv.Atoi with the
// error ignored, so an out-of-range part counts as the largest int.
func partValue(p string) int {
	n, _ := strconv.Atoi(p)
	return n
}

// validVersion reports whether v is a version dockerd's router could accept
// in a path and that is meant as one: digits separated by single dots.
func validVersion(v string) error {
	if v == "" {
		return fmt.Errorf("empty API version")
	}
	for _, part := range strings.Split(v, ".") {
		if part == "" {
			return fmt.Errorf("API version %q has an empty part; write it like 1.41", v)
		}
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return fmt.Errorf("API version %q has a part that is not a number; write it like 1.41", v)
			}
		}
	}
	return nil
}

// versionParts splits a version into the part values CompareVersions reads.
func versionParts(v string) []int {
	var parts []int
	for v != "" {
		var p string
		p, v = nextPart(v)
		parts = append(parts, partValue(p))
	}
	return parts
}

// versionCmp is CompareVersions(v, b) for a version v made of digits and
// dots (what dockerd's version pattern admits) and a bound b split by
// versionParts, in one pass over v's bytes without strconv: it runs on every
// versioned request.
func versionCmp(v string, b []int) int {
	j := 0
	for i := 0; j < len(v) || i < len(b); i++ {
		// The part's value, or math.MaxInt when it is larger (strconv.Atoi's
		// value on ErrRange); an empty part is 0.
		x := 0
		for ; j < len(v) && v[j] != '.'; j++ {
			d := int(v[j] - '0')
			if x > (math.MaxInt-d)/10 {
				x = math.MaxInt
			} else {
				x = x*10 + d
			}
		}
		j++ // the "."
		y := 0
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x > y {
				return 1
			}
			return -1
		}
	}
	return 0
}
