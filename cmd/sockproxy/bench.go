package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sockproxy/sockproxy/internal/bench"
)

func init() {
	register("bench", "measure a proxy socket against the direct Docker socket", runBench)
}

func runBench(args []string) int {
	cfg := bench.DefaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: sockproxy bench --direct SOCKET --proxied SOCKET [flags]

Measures the proxied socket against the direct one in a single run, direct and
proxied rounds interleaved, and reports each metric as direct, proxied and the
ratio proxied/direct against the targets of issue 8. It creates (and removes)
containers from --image on the daemon.

flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Direct, "direct", "/var/run/docker.sock", "the Docker daemon's socket")
	fs.StringVar(&cfg.Proxied, "proxied", "", "the proxy's socket, in front of the same daemon (required)")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "transfers per side for logs, archive and exec (latencies alternate sides every few samples)")
	fs.IntVar(&cfg.Iterations, "iterations", cfg.Iterations, "sequential /_ping samples per side (list/inspect take a fifth, create a twenty-fifth)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "time per side for the concurrent /_ping run")
	fs.IntVar(&cfg.Concurrency, "clients", cfg.Concurrency, "concurrent clients for the requests/s run")
	fs.IntVar(&cfg.LogMiB, "log-mib", cfg.LogMiB, "MiB of log lines to download")
	fs.IntVar(&cfg.ArchiveMiB, "archive-mib", cfg.ArchiveMiB, "MiB of the file downloaded with GET .../archive")
	fs.IntVar(&cfg.ExecMiB, "exec-mib", cfg.ExecMiB, "MiB written to and read back from cat in an exec")
	fs.IntVar(&cfg.Streams, "streams", cfg.Streams, "events streams held open while reading the proxy's memory")
	fs.IntVar(&cfg.ProxyPID, "proxy-pid", 0, "the proxy's process id, to read its memory from /proc (without it the memory metric is not measured)")
	fs.StringVar(&cfg.BindRoot, "bind-root", "", "host directory whose workspace/ and data/ the create body bind-mounts (default: no binds)")
	fs.StringVar(&cfg.Image, "image", cfg.Image, "image for the containers the bench creates")
	fs.DurationVar(&cfg.CallTimeout, "call-timeout", cfg.CallTimeout, "bound on one call or transfer")
	only := fs.String("only", "", "comma-separated metric groups to run (default all): "+strings.Join(bench.Groups, ","))
	asJSON := fs.Bool("json", false, "print the report as JSON")
	strict := fs.Bool("strict", false, "exit 1 when a target is missed or a metric could not be measured")
	verbose := fs.Bool("v", false, "log progress to stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "sockproxy bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// Ctrl-C stops the run but still removes the containers it created.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sockproxy bench: %v\n", err)
		return 1
	}
	if *asJSON {
		err = rep.WriteJSON(os.Stdout)
	} else {
		err = rep.WriteText(os.Stdout)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sockproxy bench: writing the report: %v\n", err)
		return 1
	}
	if *strict && !rep.Passed() {
		return 1
	}
	return 0
}
