package policy

import (
	"bytes"
	"testing"

	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
)

// The memo's key tells apart inputs whose policy values differ, even where
// a plain concatenation would not, and is the same for inputs whose values
// are the same.
func TestMemoKeyDistinguishesInputs(t *testing.T) {
	base := func() *input.Input {
		return &input.Input{Operation: "container.inspect", Method: "GET", Path: "/v1.41/containers/abc/json", APIVersion: "1.41",
			Query: map[string][]string{"size": {"1"}, "all": {"0"}}, Vars: map[string]string{"name": "abc"},
			Caller: proxy.Caller{Known: true, UID: 1000, GID: 1000, PID: 7, Groups: []string{"a", "b"}}}
	}
	key := func(in *input.Input) []byte {
		k, ok := memoKey(nil, in)
		if !ok {
			t.Fatalf("no key for %+v", in)
		}
		return k
	}
	ref := key(base())
	if !bytes.Equal(ref, key(base())) {
		t.Fatal("equal inputs have different keys")
	}
	// A map's order is not part of its value.
	for range 20 {
		in := base()
		in.Query = map[string][]string{"all": {"0"}, "size": {"1"}}
		if !bytes.Equal(ref, key(in)) {
			t.Fatal("the same query built in another order has another key")
		}
	}
	changes := map[string]func(*input.Input){
		"uid":             func(in *input.Input) { in.Caller.UID = 1001 },
		"pid":             func(in *input.Input) { in.Caller.PID = 8 },
		"known":           func(in *input.Input) { in.Caller.Known = false },
		"groups split":    func(in *input.Input) { in.Caller.Groups = []string{"ab"} },
		"groups boundary": func(in *input.Input) { in.Caller.Groups = []string{"", "ab"} },
		"query value":     func(in *input.Input) { in.Query["size"] = []string{"0"} },
		"query key":       func(in *input.Input) { in.Query = map[string][]string{"size": {"1"}, "al": {"l0"}} },
		"var":             func(in *input.Input) { in.Vars["name"] = "abd" },
		"path":            func(in *input.Input) { in.Path += "x" },
		"versioned":       func(in *input.Input) { in.Versioned = true },
		"target":          func(in *input.Input) { in.Target = &input.Target{} },
		"form body":       func(in *input.Input) { in.FormBody = true },
	}
	for name, change := range changes {
		in := base()
		change(in)
		if bytes.Equal(ref, key(in)) {
			t.Errorf("%s: a different input has the same key", name)
		}
	}
}
