package rego

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"gopkg.in/yaml.v3"
)

// TestRegoLibrary runs every *_test.rego of the library through OPA's test
// runner, with the default data at data.sockproxy.config, so that `go test`
// (and CI) fails on any failing Rego test.
func TestRegoLibrary(t *testing.T) {
	modules := map[string]*ast.Module{}
	for name, text := range Modules() {
		modules[name] = parse(t, name, text)
	}
	tests := TestModules()
	if len(tests) == 0 {
		t.Fatal("no *_test.rego files embedded")
	}
	for name, text := range tests {
		modules[name] = parse(t, name, text)
	}

	var defaults map[string]any
	if err := yaml.Unmarshal(DefaultData(), &defaults); err != nil {
		t.Fatalf("defaults.yaml: %v", err)
	}
	store := inmem.NewFromObject(map[string]any{"sockproxy": map[string]any{"config": defaults}})

	ctx := context.Background()
	ch, err := tester.NewRunner().
		SetStore(store).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		SetModules(modules).
		RunTests(ctx, nil)
	if err != nil {
		t.Fatalf("rego tests do not compile: %v", err)
	}
	var passed, failed int
	for r := range ch {
		switch {
		case r.Error != nil:
			failed++
			t.Errorf("%s: %s.%s: error: %v", r.Location, r.Package, r.Name, r.Error)
		case r.Fail:
			failed++
			t.Errorf("%s: %s.%s: FAIL", r.Location, r.Package, r.Name)
		case r.Skip:
			failed++
			t.Errorf("%s: %s.%s: skipped (todo_ tests are not allowed)", r.Location, r.Package, r.Name)
		default:
			passed++
		}
	}
	t.Logf("rego tests: %d passed, %d failed", passed, failed)
	if passed == 0 {
		t.Fatal("no rego test ran")
	}
}

func parse(t *testing.T, name, text string) *ast.Module {
	t.Helper()
	m, err := ast.ParseModuleWithOpts(name, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatalf("%v", err)
	}
	return m
}

// TestRegoFormatted keeps the library in `opa fmt` style, so that diffs
// stay about meaning.
func TestRegoFormatted(t *testing.T) {
	all := Modules()
	for name, text := range TestModules() {
		all[name] = text
	}
	for name, text := range all {
		want, err := format.SourceWithOpts(name, []byte(text), format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(want) != text {
			t.Errorf("%s is not formatted: run opa fmt -w on it (or format.Source)", name)
		}
	}
}
