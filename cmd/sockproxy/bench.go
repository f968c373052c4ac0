package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

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
	fs.StringVar(&cfg.Proxied, "proxied", "", "the proxy's socket, in front of the same daemon (required unless --spawn)")
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
	spawn := fs.String("spawn", "", "start the proxy as a child of this binary with these arguments, {sock} standing for a temporary socket\n(e.g. 'serve --listen {sock}'); it becomes --proxied and --proxy-pid, and is stopped after the run")
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
	if *spawn != "" {
		if cfg.Proxied != "" || cfg.ProxyPID != 0 {
			fmt.Fprintln(os.Stderr, "sockproxy bench: --spawn starts the proxy itself; drop --proxied and --proxy-pid")
			return 2
		}
		child, err := spawnProxy(ctx, *spawn)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sockproxy bench: %v\n", err)
			return 1
		}
		defer child.stop()
		cfg.Proxied, cfg.ProxyPID = child.socket, child.cmd.Process.Pid
	}
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

// spawnedProxy is a proxy started by --spawn.
type spawnedProxy struct {
	cmd    *exec.Cmd
	dir    string
	socket string
	exited chan error
}

// spawnProxy runs this binary with args (after replacing {sock}) and waits
// until the socket answers /_ping.
func spawnProxy(ctx context.Context, args string) (*spawnedProxy, error) {
	if !strings.Contains(args, "{sock}") {
		return nil, fmt.Errorf("--spawn %q does not say where to listen: put {sock} where the socket path goes", args)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this binary to spawn the proxy: %w", err)
	}
	dir, err := os.MkdirTemp("", "sockproxy-bench-")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "proxy.sock")
	argv := strings.Fields(strings.ReplaceAll(args, "{sock}", sock))
	p := &spawnedProxy{cmd: exec.Command(self, argv...), dir: dir, socket: sock, exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s %s: %w", self, strings.Join(argv, " "), err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-p.exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("the spawned proxy (%s) exited before answering: %v", strings.Join(argv, " "), err)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("the spawned proxy (%s) did not answer /_ping on %s within 15s (last: %v)", strings.Join(argv, " "), sock, err)
		}
	}
}

// stop asks the proxy to shut down, and kills it if it takes too long.
func (p *spawnedProxy) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	os.RemoveAll(p.dir)
}
