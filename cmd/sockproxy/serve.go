package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sockproxy/sockproxy/config"
	"github.com/sockproxy/sockproxy/metrics"
	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
	"github.com/sockproxy/sockproxy/proxy/route"
)

func init() {
	register("serve", "listen on a Unix socket and forward judged requests to dockerd", runServe)
}

// serveSettings are what `sockproxy serve` runs with: the configuration file
// (or the built-in defaults) with the command-line flags applied over it.
type serveSettings struct {
	cfg *config.Config
	// allowAll replaces the policy with none; only a flag can ask for it.
	allowAll bool
	// ownProcess: serve runs as the process's only job (sockproxy serve,
	// not a test), so it may give back what only its start used.
	ownProcess bool
	// configPath is the configuration file ("" for the defaults); it is
	// watched and re-read on SIGHUP.
	configPath string
	// overrides applies the command-line flags over a configuration, so
	// that a reloaded file keeps them.
	overrides func(*config.Config) error
}

// defaultListenPath is /run/sockproxy/docker.sock for root (next to
// dockerd's own socket, in a directory only root can write), and
// $XDG_RUNTIME_DIR/sockproxy.sock (a private per-user directory) otherwise.
func defaultListenPath() string {
	if os.Geteuid() == 0 {
		return "/run/sockproxy/docker.sock"
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "sockproxy.sock")
	}
	return "" // no safe default: --listen is required
}

// parseServeArgs reads --config first, then applies every flag given on
// the command line over the file's values, so that flags win.
func parseServeArgs(args []string, stderr io.Writer) (serveSettings, error) {
	var (
		configPath, listen, listenTCP, socketGroup, upstream string
		tlsCA, tlsCert, tlsKey, mode, auditPath              string
		logLevel, logFormat, bodyLimit, socketMode           string
		metricsListen                                        string
		shutdownTimeout                                      time.Duration
		policyDirs                                           stringList
		allowAll, auditStdout, watch                         bool
	)
	set := flag.NewFlagSet("sockproxy serve", flag.ContinueOnError)
	set.SetOutput(stderr)
	set.StringVar(&configPath, "config", "", "YAML configuration file (docs/configuration.md); without it, the built-in hardened profile")
	set.StringVar(&listen, "listen", "", "path of the Unix socket to listen on (default /run/sockproxy/docker.sock for root, else $XDG_RUNTIME_DIR/sockproxy.sock)")
	set.StringVar(&listenTCP, "listen-tcp", "", "also listen on this TCP address (host:port); its callers are anonymous and it has no TLS: keep it on loopback")
	set.StringVar(&socketMode, "socket-mode", "", "file mode of the listening socket, octal (default 0660)")
	set.StringVar(&socketGroup, "socket-group", "", "group (name or gid) that owns the listening socket")
	set.StringVar(&upstream, "upstream", "", "dockerd to forward to: unix:///path or tcp://host:port (default unix:///var/run/docker.sock)")
	set.StringVar(&tlsCA, "tls-ca", "", "CA certificate (PEM) to verify a tcp:// upstream")
	set.StringVar(&tlsCert, "tls-cert", "", "client certificate (PEM) for a tcp:// upstream")
	set.StringVar(&tlsKey, "tls-key", "", "client key (PEM) for a tcp:// upstream")
	set.StringVar(&bodyLimit, "body-limit", "", "largest request body read whole to be judged (1048576, 512KiB, 1MiB); larger ones are refused with 413")
	set.StringVar(&mode, "mode", "", "enforce, or dry-run (refusals are audited as would-deny but forwarded)")
	set.Var(&policyDirs, "policy-dir", "directory of your own Rego modules and data files (repeatable)")
	set.StringVar(&auditPath, "audit-log", "", "file the audit log (one JSON line per request) is appended to")
	set.BoolVar(&auditStdout, "audit-stdout", false, "also write the audit log to standard output")
	set.BoolVar(&allowAll, "allow-all", false, "DANGEROUS: allow every request (no policy at all)")
	set.StringVar(&logLevel, "log-level", "", "debug (one line per request), info, warn or error")
	set.StringVar(&logFormat, "log-format", "", "text or json")
	set.StringVar(&metricsListen, "metrics-listen", "", "serve /metrics and /healthz on this Unix socket path or loopback host:port")
	set.BoolVar(&watch, "watch", true, "reload the policy when its files or the configuration file change (--watch=false: only on SIGHUP)")
	set.DurationVar(&shutdownTimeout, "shutdown-timeout", 0, "on SIGTERM/SIGINT, how long in-flight requests and streams may go on before they are cut (default 10s)")
	if err := set.Parse(args); err != nil {
		return serveSettings{}, err
	}
	if set.NArg() > 0 {
		return serveSettings{}, fmt.Errorf("unexpected arguments: %q", set.Args())
	}

	overrides := func(cfg *config.Config) error {
		var errs []error
		set.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "listen":
				cfg.Listen.Path = listen
			case "listen-tcp":
				cfg.Listen.TCP = listenTCP
			case "socket-mode":
				v, err := strconv.ParseUint(strings.TrimPrefix(socketMode, "0o"), 8, 32)
				if err != nil {
					errs = append(errs, fmt.Errorf("--socket-mode %q is not an octal permission such as 0660", socketMode))
				}
				cfg.Listen.Mode = config.FileMode(v)
			case "socket-group":
				cfg.Listen.Group = socketGroup
			case "upstream":
				cfg.Upstream.URL = upstream
			case "tls-ca":
				cfg.Upstream.TLS.CA = tlsCA
			case "tls-cert":
				cfg.Upstream.TLS.Cert = tlsCert
			case "tls-key":
				cfg.Upstream.TLS.Key = tlsKey
			case "body-limit":
				n, err := config.ParseByteSize(bodyLimit)
				if err != nil {
					errs = append(errs, fmt.Errorf("--body-limit: %w", err))
				}
				cfg.Limits.BodyBytes = n
			case "mode":
				cfg.Policy.Mode = mode
			case "policy-dir":
				cfg.Policy.Dirs = append(cfg.Policy.Dirs, policyDirs...)
			case "audit-log":
				cfg.Audit.Path = auditPath
			case "audit-stdout":
				cfg.Audit.Stdout = auditStdout
			case "log-level":
				cfg.Log.Level = logLevel
			case "log-format":
				cfg.Log.Format = logFormat
			case "shutdown-timeout":
				cfg.ShutdownTimeout = shutdownTimeout
			case "metrics-listen":
				cfg.Metrics.Listen = metricsListen
			case "watch":
				cfg.Policy.Watch = watch
			}
		})
		if cfg.Listen.Path == "" {
			cfg.Listen.Path = defaultListenPath()
			if cfg.Listen.Path == "" {
				errs = append(errs, errors.New("no socket path to listen on: XDG_RUNTIME_DIR is not set; give --listen or listen.path"))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		return cfg.Validate()
	}
	if configPath != "" {
		// Absolute, so that the watcher's event paths match it.
		abs, err := filepath.Abs(configPath)
		if err != nil {
			return serveSettings{}, fmt.Errorf("--config %q: %w", configPath, err)
		}
		configPath = abs
	}
	s := serveSettings{allowAll: allowAll, configPath: configPath, overrides: overrides}
	cfg, err := s.loadConfig()
	if err != nil {
		return serveSettings{}, err
	}
	s.cfg = cfg
	return s, nil
}

// loadConfig reads the configuration file (or takes the defaults) and
// applies the command-line flags over it.
func (s serveSettings) loadConfig() (*config.Config, error) {
	cfg := config.Default()
	if s.configPath != "" {
		var err error
		if cfg, err = config.Load(s.configPath); err != nil {
			return nil, err
		}
	}
	if s.overrides != nil {
		if err := s.overrides(cfg); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func runServe(args []string) int {
	s, err := parseServeArgs(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sockproxy serve: %v\n", err)
		return 2
	}
	logger := newLogger(s.cfg.Log, os.Stderr)
	if path := os.Getenv("SOCKPROXY_CPUPROFILE"); path != "" {
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sockproxy serve: SOCKPROXY_CPUPROFILE: %v\n", err)
			return 1
		}
		defer stopProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s.ownProcess = true
	if err := serve(ctx, s, logger, os.Stdout); err != nil {
		logger.Error("sockproxy serve failed", "error", err)
		return 1
	}
	return 0
}

// startCPUProfile writes a CPU profile of the process to path until the
// returned stop: SOCKPROXY_CPUPROFILE, for measuring where a proxied
// request's time goes (docs/performance.md), e.g. under make bench.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated with the config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// buildEngine builds the Rego engine (built-in library plus the
// configured modules and data), or returns nil only when --allow-all says
// so explicitly.
func buildEngine(ctx context.Context, s serveSettings, rt http.RoundTripper, logger *slog.Logger) (*policy.Engine, error) {
	if s.allowAll {
		logger.Warn("--allow-all: every request is forwarded unjudged; any caller of the socket controls the host")
		return nil, nil
	}
	opts := policyOptions(s.cfg, logger)
	// Predefined networks (bridge for nearly every create) from memory: see policy.NetworkCache.
	opts.Input.Daemon = policy.NewNetworkCache(input.NewHTTPDaemon(rt, ""), 0)
	opts.Build = versionedBuilder(opts.Input, newAPIVersionSource(rt, logger))
	return policy.NewEngine(ctx, opts)
}

// versionedBuilder builds policy inputs with dockerd's own API version as
// the default for unversioned paths (their bodies get that version's
// semantics), unless the configuration pins one.
func versionedBuilder(base input.Options, versions *apiVersionSource) policy.Builder {
	return func(ctx context.Context, req *proxy.Request) (*input.Input, []byte, error) {
		opts := base
		if opts.DefaultAPIVersion == "" && req.Operation.APIVersion == "" {
			v, err := versions.get(ctx)
			if err != nil {
				return nil, nil, &input.RequestError{Status: 502, Message: err.Error()}
			}
			opts.DefaultAPIVersion = v
		}
		return input.Build(ctx, req, opts)
	}
}

func newAuditor(c config.Audit, logger *slog.Logger) (*audit.Log, error) {
	if c.Path == "" && !c.Stdout {
		logger.Warn("no audit log configured: decisions are only logged; set audit.path or --audit-log")
		return nil, nil
	}
	opts := audit.Options{
		Path:       c.Path,
		MaxSizeMB:  c.MaxSizeMB,
		MaxBackups: c.MaxBackups,
		Compress:   c.Compress,
		Sync:       c.Sync,
		FailOpen:   c.FailOpen,
		Logger:     logger,
	}
	if c.Stdout {
		opts.Stdout = os.Stdout
	}
	return audit.New(opts)
}

// serve runs the proxy until ctx ends, then shuts it down gracefully. It
// writes the DOCKER_HOST line to stdout once it listens.
func serve(ctx context.Context, s serveSettings, logger *slog.Logger, stdout io.Writer) error {
	cfg := s.cfg
	upstream := proxy.Upstream{Address: cfg.Upstream.URL, CAFile: cfg.Upstream.TLS.CA, CertFile: cfg.Upstream.TLS.Cert, KeyFile: cfg.Upstream.TLS.Key}
	rt, err := upstream.RoundTripper()
	if err != nil {
		return err
	}
	var m *metrics.Metrics
	auditLog, err := newAuditor(cfg.Audit, logger)
	if err != nil {
		return err
	}
	if auditLog != nil {
		defer auditLog.Close()
	}
	if cfg.Metrics.Listen != "" {
		var mopts metrics.Options
		if auditLog != nil {
			mopts.AuditStats = auditLog.Stats
		}
		m = metrics.New(mopts)
	}

	engine, err := buildEngine(ctx, s, rt, logger)
	if err != nil {
		return err
	}
	var decider proxy.Decider = proxy.AllowAll
	var reloader *policy.Reloader
	if engine != nil {
		decider = engine
		reloader = policy.NewReloader(policy.ReloaderOptions{
			Engine: engine, Dirs: cfg.Policy.Dirs, Data: cfg.Policy.Data, Logger: logger,
			Observe: func(res policy.ReloadResult) {
				if m != nil {
					m.ObserveReload(res)
				}
			},
		})
		// The policy in force must pass its Rego tests from the start.
		if res := reloader.Reload(ctx, "start"); res.Err != nil {
			return fmt.Errorf("the policy is not put in force: %w", res.Err)
		}
	}

	var auditor proxy.Auditor
	if auditLog != nil {
		auditor = auditLog
	}
	var fleet *policy.Fleet
	if len(cfg.OPA) > 0 {
		if reloader == nil {
			return errors.New("the opa section (bundles, decision logs) needs the policy engine: it cannot go with --allow-all")
		}
		fleet, err = policy.StartFleet(ctx, policy.FleetOptions{
			Config: cfg.OPA, Reloader: reloader, Logger: logger,
			OnLogError: func(error) {
				if m != nil {
					m.DecisionLogFailed()
				}
			},
		})
		if err != nil {
			return err
		}
		defer fleet.Stop(context.Background())
		auditor = fleet.Auditor(auditor)
	}
	if m != nil {
		auditor = m.Auditor(auditor)
	}
	pcfg := proxy.Config{
		Classifier: route.New(route.Config{MinAPIVersion: route.DefaultMinAPIVersion}),
		Decider:    decider,
		Auditor:    auditor,
		Upstream:   upstream,
		BodyLimit:  int64(cfg.Limits.BodyBytes),
		Logger:     logger,
		Mode:       cfg.Policy.Mode,
	}
	p, err := proxy.New(pcfg)
	if err != nil {
		return err
	}
	live := &liveConfig{settings: s, running: cfg, engine: engine, reloader: reloader, proxy: p, metrics: m, log: logger}

	listeners := []net.Listener{}
	unixLn, err := proxy.ListenUnix(cfg.Listen.Path, fs.FileMode(cfg.Listen.Mode), cfg.Listen.Group)
	if err != nil {
		return err
	}
	listeners = append(listeners, unixLn)
	if cfg.Listen.TCP != "" {
		tcpLn, err := net.Listen("tcp", cfg.Listen.TCP)
		if err != nil {
			unixLn.Close()
			return fmt.Errorf("listen on TCP %s: %w", cfg.Listen.TCP, err)
		}
		logger.Warn("TCP listener: its callers are anonymous (no peer credentials) and unencrypted", "address", tcpLn.Addr().String())
		listeners = append(listeners, tcpLn)
	}
	if m != nil {
		stop, err := serveMetrics(cfg.Metrics, m, healthChecks(rt, engine, reloader, auditLog, fleet), p, logger)
		if err != nil {
			for _, ln := range listeners {
				ln.Close()
			}
			return err
		}
		defer stop()
	}

	// Start serving with the heap of what is in use only: what setting up
	// left behind (the route table, the clients, the listeners) would
	// otherwise stay resident until the heap grows enough for a collection.
	debug.FreeOSMemory()
	if s.ownProcess {
		kib := releaseStartPages()
		logger.Debug("pages of the binary resident after the start given back; requests fault back what they use", "kib", kib)
	}
	errs := make(chan error, len(listeners))
	for _, ln := range listeners {
		go func() { errs <- p.Serve(ln) }()
	}
	policyName := "rego"
	if s.allowAll {
		policyName = "allow-all"
	}
	logger.Info("sockproxy listening", "socket", cfg.Listen.Path, "mode", fmt.Sprintf("%04o", uint32(cfg.Listen.Mode)), "group", cfg.Listen.Group,
		"upstream", p.UpstreamAddress(), "policy", policyName, "policy_mode", cfg.Policy.Mode, "body_limit", int64(cfg.Limits.BodyBytes),
		"metrics", cfg.Metrics.Listen, "watch", cfg.Policy.Watch && reloader != nil)
	fmt.Fprintf(stdout, "export DOCKER_HOST=unix://%s\n", cfg.Listen.Path)

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if cfg.Policy.Watch && reloader != nil {
		w, err := policy.NewWatcher(cfg.Policy.WatchDebounce, logger)
		if err != nil {
			logger.Error("policy files are not watched; reload with SIGHUP", "error", err)
		} else {
			defer w.Close()
			live.watcher = w
			live.rewatch()
			go w.Run(watchCtx, func(changed []string) { live.filesChanged(watchCtx, changed) })
		}
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var serveErr error
wait:
	for {
		select {
		case <-hup:
			// SIGHUP: reopen the audit log (after logrotate moved it), re-read
			// the configuration and reload the policy; a policy that fails to
			// load keeps the old one.
			if auditLog != nil {
				if err := auditLog.Reopen(); err != nil {
					logger.Error("reopening the audit log failed", "error", err)
				}
			}
			live.reload(ctx, "SIGHUP", s.configPath != "")
		case <-ctx.Done():
			logger.Info("shutting down: no new connections; waiting for requests in flight", "timeout", cfg.ShutdownTimeout)
			break wait
		case serveErr = <-errs:
			logger.Error("listener failed; shutting down", "error", serveErr)
			break wait
		}
	}
	stopWatch()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := p.Shutdown(shutdownCtx); err != nil {
		logger.Warn("shutdown timeout reached: open streams and connections were cut", "error", err)
	}
	logger.Info("sockproxy stopped")
	return serveErr
}
