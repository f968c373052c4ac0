package policy

import (
	"context"
	"strings"
	"testing"
)

// TestNullSettingRefusedAtLoad: an empty YAML value (allow_privileged: with
// nothing after it) is null; Go reads it as false, but `not
// settings.allow_privileged` in Rego read null as set and allowed a
// privileged create. Such data is refused when the policy loads, naming the
// key, in the base settings and in a profile's config alike.
func TestNullSettingRefusedAtLoad(t *testing.T) {
	for name, tc := range map[string]struct{ config, key string }{
		"base":   {"    allow_privileged:\n", "allow_privileged has no value"},
		"nested": {"    update_limits:\n      max_memory:\n", "update_limits.max_memory has no value"},
		"profile": {"    profiles:\n      - name: p\n        match: {uids: [1000]}\n" +
			"        config:\n          allow_privileged:\n", "profiles[0].config.allow_privileged has no value"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"data.yaml": "sockproxy:\n  config:\n" + tc.config})
			_, err := NewEngine(context.Background(), Options{Dirs: []string{dir}, Data: openHandsRoots})
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("NewEngine: %v, want an error containing %q", err, tc.key)
			}
		})
	}
}
