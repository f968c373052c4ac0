package policy

import (
	"context"
	"slices"
	"testing"
)

// TestNullBooleanSettingRefuses pins the path a Rego test cannot: an empty
// YAML value (allow_privileged: with nothing after it) passes the library
// data's validation as null and reaches the Rego library, where
// `not settings.allow_privileged` read it as set and allowed a privileged
// create. The base settings and a profile's config both.
func TestNullBooleanSettingRefuses(t *testing.T) {
	want := []string{"privileged is not allowed: it gives the container every capability and device of the host"}
	for name, config := range map[string]string{
		"base": "    allow_privileged:\n",
		"profile": "    profiles:\n      - name: p\n        match: {uids: [1000]}\n" +
			"        config:\n          allow_privileged:\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"data.yaml": "sockproxy:\n  config:\n" + config})
			in, body := openHandsInput(t)
			in.Container.Privileges.Privileged = true
			e := newEngine(t, Options{Dirs: []string{dir}, Data: openHandsRoots, Build: staticBuilder(in, body)})
			d := e.Decide(context.Background(), createReq)
			if d.Allow || !slices.Equal(d.Reasons, want) {
				t.Fatalf("allow=%v reasons=%q, want %q", d.Allow, d.Reasons, want)
			}
		})
	}
}
