package policy

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/sockproxy/sockproxy/policy/input"
)

func TestBodyPaths(t *testing.T) {
	lib, err := Compile(context.Background(), Source{})
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"HostConfig", "VolumesFrom"}}; !reflect.DeepEqual(lib.BodyPaths, want) {
		t.Errorf("the library reads %q of the body, want %q", lib.BodyPaths, want)
	}
	cases := map[string]struct {
		module string
		want   [][]string // nil: the whole body
	}{
		"field":          {"x if input.body.HostConfig.Privileged", [][]string{{"HostConfig", "Privileged"}}},
		"nested covered": {"x if input.body.HostConfig.Binds[_]\ny if input.body.HostConfig", [][]string{{"HostConfig"}}},
		"variable key":   {"x if input.body.HostConfig[k] == 1", [][]string{{"HostConfig"}}},
		"import alias":   {"import input.body.Config as c\nx if c.User == \"0\"", [][]string{{"Config"}}},
		"no body":        {"x if input.operation == \"container.list\"", [][]string{}},
		"whole body":     {"x if count(input.body) > 0", nil},
		"dynamic":        {"x if input[k].Privileged", nil},
		"input as value": {"x if object.get(input, [\"body\", \"Privileged\"], false)", nil},
		"bare alias":     {"x if { i := input; i.body.Privileged }", nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := ast.ParseModuleWithOpts("t.rego", "package t\n\n"+tc.module+"\n", ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				t.Fatal(err)
			}
			got := bodyPaths(map[string]*ast.Module{"t.rego": m})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("bodyPaths = %q, want %q", got, tc.want)
			}
		})
	}
}

// project keeps what the trie names of a full value, the reference the
// projecting parser must agree with.
func project(v ast.Value, want pathTrie) ast.Value {
	obj, ok := v.(ast.Object)
	if !ok || want == nil {
		return v
	}
	out := ast.NewObject()
	obj.Foreach(func(k, val *ast.Term) {
		s, ok := k.Value.(ast.String)
		if !ok {
			return
		}
		if sub, wanted := want[string(s)]; wanted {
			out.Insert(k, ast.NewTerm(project(val.Value, sub)))
		}
	})
	return out
}

var projectionTries = []pathTrie{
	{},
	newPathTrie([][]string{{"HostConfig", "VolumesFrom"}}),
	newPathTrie([][]string{{"HostConfig"}, {"Image"}}),
	newPathTrie([][]string{{"a", "b"}, {"a", "c", "d"}, {"x"}}),
}

func checkProjection(t *testing.T, doc []byte) {
	t.Helper()
	if !json.Valid(doc) {
		return
	}
	full, err := parseJSON(doc)
	if err != nil {
		t.Fatalf("parseJSON(%q): %v", doc, err)
	}
	for _, want := range projectionTries {
		got, err := parseJSONPaths(doc, want)
		if err != nil {
			t.Fatalf("parseJSONPaths(%q, %v): %v", doc, want, err)
		}
		if exp := project(full, want); got.Compare(exp) != 0 {
			t.Fatalf("parseJSONPaths(%q, %v) = %v, want %v", doc, want, got, exp)
		}
	}
}

func TestParseJSONPaths(t *testing.T) {
	for _, doc := range append(jsonSeeds, `{"a": {"b": 1, "c": {"d": [1], "e": 2}, "f": "g"}, "x": null, "y": {"z": [{}, []]}}`) {
		checkProjection(t, []byte(doc))
	}
}

func FuzzParseJSONPaths(f *testing.F) {
	for _, doc := range jsonSeeds {
		f.Add([]byte(doc))
	}
	f.Fuzz(checkProjection)
}

// A user module sees the body fields it reads, though the engine converts
// only those.
func TestUserModuleSeesBodyFieldsItReads(t *testing.T) {
	dir := writeFiles(t, map[string]string{"env.rego": `package sockproxy

deny contains sprintf("no secrets in Env: %s", [e]) if {
	input.operation == "container.create"
	some e in input.body.Env
	startswith(e, "AWS_SECRET")
}
`})
	e := newEngine(t, Options{Dirs: []string{dir}, Data: openHandsRoots, Input: input.Options{Daemon: fakeDaemon{}, HostFS: input.HostFS{Root: hostRoot(t)}}})
	if got := e.Revision().BodyPaths; !reflect.DeepEqual(got, [][]string{{"Env"}, {"HostConfig", "VolumesFrom"}}) {
		t.Fatalf("body paths %q", got)
	}
	body := `{"Image": "docker.openhands.dev/openhands/runtime:0.62-nikolaik", "User": "1000:1000", "Env": ["AWS_SECRET=x"], "HostConfig": {"VolumesFrom": ["db"]}}`
	d := e.Decide(context.Background(), openHandsRequest(body))
	for _, want := range []string{"no secrets in Env: AWS_SECRET=x", "volumes_from db is not allowed: it copies every mount of that container"} {
		if d.Allow || !slices.Contains(d.Reasons, want) {
			t.Errorf("reasons %q lack %q", d.Reasons, want)
		}
	}
}
