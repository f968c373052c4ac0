package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"

	"github.com/sockproxy/sockproxy/config"
	"github.com/sockproxy/sockproxy/metrics"
	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/proxy"
)

// modeSetter is what the proxy offers when it can switch between enforce
// and dry-run while serving; without it a mode change needs a restart.
type modeSetter interface {
	SetMode(mode string) error
}

// streamCounter is what the proxy offers when it can tell how many
// responses it is relaying (streams, hijacked sessions).
type streamCounter interface {
	OpenStreams() int
}

// liveConfig applies changes of the configuration file and the policy
// files to the running proxy: what can change live is applied, the rest is
// logged as needing a restart. Changes come from the watcher's goroutine
// and from SIGHUP; mu serializes them.
type liveConfig struct {
	settings serveSettings
	engine   *policy.Engine
	reloader *policy.Reloader
	proxy    *proxy.Proxy
	metrics  *metrics.Metrics
	watcher  *policy.Watcher
	log      *slog.Logger

	mu sync.Mutex
	// running is the configuration in force: the keys applied live follow
	// the file, the others stay as started.
	running *config.Config
}

// filesChanged handles a batch of changed paths from the watcher.
func (l *liveConfig) filesChanged(ctx context.Context, changed []string) {
	configChanged := l.settings.configPath != "" && slices.Contains(changed, filepath.Clean(l.settings.configPath))
	cause := "files changed: " + strings.Join(changed, ", ")
	if len(changed) > 5 {
		cause = fmt.Sprintf("files changed: %s and %d more", strings.Join(changed[:5], ", "), len(changed)-5)
	}
	l.reload(ctx, cause, configChanged)
}

// reload re-reads the configuration file when readConfig is set, applies
// its live keys, and reloads the policy (once).
func (l *liveConfig) reload(ctx context.Context, cause string, readConfig bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reloader == nil {
		return // --allow-all: there is no policy to reload
	}
	if !readConfig {
		l.reloader.Reload(ctx, cause)
		l.rewatch()
		return
	}
	next, err := l.settings.loadConfig()
	if err != nil {
		// A configuration that does not load changes nothing.
		l.log.Error("configuration reload refused; the running configuration stays in force", "cause", cause, "error", err)
		if l.metrics != nil {
			l.metrics.ObserveReload(policy.ReloadResult{Cause: "config", Revision: l.engine.Revision(), Err: err, At: time.Now()})
		}
		return
	}
	changed := config.ChangedKeys(l.running, next)
	var restart []string
	for _, k := range changed {
		if !slices.Contains(config.LiveKeys, k) {
			restart = append(restart, k)
		}
	}
	if len(restart) > 0 {
		l.log.Warn("configuration changes that apply only after a restart", "keys", restart)
	}
	if next.Policy.EvalTimeout != l.running.Policy.EvalTimeout {
		l.engine.SetEvalTimeout(next.Policy.EvalTimeout)
		l.running.Policy.EvalTimeout = next.Policy.EvalTimeout
		l.log.Info("policy evaluation timeout changed", "eval_timeout", next.Policy.EvalTimeout)
	}
	if next.Policy.Mode != l.running.Policy.Mode {
		if ms, ok := any(l.proxy).(modeSetter); ok {
			if err := ms.SetMode(next.Policy.Mode); err != nil {
				l.log.Error("policy mode not changed", "mode", next.Policy.Mode, "error", err)
			} else {
				l.running.Policy.Mode = next.Policy.Mode
				l.log.Warn("policy mode changed", "mode", next.Policy.Mode)
			}
		} else {
			l.log.Warn("configuration changes that apply only after a restart", "keys", []string{"policy.mode"},
				"reason", "this proxy cannot switch modes while serving")
		}
	}
	if slices.Contains(changed, "policy.dirs") || slices.Contains(changed, "policy.data") {
		res := l.reloader.SetSource(ctx, cause, next.Policy.Dirs, next.Policy.Data)
		if res.Err == nil {
			l.running.Policy.Dirs, l.running.Policy.Data = next.Policy.Dirs, next.Policy.Data
		}
	} else {
		l.reloader.Reload(ctx, cause)
	}
	l.rewatch()
}

// rewatch points the watcher at the policy directories in force and the
// configuration file.
func (l *liveConfig) rewatch() {
	if l.watcher == nil {
		return
	}
	var files []string
	if l.settings.configPath != "" {
		files = append(files, l.settings.configPath)
	}
	if err := l.watcher.Set(l.reloader.Dirs(), files); err != nil {
		l.log.Warn("some policy files are not watched; SIGHUP reloads them", "error", err)
	}
}

// serveMetrics serves /metrics and /healthz on the metrics listener; stop
// closes it.
func serveMetrics(c config.Metrics, m *metrics.Metrics, checks []metrics.Check, p *proxy.Proxy, logger *slog.Logger) (stop func(), err error) {
	if sc, ok := any(p).(streamCounter); ok {
		m.SetOpenStreams(sc.OpenStreams)
	}
	ln, err := metrics.Listen(c.Listen, func(path string) (net.Listener, error) {
		return proxy.ListenUnix(path, fs.FileMode(c.Mode), c.Group)
	})
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: metrics.Mux(m, metrics.HealthHandler(checks...)), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics listener failed", "error", err)
		}
	}()
	logger.Info("metrics and health listening", "address", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// healthChecks: dockerd answers a ping through the upstream transport, a
// policy revision is in force, and the audit log can be written.
func healthChecks(rt http.RoundTripper, engine *policy.Engine, reloader *policy.Reloader, auditLog *audit.Log, fleet *policy.Fleet) []metrics.Check {
	checks := []metrics.Check{metrics.UpstreamCheck(rt)}
	checks = append(checks, metrics.Check{Name: "policy", Run: func(context.Context) (string, error) {
		if engine == nil {
			return "allow-all: no policy judges requests", nil
		}
		rev := engine.Revision()
		if rev == nil {
			return "", errors.New("no policy revision is loaded")
		}
		detail := "revision " + rev.ID
		if last := reloader.Last(); last != nil && last.Err != nil {
			detail += fmt.Sprintf("; the latest reload (%s, %s) was refused: %v", last.Cause, last.At.Format(time.RFC3339), last.Err)
		}
		return detail, nil
	}})
	checks = append(checks, metrics.Check{Name: "audit", Run: func(context.Context) (string, error) {
		if auditLog == nil {
			return "no audit log configured", nil
		}
		if err := auditLog.Ready(); err != nil {
			return "", fmt.Errorf("the audit log cannot be written (requests are refused): %w", err)
		}
		st := auditLog.Stats()
		if st.Failing {
			return "", fmt.Errorf("the audit log cannot be written (fail_open: requests are forwarded unaudited; %d pending, %d dropped)", st.Pending, st.Dropped)
		}
		return fmt.Sprintf("%d records, %d write errors", st.Records, st.WriteErrors), nil
	}})
	if fleet != nil {
		// Informational: without a bundle the local policy still decides,
		// so a bundle server being down is not the proxy being unhealthy.
		checks = append(checks, metrics.Check{Name: "bundles", Run: func(context.Context) (string, error) {
			return bundlesDetail(fleet.BundleStatus()), nil
		}})
	}
	return checks
}

// bundlesDetail says, per OPA bundle, which revision is in force and the
// latest download or activation error.
func bundlesDetail(statuses map[string]bundleplugin.Status) string {
	if len(statuses) == 0 {
		return "no bundle status yet: the local policy decides"
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(statuses)) {
		st := statuses[name]
		part := name + ": "
		if st.ActiveRevision != "" || !st.LastSuccessfulActivation.IsZero() {
			part += fmt.Sprintf("revision %q since %s", st.ActiveRevision, st.LastSuccessfulActivation.Format(time.RFC3339))
		} else {
			part += "never activated (the local policy decides)"
		}
		if st.Code != "" || st.Message != "" {
			part += fmt.Sprintf("; latest error %s: %s", st.Code, st.Message)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}
