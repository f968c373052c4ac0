package input

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// jsonField is one key a policy can read in input, with where it is.
type jsonField struct {
	name string // the JSON key
	path string // e.g. "input.target.owner.uid"
}

// jsonFields lists every JSON key reachable from t the way encoding/json
// encodes it: through pointers, slices, arrays and map values, with the
// fields of untagged embedded structs promoted. seen holds the structs
// being walked, so that a struct within itself (Target) is walked once.
func jsonFields(t reflect.Type, path string, seen map[reflect.Type]bool) []jsonField {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return nil
	}
	seen[t] = true
	defer delete(seen, t)
	var out []jsonField
	for _, sf := range reflect.VisibleFields(t) {
		if len(sf.Index) > 1 || (!sf.IsExported() && !sf.Anonymous) {
			continue // promoted fields are met through their embedded struct
		}
		tag := sf.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		switch {
		case tag == "-":
			continue
		case sf.Anonymous && name == "":
			out = append(out, jsonFields(sf.Type, path, seen)...)
			continue
		case !sf.IsExported():
			continue
		case name == "":
			name = sf.Name
		}
		out = append(out, jsonField{name, path + "." + name})
		out = append(out, jsonFields(sf.Type, path+"."+name, seen)...)
	}
	return out
}

// TestDocListsEveryInputField keeps docs/policy-input.md up with the
// structs: every key a policy can read must appear there as a backticked
// word (a table row's `field`).
func TestDocListsEveryInputField(t *testing.T) {
	doc, err := os.ReadFile("../../docs/policy-input.md")
	if err != nil {
		t.Fatalf("reading the policy input reference: %v", err)
	}
	words := map[string]bool{}
	for _, m := range regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(string(doc), -1) {
		words[m[1]] = true
	}
	fields := jsonFields(reflect.TypeFor[Input](), "input", map[reflect.Type]bool{})
	// The walk must reach nested structs of other packages, pointers,
	// slices and the self-referencing Target, or this test proves nothing.
	for _, want := range []string{"input.caller.groups", "input.container.mounts.read_only_force_recursive",
		"input.target.exec_id", "input.target.owner.uid", "input.target.mounts.destination", "input.update.restart_policy.maximum_retry_count"} {
		if !slices.ContainsFunc(fields, func(f jsonField) bool { return f.path == want }) {
			t.Errorf("the walk of Input did not reach %s", want)
		}
	}
	for _, f := range fields {
		if !words[f.name] {
			t.Errorf("%s is not in docs/policy-input.md: document `%s` in the table of its object", f.path, f.name)
		}
	}
}

// TestJSONFieldsWalk checks the walker on the shapes encoding/json treats
// specially.
func TestJSONFieldsWalk(t *testing.T) {
	type leaf struct {
		A string `json:"a,omitempty"`
	}
	type Embedded struct {
		E int `json:"e"`
	}
	type node struct {
		Embedded
		Self    *node           `json:"self"`
		List    []leaf          `json:"list"`
		ByKey   map[string]leaf `json:"by_key"`
		Skipped string          `json:"-"`
		Untaged bool
		hidden  int
	}
	var got []string
	for _, f := range jsonFields(reflect.TypeFor[node](), "n", map[reflect.Type]bool{}) {
		got = append(got, f.path)
	}
	want := []string{"n.e", "n.self", "n.list", "n.list.a", "n.by_key", "n.by_key.a", "n.Untaged"}
	if !slices.Equal(got, want) {
		t.Errorf("jsonFields = %q, want %q", got, want)
	}
	_ = node{}.hidden
}
