package input

import (
	"strconv"
	"strings"
)

// DefaultAPIVersion is the version assumed for unversioned paths when the
// upstream's is not known: the newest the proxy knows the semantics of.
const DefaultAPIVersion = "1.51"

// MinAPIVersion is the lowest floor: below 1.24 container start takes a
// HostConfig, which the policy does not judge.
const MinAPIVersion = "1.24"

// compareVersions compares API versions part by part as integers, like
// dockerd's versions.compare (a missing part counts as 0).
func compareVersions(a, b string) int {
	for a != "" || b != "" {
		var x, y int
		x, a = versionPart(a)
		y, b = versionPart(b)
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// versionPart reads the leading dot-separated integer of v (0 when it is
// not a number, like strconv.Atoi's failure in dockerd) and the rest.
func versionPart(v string) (int, string) {
	part, rest, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(part)
	if err != nil {
		n = 0
	}
	return n, rest
}

func versionBelow(v, than string) bool { return compareVersions(v, than) < 0 }

// validVersion accepts what dockerd's router accepts in /v{version}: digits
// and dots.
func validVersion(v string) bool {
	if v == "" || v[0] == '.' || v[len(v)-1] == '.' {
		return false
	}
	for _, c := range v {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}
