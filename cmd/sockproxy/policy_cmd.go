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
)

func init() {
	register("policy", "check the policy, show its settings, evaluate an input", func(args []string) int {
		return runPolicy(context.Background(), args, os.Stdin, os.Stdout, os.Stderr)
	})
}

const policyUsage = `usage: sockproxy policy <check|settings|eval> [--config FILE] [flags]

  check      compile the built-in library with the configured modules and
             data; print the revision and its modules (exit 1 on any error)
  settings   print the library's effective settings (data.sockproxy.config)
             as JSON: defaults merged with the configuration
  eval       judge a policy input document (JSON, docs/policy-input.md) read
             from --input FILE or standard input; print the verdict and every
             reason (exit 0 allowed, 1 refused, 2 error)

Examples:
  sockproxy policy check --config /etc/sockproxy/sockproxy.yaml
  sockproxy policy eval --config sockproxy.yaml --input create-input.json
`

func runPolicy(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, policyUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub := args[0]
	set := flag.NewFlagSet("sockproxy policy "+sub, flag.ContinueOnError)
	set.SetOutput(stderr)
	configPath := set.String("config", "", "configuration file (default: none, the built-in hardened profile)")
	inputPath := set.String("input", "-", "eval: policy input document (JSON); - for standard input")
	if err := set.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if set.NArg() > 0 {
		fmt.Fprintf(stderr, "sockproxy policy: unexpected arguments %q\n", set.Args())
		return 2
	}
	cfg := config.Default()
	if *configPath != "" {
		var err error
		if cfg, err = config.Load(*configPath); err != nil {
			fmt.Fprintf(stderr, "sockproxy policy: %v\n", err)
			return 2
		}
	}
	engine, err := policy.NewEngine(ctx, policyOptions(cfg, slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy: %v\n", err)
		if sub == "check" {
			return 1
		}
		return 2
	}
	rev := engine.Revision()
	switch sub {
	case "check":
		fmt.Fprintf(stdout, "policy revision %s compiles\nmodules:\n", rev.ID)
		for _, m := range rev.Modules {
			fmt.Fprintf(stdout, "  %s\n", m)
		}
		fmt.Fprintf(stdout, "mount roots: %d, require non-root: %v, allowed host IPs: %s, allowed networks: %s\n",
			len(rev.Library.MountRoots), rev.Library.RequireNonRoot,
			strings.Join(rev.Library.AllowedHostIPs, ", "), strings.Join(rev.Library.AllowedNetworks, ", "))
		return 0
	case "settings":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rev.Data["sockproxy"].(map[string]any)["config"]); err != nil {
			fmt.Fprintf(stderr, "sockproxy policy: %v\n", err)
			return 2
		}
		return 0
	case "eval":
		return policyEval(ctx, engine, *inputPath, stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "sockproxy policy: unknown subcommand %q\n%s", sub, policyUsage)
	return 2
}

func policyEval(ctx context.Context, engine *policy.Engine, path string, stdin io.Reader, stdout, stderr io.Writer) int {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintf(stderr, "sockproxy policy eval: %v\n", err)
			return 2
		}
		defer f.Close()
		r = f
	}
	dec := json.NewDecoder(r)
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var in input.Input
	if err := dec.Decode(&in); err != nil {
		fmt.Fprintf(stderr, "sockproxy policy eval: the input is not a policy input document: %v\n", err)
		return 2
	}
	res := engine.Evaluate(ctx, &in, nil)
	for _, w := range res.Warn {
		fmt.Fprintf(stdout, "warn: %s\n", w)
	}
	if res.Allow {
		fmt.Fprintf(stdout, "allowed (revision %s)\n", res.Revision)
		return 0
	}
	fmt.Fprintf(stdout, "refused (revision %s): %s\n", res.Revision, policy.Message(res.Reasons()))
	return 1
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
