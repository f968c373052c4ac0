// Package toolkit is the logic behind `sockproxy policy test|check|eval|learn`:
// the tools security engineers use to write, test, explain and bootstrap
// policies. It builds on the engine's exported API (policy.Compile) and loads
// the same modules and data the engine does, so that what a tool shows is
// what the proxy decides.
package toolkit

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"

	"github.com/sockproxy/sockproxy/policy"
	sprego "github.com/sockproxy/sockproxy/rego"
)

// Policy is a compiled policy revision together with its parsed modules:
// what the tools need beyond the engine's prepared query (tests, traces,
// formatting).
type Policy struct {
	Source   policy.Source
	Revision *policy.Revision
	// Modules are the modules the engine compiles: the library's and the
	// user's, tests excluded, by file name.
	Modules map[string]*ast.Module
	// UserTests are the user's *_test.rego modules.
	UserTests map[string]*ast.Module
	// UserFiles are the user's .rego files (tests included), by name, with
	// their text: what `check --fmt` formats.
	UserFiles map[string][]byte
}

// Load compiles src as the engine does (policy.Compile: errors name
// file:line) and parses the user's test modules too, so that a syntax error
// in a test is reported by check as well.
func Load(ctx context.Context, src policy.Source) (*Policy, error) {
	rev, err := policy.Compile(ctx, src)
	if err != nil {
		return nil, err
	}
	p := &Policy{
		Source:    src,
		Revision:  rev,
		Modules:   map[string]*ast.Module{},
		UserTests: map[string]*ast.Module{},
		UserFiles: map[string][]byte{},
	}
	for name, text := range sprego.Modules() {
		m, err := parse(name, text)
		if err != nil {
			return nil, fmt.Errorf("built-in policy library: %w", err)
		}
		p.Modules[name] = m
	}
	files, err := userRegoFiles(src.Dirs)
	if err != nil {
		return nil, err
	}
	for name, f := range files {
		p.UserFiles[name] = f.Raw
		if strings.HasSuffix(name, "_test.rego") {
			p.UserTests[name] = f.Parsed
		} else {
			p.Modules[name] = f.Parsed
		}
	}
	if err := compileAll(p.Modules, p.UserTests); err != nil {
		return nil, err
	}
	return p, nil
}

func parse(name, text string) (*ast.Module, error) {
	return ast.ParseModuleWithOpts(name, text, ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
}

// compileAll compiles modules and tests together, the way the test runner
// will, so that a test that does not compile is an error of check.
func compileAll(sets ...map[string]*ast.Module) error {
	all := map[string]*ast.Module{}
	for _, set := range sets {
		for name, m := range set {
			all[name] = m
		}
	}
	c := ast.NewCompiler().WithEnablePrintStatements(true)
	c.Compile(all)
	if c.Failed() {
		return fmt.Errorf("policy does not compile: %w", c.Errors)
	}
	return nil
}

// userRegoFiles loads every .rego file under dirs (tests included, hidden
// files and directories left out, as the engine does), keyed by the name the
// engine gives them.
func userRegoFiles(dirs []string) (map[string]*loader.RegoFile, error) {
	out := map[string]*loader.RegoFile{}
	if len(dirs) == 0 {
		return out, nil
	}
	for _, d := range dirs {
		info, err := os.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("policy directory %s: %w", d, err)
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("policy directory %s: not a directory", d)
		}
	}
	skip := func(_ string, info fs.FileInfo, depth int) bool {
		if depth > 0 && strings.HasPrefix(info.Name(), ".") {
			return true
		}
		return !info.IsDir() && filepath.Ext(info.Name()) != ".rego"
	}
	loaded, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).WithProcessAnnotation(true).Filtered(dirs, skip)
	if err != nil {
		return nil, fmt.Errorf("policy directories: %w", err)
	}
	for _, f := range loaded.Modules {
		out[f.Name] = f
	}
	return out, nil
}

// libraryTests parses the library's embedded *_test.rego modules.
func libraryTests() (map[string]*ast.Module, error) {
	out := map[string]*ast.Module{}
	for name, text := range sprego.TestModules() {
		m, err := parse(name, text)
		if err != nil {
			return nil, fmt.Errorf("built-in policy library tests: %w", err)
		}
		out[name] = m
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
