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
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sockproxy/sockproxy/proxy"
	"github.com/sockproxy/sockproxy/proxy/route"
)

func init() {
	register("serve", "listen on a Unix socket and forward judged requests to dockerd", runServe)
}

// serveOptions are the settings of `sockproxy serve`. Flags fill them over
// defaultServeOptions; a config file can fill the same struct first, and
// flags given on the command line then override it (see parseServeArgs).
type serveOptions struct {
	Listen      string   `yaml:"listen"`
	ListenTCP   string   `yaml:"listen_tcp"`
	SocketMode  fileMode `yaml:"socket_mode"`
	SocketGroup string   `yaml:"socket_group"`
	Upstream    string   `yaml:"upstream"`
	TLSCA       string   `yaml:"tls_ca"`
	TLSCert     string   `yaml:"tls_cert"`
	TLSKey      string   `yaml:"tls_key"`
	BodyLimit   int64    `yaml:"body_limit"`
	// AllowAll replaces the built-in read-only policy with no policy at all.
	AllowAll        bool          `yaml:"allow_all"`
	LogLevel        string        `yaml:"log_level"`
	LogFormat       string        `yaml:"log_format"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
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

func defaultServeOptions() serveOptions {
	return serveOptions{
		Listen:          defaultListenPath(),
		SocketMode:      fileMode(proxy.DefaultSocketMode),
		Upstream:        proxy.DefaultUpstream,
		BodyLimit:       proxy.DefaultBodyLimit,
		LogLevel:        "info",
		LogFormat:       "text",
		ShutdownTimeout: 10 * time.Second,
	}
}

// flagSet binds the serve flags to o; each flag's default is o's current
// value, so flags override whatever filled o before.
func (o *serveOptions) flagSet(stderr io.Writer) *flag.FlagSet {
	set := flag.NewFlagSet("sockproxy serve", flag.ContinueOnError)
	set.SetOutput(stderr)
	set.StringVar(&o.Listen, "listen", o.Listen, "path of the Unix socket to listen on (default /run/sockproxy/docker.sock for root, else $XDG_RUNTIME_DIR/sockproxy.sock)")
	set.StringVar(&o.ListenTCP, "listen-tcp", o.ListenTCP, "also listen on this TCP address (host:port); its callers are anonymous and it has no TLS: keep it on loopback")
	set.Var(&o.SocketMode, "socket-mode", "file mode of the listening socket, octal")
	set.StringVar(&o.SocketGroup, "socket-group", o.SocketGroup, "group (name or gid) that owns the listening socket")
	set.StringVar(&o.Upstream, "upstream", o.Upstream, "dockerd to forward to: unix:///path or tcp://host:port")
	set.StringVar(&o.TLSCA, "tls-ca", o.TLSCA, "CA certificate (PEM) to verify a tcp:// upstream")
	set.StringVar(&o.TLSCert, "tls-cert", o.TLSCert, "client certificate (PEM) for a tcp:// upstream")
	set.StringVar(&o.TLSKey, "tls-key", o.TLSKey, "client key (PEM) for a tcp:// upstream")
	set.Int64Var(&o.BodyLimit, "body-limit", o.BodyLimit, "largest request body, in bytes, that is read whole to be judged; larger ones are refused with 413")
	set.BoolVar(&o.AllowAll, "allow-all", o.AllowAll, "DANGEROUS: allow every request (no policy); without it only read-only requests pass")
	set.StringVar(&o.LogLevel, "log-level", o.LogLevel, "debug (one line per request), info, warn or error")
	set.StringVar(&o.LogFormat, "log-format", o.LogFormat, "text or json")
	set.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "on SIGTERM/SIGINT, how long in-flight requests and streams may go on before they are cut")
	return set
}

// parseServeArgs fills options from args over base. To add a config file:
// load it into defaultServeOptions() and pass that as base, so that flags
// given on the command line win.
func parseServeArgs(base serveOptions, args []string, stderr io.Writer) (serveOptions, error) {
	o := base
	set := o.flagSet(stderr)
	if err := set.Parse(args); err != nil {
		return o, err
	}
	if set.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", set.Args())
	}
	if o.Listen == "" {
		return o, errors.New("no socket path to listen on: XDG_RUNTIME_DIR is not set; give --listen")
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return o, fmt.Errorf("--log-format must be text or json, not %q", o.LogFormat)
	}
	if _, err := parseLevel(o.LogLevel); err != nil {
		return o, err
	}
	if o.BodyLimit <= 0 {
		return o, fmt.Errorf("--body-limit must be positive, not %d", o.BodyLimit)
	}
	return o, nil
}

func runServe(args []string) int {
	o, err := parseServeArgs(defaultServeOptions(), args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sockproxy serve: %v\n", err)
		return 2
	}
	logger := newLogger(o, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, o, logger, os.Stdout); err != nil {
		logger.Error("sockproxy serve failed", "error", err)
		return 1
	}
	return 0
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level must be debug, info, warn or error, not %q", s)
	}
	return l, nil
}

func newLogger(o serveOptions, w io.Writer) *slog.Logger {
	level, _ := parseLevel(o.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if o.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// buildDecider picks the policy. Without an explicit --allow-all the proxy
// never allows everything.
func buildDecider(o serveOptions, logger *slog.Logger) (proxy.Decider, string) {
	if o.AllowAll {
		logger.Warn("--allow-all: every request is forwarded unjudged; any caller of the socket controls the host")
		return proxy.AllowAll, "allow-all"
	}
	return proxy.ReadOnlyDecider, "built-in read-only"
}

// serve runs the proxy until ctx ends, then shuts it down gracefully. It
// writes the DOCKER_HOST line to stdout once it listens.
func serve(ctx context.Context, o serveOptions, logger *slog.Logger, stdout io.Writer) error {
	decider, policy := buildDecider(o, logger)
	p, err := proxy.New(proxy.Config{
		Classifier: route.New(route.Config{}),
		Decider:    decider,
		Upstream:   proxy.Upstream{Address: o.Upstream, CAFile: o.TLSCA, CertFile: o.TLSCert, KeyFile: o.TLSKey},
		BodyLimit:  o.BodyLimit,
		Logger:     logger,
	})
	if err != nil {
		return err
	}

	listeners := []net.Listener{}
	unixLn, err := proxy.ListenUnix(o.Listen, fs.FileMode(o.SocketMode), o.SocketGroup)
	if err != nil {
		return err
	}
	listeners = append(listeners, unixLn)
	if o.ListenTCP != "" {
		tcpLn, err := net.Listen("tcp", o.ListenTCP)
		if err != nil {
			unixLn.Close()
			return fmt.Errorf("listen on TCP %s: %w", o.ListenTCP, err)
		}
		logger.Warn("TCP listener: its callers are anonymous (no peer credentials) and unencrypted", "address", tcpLn.Addr().String())
		listeners = append(listeners, tcpLn)
	}

	errs := make(chan error, len(listeners))
	for _, ln := range listeners {
		go func() { errs <- p.Serve(ln) }()
	}
	logger.Info("sockproxy listening", "socket", o.Listen, "mode", o.SocketMode.String(), "group", o.SocketGroup,
		"upstream", p.UpstreamAddress(), "policy", policy, "body_limit", o.BodyLimit)
	fmt.Fprintf(stdout, "export DOCKER_HOST=unix://%s\n", o.Listen)

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down: no new connections; waiting for requests in flight", "timeout", o.ShutdownTimeout)
	case serveErr = <-errs:
		logger.Error("listener failed; shutting down", "error", serveErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if err := p.Shutdown(shutdownCtx); err != nil {
		logger.Warn("shutdown timeout reached: open streams and connections were cut", "error", err)
	}
	logger.Info("sockproxy stopped")
	return serveErr
}

// fileMode is an octal file mode flag ("0660").
type fileMode fs.FileMode

func (m *fileMode) String() string { return fmt.Sprintf("%04o", uint32(*m)) }

func (m *fileMode) Set(s string) error {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || v > 0o777 {
		return fmt.Errorf("socket mode %q is not an octal permission such as 0660", s)
	}
	*m = fileMode(v)
	return nil
}

// UnmarshalText lets a config file give the mode as a string.
func (m *fileMode) UnmarshalText(b []byte) error { return m.Set(string(b)) }
