package main

import (
	"context"
	"fmt"
	"io"

	"github.com/sockproxy/sockproxy/policy/toolkit"
)

func policyTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newPolicyFlags("test", stderr)
	var opts toolkit.TestOptions
	f.set.BoolVar(&opts.Verbose, "v", false, "list every test; show the trace and print output of failures")
	f.set.BoolVar(&opts.Verbose, "verbose", false, "same as -v")
	f.set.BoolVar(&opts.Coverage, "coverage", false, "report coverage as JSON (as opa test --coverage)")
	f.set.Float64Var(&opts.Threshold, "threshold", 0, "fail (exit 2) when coverage is below this percentage (implies --coverage)")
	f.set.StringVar(&opts.Run, "run", "", "run only the tests whose package-qualified name matches this regular expression")
	f.set.BoolVar(&opts.SkipLibrary, "skip-library", false, "leave the built-in library's own tests out")
	f.set.DurationVar(&opts.Timeout, "timeout", 0, "bound each test (default 5s)")
	dirs, code := f.parse(args)
	if code >= 0 {
		return code
	}
	cfg, err := f.loadConfig(dirs)
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy test: %v\n", err)
		return toolkit.TestsError
	}
	p, err := toolkit.Load(ctx, policySource(cfg))
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy test: %v\n", err)
		return toolkit.TestsError
	}
	return p.RunTests(ctx, opts, stdout, stderr)
}
