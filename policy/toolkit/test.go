package toolkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"

	"github.com/sockproxy/sockproxy/policy"
)

// TestOptions configure RunTests.
type TestOptions struct {
	// Verbose lists every test and shows the trace and print output of
	// failures (opa test -v).
	Verbose bool
	// Coverage reports coverage as JSON instead of the test report
	// (opa test --coverage); Threshold (percent) makes a lower coverage fail.
	Coverage  bool
	Threshold float64
	// Run selects tests whose package-qualified name matches this regular
	// expression (opa test --run).
	Run string
	// SkipLibrary leaves the built-in library's own tests out.
	SkipLibrary bool
	// Timeout bounds each test (5s when 0, as opa test).
	Timeout time.Duration
}

// Exit codes of RunTests, those of opa test.
const (
	TestsPassed = 0 // every test passed
	TestsError  = 1 // the tests could not be loaded, compiled or reported
	TestsFailed = 2 // a test failed or errored, or coverage is below the threshold
)

// RunTests runs the Rego tests of the built-in library and of the user's
// modules through OPA's tester and reports them on out as opa test does.
//
// The library's tests run against the library's shipped defaults (they
// specify the library, not a deployment); the user's tests run with the
// library, the user's modules and the effective data the engine uses (the
// defaults with the configuration's policy.data merged over them, and the
// user's data files).
func (p *Policy) RunTests(ctx context.Context, opts TestOptions, out, errOut io.Writer) int {
	if opts.Threshold < 0 || opts.Threshold > 100 {
		fmt.Fprintln(errOut, "coverage threshold must be between 0 and 100")
		return TestsError
	}
	if opts.Threshold > 0 {
		opts.Coverage = true
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	var cov *cover.Cover
	if opts.Coverage {
		cov = cover.New()
	}

	type suite struct {
		modules map[string]*ast.Module
		data    map[string]any
	}
	var suites []suite
	covered := map[string]*ast.Module{}
	if !opts.SkipLibrary {
		tests, err := libraryTests()
		if err != nil {
			fmt.Fprintln(errOut, err)
			return TestsError
		}
		mods := map[string]*ast.Module{}
		for name, m := range p.Modules {
			if _, user := p.UserFiles[name]; !user {
				mods[name] = m
			}
		}
		maps.Copy(mods, tests)
		defaults := map[string]any{"sockproxy": map[string]any{"config": policy.DefaultLibraryData()}}
		suites = append(suites, suite{mods, defaults})
		maps.Copy(covered, mods)
	}
	if len(p.UserTests) > 0 {
		mods := maps.Clone(p.Modules)
		maps.Copy(mods, p.UserTests)
		suites = append(suites, suite{mods, p.Revision.Data})
		maps.Copy(covered, mods)
	}

	results := make(chan *tester.Result)
	runErr := make(chan error, 1)
	failed, ran := false, 0
	go func() {
		defer close(results)
		for _, s := range suites {
			ch, err := p.runSuite(ctx, s.modules, s.data, opts, cov)
			if err != nil {
				runErr <- err
				return
			}
			for r := range ch {
				ran++
				if !r.Pass() {
					failed = true
				}
				if !opts.Verbose {
					r.Trace = nil
				} else {
					r.Trace = lineage.Filter(r.Trace, notesAndFailures)
				}
				results <- r
			}
		}
		runErr <- nil
	}()

	var reporter tester.Reporter = tester.PrettyReporter{Verbose: opts.Verbose, Output: out}
	if opts.Coverage {
		reporter = tester.JSONCoverageReporter{Cover: cov, Modules: covered, Output: out, Threshold: opts.Threshold, Verbose: opts.Verbose}
	}
	repErr := reporter.Report(results)
	for range results { // drain if the reporter stopped early
	}
	if err := <-runErr; err != nil {
		fmt.Fprintln(errOut, err)
		return TestsError
	}
	if repErr != nil {
		fmt.Fprintln(errOut, repErr)
		var te *cover.CoverageThresholdError
		if errors.As(repErr, &te) {
			return TestsFailed
		}
		return TestsError
	}
	if ran == 0 {
		fmt.Fprintln(errOut, "no tests were run: add *_test.rego files with test_ rules to the policy directories")
		return TestsError
	}
	if failed {
		return TestsFailed
	}
	return TestsPassed
}

func (p *Policy) runSuite(ctx context.Context, modules map[string]*ast.Module, data map[string]any, opts TestOptions, cov *cover.Cover) (<-chan *tester.Result, error) {
	store := inmem.NewFromObject(data)
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return nil, err
	}
	compiler := ast.NewCompiler().
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn)).
		WithEnablePrintStatements(true)
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetDefaultRegoVersion(ast.RegoV1).
		CapturePrintOutput(true).
		EnableTracing(opts.Verbose).
		StackTraces(true).
		SetModules(modules).
		SetTimeout(opts.Timeout).
		Filter(opts.Run)
	if cov != nil {
		runner = runner.SetCoverageQueryTracer(cov)
	}
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		store.Abort(ctx, txn)
		return nil, fmt.Errorf("tests do not compile: %w", err)
	}
	out := make(chan *tester.Result)
	go func() {
		defer close(out)
		defer store.Abort(ctx, txn)
		for r := range ch {
			out <- r
		}
	}()
	return out, nil
}

// notesAndFailures keeps the trace events opa test -v shows by default.
func notesAndFailures(e *topdown.Event) bool {
	return e.Op == topdown.NoteOp || e.Op == topdown.FailOp
}
