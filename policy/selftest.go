package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"gopkg.in/yaml.v3"

	sprego "github.com/sockproxy/sockproxy/rego"
)

// Files are the policy files of some directories (or of a bundle) read at
// one moment, so that a revision and the tests it must pass come from the
// same bytes even while the files are being edited.
type Files struct {
	// Modules are Rego modules by file name, tests excluded.
	Modules map[string]string
	// Tests are the *_test.rego modules by file name.
	Tests map[string]string
	// Documents is the data of the *.json/*.yaml files, merged at their
	// directory paths (dir/a/b/data.json is data.a.b), as `opa eval -d` does.
	Documents map[string]any
}

// ReadDirs reads the modules, tests and data files of dirs (recursively;
// hidden files are skipped). A module that does not parse is an error
// naming file:line.
func ReadDirs(dirs []string) (*Files, error) {
	out := &Files{Modules: map[string]string{}, Tests: map[string]string{}, Documents: map[string]any{}}
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
		return !info.IsDir() && !PolicyFile(info.Name())
	}
	loaded, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).Filtered(dirs, skip)
	if err != nil {
		return nil, fmt.Errorf("policy directories: %w", err)
	}
	for _, f := range loaded.Modules {
		if IsTestFile(f.Name) {
			out.Tests[f.Name] = string(f.Raw)
		} else {
			out.Modules[f.Name] = string(f.Raw)
		}
	}
	mergeInto(out.Documents, loaded.Documents)
	return out, nil
}

// PolicyFile reports whether a file of that name is policy: a Rego module
// or a data file. Other files in a policy directory are ignored.
func PolicyFile(name string) bool {
	switch filepath.Ext(name) {
	case ".rego", ".json", ".yaml", ".yml":
		return !strings.HasPrefix(filepath.Base(name), ".")
	}
	return false
}

// IsTestFile reports whether a module file holds Rego tests.
func IsTestFile(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// TestReport is the outcome of the Rego tests a revision had to pass.
type TestReport struct {
	// Library and User count the tests that ran: the built-in library's
	// (checked once per process: they depend on nothing the user changes)
	// and the user's *_test.rego.
	Library, User int
	// Failures name each failed or erroring test as file:line: rule: why.
	Failures []string
}

// Err is nil when every test passed.
func (r TestReport) Err() error {
	if len(r.Failures) == 0 {
		return nil
	}
	return fmt.Errorf("%d Rego test(s) failed:\n  %s", len(r.Failures), strings.Join(r.Failures, "\n  "))
}

// Validate compiles src and runs the Rego tests the new revision must pass
// before it may serve: the library's own tests (with the library's default
// settings) and tests, the user's tests with the library, the user's
// modules and the revision's data. The revision is returned only when it
// compiles and every test passes; the error names file:line.
func Validate(ctx context.Context, src Source, tests map[string]string) (*Revision, TestReport, error) {
	var report TestReport
	if len(src.Dirs) > 0 {
		// Read the directories once: the revision and its tests must come
		// from the same bytes.
		files, err := ReadDirs(src.Dirs)
		if err != nil {
			return nil, report, err
		}
		src, tests = withFiles(src, tests, files)
	}
	rev, err := Compile(ctx, src)
	if err != nil {
		return nil, report, err
	}
	lib := libraryTests(ctx)
	if lib.err != nil {
		return nil, report, lib.err
	}
	report.Library = lib.report.Library
	report.Failures = append(report.Failures, lib.report.Failures...)
	if len(tests) > 0 {
		modules := map[string]string{}
		for name, text := range sprego.Modules() {
			modules[name] = text
		}
		for name, text := range src.Modules {
			modules[name] = text
		}
		n, failures, err := runRegoTests(ctx, modules, tests, rev.Data)
		if err != nil {
			return nil, report, err
		}
		report.User = n
		report.Failures = append(report.Failures, failures...)
	}
	if err := report.Err(); err != nil {
		return nil, report, err
	}
	return rev, report, nil
}

// withFiles moves the directories' files into src (which then names no
// directories) and tests: their documents first, src's own over them, as
// Compile merges them.
func withFiles(src Source, tests map[string]string, files *Files) (Source, map[string]string) {
	modules := map[string]string{}
	for name, text := range files.Modules {
		modules[name] = text
	}
	for name, text := range src.Modules {
		modules[name] = text
	}
	docs := map[string]any{}
	mergeInto(docs, files.Documents)
	if src.Documents != nil {
		mergeInto(docs, src.Documents)
	}
	allTests := map[string]string{}
	for name, text := range files.Tests {
		allTests[name] = text
	}
	for name, text := range tests {
		allTests[name] = text
	}
	return Source{Data: src.Data, Modules: modules, Documents: docs}, allTests
}

type libraryResult struct {
	report TestReport
	err    error
}

var (
	libraryOnce sync.Once
	libraryRun  libraryResult
)

// libraryTests runs the embedded library's tests once per process: they
// judge the library with its defaults, which no reload changes.
func libraryTests(ctx context.Context) libraryResult {
	libraryOnce.Do(func() {
		var defaults map[string]any
		if err := yaml.Unmarshal(sprego.DefaultData(), &defaults); err != nil {
			libraryRun.err = fmt.Errorf("built-in library defaults: %w", err)
			return
		}
		data := map[string]any{"sockproxy": map[string]any{"config": defaults}}
		n, failures, err := runRegoTests(ctx, sprego.Modules(), sprego.TestModules(), data)
		libraryRun = libraryResult{report: TestReport{Library: n, Failures: failures}, err: err}
	})
	return libraryRun
}

// runRegoTests runs the test rules of tests with modules and data through
// OPA's test runner. It returns how many ran and the failures; an error
// means the tests do not compile.
func runRegoTests(ctx context.Context, modules, tests map[string]string, data map[string]any) (int, []string, error) {
	parsed := make(map[string]*ast.Module, len(modules)+len(tests))
	for _, set := range []map[string]string{modules, tests} {
		for name, text := range set {
			m, err := ast.ParseModuleWithOpts(name, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				return 0, nil, err
			}
			parsed[name] = m
		}
	}
	doc, err := jsonDoc(data)
	if err != nil {
		return 0, nil, fmt.Errorf("policy data: %w", err)
	}
	docMap, _ := doc.(map[string]any)
	ch, err := tester.NewRunner().
		SetStore(inmem.NewFromObject(docMap)).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		SetModules(parsed).
		RunTests(ctx, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("the Rego tests do not compile: %w", err)
	}
	var n int
	var failures []string
	for r := range ch {
		n++
		where := "?"
		if r.Location != nil {
			where = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
		}
		rule := strings.TrimPrefix(r.Package, "data.") + "." + r.Name
		switch {
		case r.Error != nil:
			failures = append(failures, fmt.Sprintf("%s: %s: error: %v", where, rule, r.Error))
		case r.Fail:
			failures = append(failures, fmt.Sprintf("%s: %s: FAIL", where, rule))
		case r.Skip:
			failures = append(failures, fmt.Sprintf("%s: %s: skipped (todo_ tests count as failures: a reload must not hide a test)", where, rule))
		}
	}
	if err := ctx.Err(); err != nil {
		return n, failures, errors.Join(errors.New("the Rego tests were interrupted"), err)
	}
	return n, failures, nil
}
