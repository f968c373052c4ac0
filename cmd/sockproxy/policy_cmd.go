package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/sockproxy/sockproxy/config"
	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/policy/toolkit"
)

func init() {
	register("policy", "test, check, explain and learn the policy", func(args []string) int {
		return runPolicy(context.Background(), args, os.Stdin, os.Stdout, os.Stderr)
	})
}

const policyUsage = `usage: sockproxy policy <subcommand> [--config FILE] [flags]

  test [DIR...]   run the Rego tests (*_test.rego) of the built-in library and
                  of the policy directories through OPA's tester (like
                  opa test: -v, --coverage, --run REGEX; exit 0 pass, 2 fail,
                  1 error)
  check [DIR...]  compile the library with the configured modules, tests and
                  data; report errors with file:line (exit 1); --fmt shows the
                  opa fmt changes as a diff (exit 1 when there are any),
                  --fmt --write applies them
  settings        print the library's effective settings (data.sockproxy.config)
  eval            show the policy input the proxy builds for a request
                  (--method, --path, --body, --caller-uid, ...) or for audit
                  records (--replay FILE), and the decision with every reason
                  and the rules that produced it; --input FILE judges a policy
                  input document (exit 0 allowed, 1 refused, 2 error)
  learn FILE...   propose library settings that allow the traffic recorded in
                  dry-run audit logs, listing the refusals left for review

DIR arguments are added to the configuration's policy.dirs.
Run 'sockproxy policy <subcommand> -h' for its flags; docs/policy-guide.md
explains writing, testing and rolling out policies.
`

func runPolicy(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, policyUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "test":
		return policyTest(ctx, rest, stdout, stderr)
	case "check":
		return policyCheck(ctx, rest, stdout, stderr)
	case "settings":
		return policySettings(ctx, rest, stdout, stderr)
	case "eval":
		return policyEvalCmd(ctx, rest, stdin, stdout, stderr)
	case "learn":
		return policyLearn(ctx, rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "sockproxy policy: unknown subcommand %q\n%s", sub, policyUsage)
	return 2
}

// policyFlags are the flags every subcommand has.
type policyFlags struct {
	set        *flag.FlagSet
	configPath *string
}

func newPolicyFlags(sub string, stderr io.Writer) policyFlags {
	set := flag.NewFlagSet("sockproxy policy "+sub, flag.ContinueOnError)
	set.SetOutput(stderr)
	return policyFlags{set: set, configPath: set.String("config", "", "configuration file (default: none, the built-in hardened profile)")}
}

// parse parses args with flags allowed after positional arguments too
// ("policy test ./rego -v"). It returns the exit code to stop with, or -1.
func (f policyFlags) parse(args []string) ([]string, int) {
	var pos []string
	for {
		if err := f.set.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0
			}
			return nil, 2
		}
		args = f.set.Args()
		if len(args) == 0 {
			return pos, -1
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), -1
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// loadConfig reads --config (or the defaults) and adds extra policy dirs.
func (f policyFlags) loadConfig(dirs []string) (*config.Config, error) {
	cfg := config.Default()
	if *f.configPath != "" {
		var err error
		if cfg, err = config.Load(*f.configPath); err != nil {
			return nil, err
		}
	}
	cfg.Policy.Dirs = append(cfg.Policy.Dirs, dirs...)
	return cfg, nil
}

func policySource(cfg *config.Config) policy.Source {
	return policy.Source{Dirs: cfg.Policy.Dirs, Data: cfg.Policy.Data}
}

func policyCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newPolicyFlags("check", stderr)
	fmtFlag := f.set.Bool("fmt", false, "show how opa fmt would format the user's .rego files, as a diff (exit 1 when a file would change)")
	write := f.set.Bool("write", false, "with --fmt: rewrite the files in opa fmt style")
	dirs, code := f.parse(args)
	if code >= 0 {
		return code
	}
	if *write && !*fmtFlag {
		fmt.Fprintln(stderr, "sockproxy policy check: --write needs --fmt")
		return 2
	}
	cfg, err := f.loadConfig(dirs)
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy check: %v\n", err)
		return 2
	}
	p, err := toolkit.Load(ctx, policySource(cfg))
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy check: %v\n", err)
		return 1
	}
	rev := p.Revision
	fmt.Fprintf(stdout, "policy revision %s compiles\nmodules:\n", rev.ID)
	for _, m := range rev.Modules {
		fmt.Fprintf(stdout, "  %s\n", m)
	}
	if len(p.UserTests) > 0 {
		fmt.Fprintf(stdout, "tests: %d module(s) compile\n", len(p.UserTests))
	}
	fmt.Fprintf(stdout, "mount roots: %d, require non-root: %v, allowed host IPs: %s, allowed networks: %s\n",
		len(rev.Library.MountRoots), rev.Library.RequireNonRoot,
		strings.Join(rev.Library.AllowedHostIPs, ", "), strings.Join(rev.Library.AllowedNetworks, ", "))
	if !*fmtFlag {
		return 0
	}
	changes, err := p.Unformatted()
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy check: %v\n", err)
		return 1
	}
	for _, c := range changes {
		if *write {
			if err := c.Write(); err != nil {
				fmt.Fprintf(stderr, "sockproxy policy check: %v\n", err)
				return 1
			}
			fmt.Fprintf(stdout, "formatted %s\n", c.File)
			continue
		}
		fmt.Fprint(stdout, c.Diff)
	}
	if len(changes) > 0 && !*write {
		fmt.Fprintf(stderr, "sockproxy policy check: %d file(s) not in opa fmt style; run with --fmt --write to format them\n", len(changes))
		return 1
	}
	return 0
}

func policySettings(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newPolicyFlags("settings", stderr)
	dirs, code := f.parse(args)
	if code >= 0 {
		return code
	}
	cfg, err := f.loadConfig(dirs)
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy settings: %v\n", err)
		return 2
	}
	rev, err := policy.Compile(ctx, policySource(cfg))
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy settings: %v\n", err)
		return 2
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rev.Data["sockproxy"].(map[string]any)["config"]); err != nil {
		fmt.Fprintf(stderr, "sockproxy policy settings: %v\n", err)
		return 2
	}
	return 0
}

// policyOptions are the engine settings of a configuration. serve uses the
// same, with the daemon and host filesystem of the running proxy in Input.
// policy.mode is not the engine's business: the proxy's Config.Mode forwards
// refusals in dry-run and audits them as such.
func policyOptions(cfg *config.Config, log *slog.Logger) policy.Options {
	return policy.Options{
		Dirs:        cfg.Policy.Dirs,
		Data:        cfg.Policy.Data,
		EvalTimeout: cfg.Policy.EvalTimeout,
		Input: input.Options{
			DefaultAPIVersion: cfg.API.DefaultVersion,
			MinAPIVersion:     cfg.API.MinVersion,
		},
		Logger: log,
	}
}
