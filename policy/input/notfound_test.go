package input

import "testing"

// dockerd names a missing image it was asked to delete by its normalized
// reference: a bare name gains ":latest", tags, digests and full IDs stay.
func TestWithDefaultTag(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for ref, want := range map[string]string{
		"busybox":                   "busybox:latest",
		"busybox:1.36":              "busybox:1.36",
		"registry:5000/team/app":    "registry:5000/team/app:latest",
		"registry:5000/team/app:v1": "registry:5000/team/app:v1",
		"app@sha256:" + id:          "app@sha256:" + id,
		id:                          id,
		"sha256:" + id:              "sha256:" + id,
		"0123abcd":                  "0123abcd:latest",
	} {
		if got := withDefaultTag(ref); got != want {
			t.Errorf("withDefaultTag(%q) = %q, want %q", ref, got, want)
		}
	}
}
