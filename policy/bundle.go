package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins"
	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/open-policy-agent/opa/v1/plugins/discovery"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/sockproxy/sockproxy/proxy"
	sprego "github.com/sockproxy/sockproxy/rego"
)

// FleetOptions configure OPA's management plane in sockproxy.
type FleetOptions struct {
	// Config is an OPA configuration (services, bundles, decision_logs,
	// keys, status, labels), as in OPA's config file.
	Config map[string]any
	// ID names this instance to the services (default: the host name).
	ID string
	// Reloader gets every bundle OPA activates: the bundle is in force only
	// when the library, the local policy and every bundle compile together
	// and pass their Rego tests.
	Reloader *Reloader
	// Logger receives OPA's plugin logs (slog.Default() when nil).
	Logger *slog.Logger
	// OnLogError is called when a decision cannot be queued for the remote
	// decision log (metrics).
	OnLogError func(error)
}

// Fleet runs OPA's plugins (bundle downloads with signature verification,
// decision log uploads, status reports) for sockproxy: bundles activated
// by OPA become policy revisions through the Reloader, and every audited
// request is also a decision log event.
type Fleet struct {
	manager    *plugins.Manager
	store      storage.Store
	reloader   *Reloader
	log        *slog.Logger
	onLogError func(error)

	statusMu sync.Mutex
	status   map[string]bundleplugin.Status
}

// StartFleet starts OPA's plugins with opts.Config. Bundles download in
// the background; each is activated (or refused) as it arrives.
func StartFleet(ctx context.Context, opts FleetOptions) (*Fleet, error) {
	if opts.Reloader == nil {
		return nil, errors.New("opa: a policy reloader is required")
	}
	raw, err := json.Marshal(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("opa configuration: %w", err)
	}
	id := opts.ID
	if id == "" {
		id, _ = os.Hostname()
	}
	f := &Fleet{store: inmem.New(), reloader: opts.Reloader, log: opts.Logger, onLogError: opts.OnLogError}
	if f.log == nil {
		f.log = slog.Default()
	}
	opaLog := &opaLogger{log: f.log.With("component", "opa")}
	manager, err := plugins.New(raw, id, f.store,
		plugins.Logger(opaLog), plugins.ConsoleLogger(opaLog),
		plugins.WithParserOptions(ast.ParserOptions{RegoVersion: ast.RegoV1}))
	if err != nil {
		return nil, fmt.Errorf("opa configuration: %w", err)
	}
	f.manager = manager
	var boot map[string]any
	if err := json.Unmarshal(raw, &boot); err != nil {
		return nil, fmt.Errorf("opa configuration: %w", err)
	}
	// Discovery without a discovery service only starts the plugins the
	// configuration names, exactly as OPA and its SDK do.
	d, err := discovery.New(manager, discovery.BootConfig(boot))
	if err != nil {
		return nil, fmt.Errorf("opa configuration: %w", err)
	}
	manager.Register(discovery.Name, d)
	f.status = map[string]bundleplugin.Status{}
	if p := bundleplugin.Lookup(manager); p != nil {
		p.RegisterBulkListener(f, func(st map[string]*bundleplugin.Status) {
			f.statusMu.Lock()
			defer f.statusMu.Unlock()
			for name, s := range st {
				f.status[name] = *s
			}
		})
	}
	registerFleet(f)
	if err := manager.Start(ctx); err != nil {
		unregisterFleet(f)
		return nil, fmt.Errorf("start OPA's plugins: %w", err)
	}
	return f, nil
}

// StopTimeout bounds Stop when its context has no deadline.
const StopTimeout = 10 * time.Second

// Stop stops the plugins; pending decision log events are uploaded first
// (periodic or immediate reporting), for at most StopTimeout when ctx has
// no deadline: OPA's plugin only flushes under a deadline.
func (f *Fleet) Stop(ctx context.Context) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, StopTimeout)
		defer cancel()
	}
	f.manager.Stop(ctx)
	unregisterFleet(f)
}

// Manager is OPA's plugin manager (tests, status).
func (f *Fleet) Manager() *plugins.Manager { return f.manager }

// BundleStatus is the latest status OPA's bundle plugin reported of each
// bundle (download, signature and activation errors included).
func (f *Fleet) BundleStatus() map[string]bundleplugin.Status {
	f.statusMu.Lock()
	defer f.statusMu.Unlock()
	return maps.Clone(f.status)
}

// The bundle activator is global in OPA: sockproxy registers one that
// hands activations in a Fleet's store to that Fleet, and every other
// activation to OPA's default.
const activatorID = "sockproxy"

var (
	activatorOnce sync.Once
	fleetsMu      sync.Mutex
	fleets        = map[storage.Store]*Fleet{}
)

func registerFleet(f *Fleet) {
	activatorOnce.Do(func() {
		bundle.RegisterActivator(activatorID, fleetActivator{})
		bundle.RegisterDefaultBundleActivator(activatorID)
		// With a default activator set, every rego.New without a store of
		// its own (the tester, checks) asks OPA's extension store func,
		// nil until set: give it OPA's plain in-memory store.
		bundle.RegisterStoreFunc(inmem.New)
	})
	fleetsMu.Lock()
	fleets[f.store] = f
	fleetsMu.Unlock()
}

func unregisterFleet(f *Fleet) {
	fleetsMu.Lock()
	delete(fleets, f.store)
	fleetsMu.Unlock()
}

type fleetActivator struct{}

func (fleetActivator) Activate(opts *bundle.ActivateOpts) error {
	fleetsMu.Lock()
	f := fleets[opts.Store]
	fleetsMu.Unlock()
	if f == nil {
		return (&bundle.DefaultActivator{}).Activate(opts)
	}
	return f.activate(opts)
}

// activate lets OPA activate the bundle (compiled with the library, so
// that its rules may call the library's functions), then builds a revision
// from it; a bundle whose revision does not compile or fails its tests is
// refused, and OPA reports the error in the bundle's status.
func (f *Fleet) activate(opts *bundle.ActivateOpts) error {
	for name, b := range opts.Bundles {
		if b.Type() == bundle.DeltaBundleType {
			return fmt.Errorf("bundle %s: delta bundles are not supported; serve snapshot bundles", name)
		}
	}
	extra := map[string]*ast.Module{}
	maps.Copy(extra, opts.ExtraModules)
	for name, text := range sprego.Modules() {
		m, err := ast.ParseModuleWithOpts(name, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		extra["sockproxy-library/"+name] = m
	}
	opts.ExtraModules = extra
	if err := (&bundle.DefaultActivator{}).Activate(opts); err != nil {
		// OPA refused to compile the bundle: the policy in force stays, and
		// the failure counts as a refused reload like any other.
		return f.reloader.refuseBundle(opts.Bundles, err)
	}
	for name, b := range opts.Bundles {
		files, err := bundleFiles(opts, b)
		if err != nil {
			return fmt.Errorf("bundle %s: %w", name, err)
		}
		if f.reloader.hasBundle(name, files) {
			// Same content again (a server without ETags, a restart with a
			// persisted bundle): the revision in force already has it.
			f.log.Debug("bundle unchanged", "bundle", name, "bundle_revision", b.Manifest.Revision)
			continue
		}
		res := f.reloader.SetBundle(opts.Ctx, name, files)
		if res.Err != nil {
			return fmt.Errorf("sockproxy refused bundle %s (revision %q); the previous policy stays in force: %w", name, b.Manifest.Revision, res.Err)
		}
		f.log.Info("bundle activated", "bundle", name, "bundle_revision", b.Manifest.Revision, "policy_revision", res.Revision.ID)
	}
	return nil
}

// hasBundle tells whether files are the content of bundle name in force.
func (r *Reloader) hasBundle(name string, files *Files) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.bundles[name]
	return ok && reflect.DeepEqual(cur, files)
}

// refuseBundle records bundles that OPA itself refused to activate (they
// do not compile) as a failed reload: logged, counted and observed like a
// revision that fails its tests.
func (r *Reloader) refuseBundle(bundles map[string]*bundle.Bundle, err error) error {
	names := slices.Sorted(maps.Keys(bundles))
	var revs []string
	for _, name := range names {
		revs = append(revs, fmt.Sprintf("%s (revision %q)", name, bundles[name].Manifest.Revision))
	}
	err = fmt.Errorf("sockproxy refused bundle %s; the previous policy stays in force: %w", strings.Join(revs, ", "), err)
	r.mu.Lock()
	defer r.mu.Unlock()
	res := ReloadResult{Cause: "bundle " + strings.Join(names, ","), Revision: r.engine.Revision(), Err: err, At: time.Now()}
	r.attempts.Add(1)
	r.failures.Add(1)
	r.log.Error("policy reload refused; the previous revision stays in force", "cause", res.Cause,
		"revision", revisionID(res.Revision), "error", err.Error())
	r.last.Store(&res)
	if r.observe != nil {
		r.observe(res)
	}
	return err
}

// bundleFiles reads a bundle's modules and, from the store it was just
// written to, its data (OPA may keep a bundle's data unparsed until then).
func bundleFiles(opts *bundle.ActivateOpts, b *bundle.Bundle) (*Files, error) {
	files := &Files{Modules: map[string]string{}, Tests: map[string]string{}, Documents: map[string]any{}}
	for _, m := range b.Modules {
		if IsTestFile(m.Path) {
			files.Tests[m.Path] = string(m.Raw)
		} else {
			files.Modules[m.Path] = string(m.Raw)
		}
	}
	roots := []string{""}
	if b.Manifest.Roots != nil {
		roots = *b.Manifest.Roots
	}
	for _, root := range roots {
		path, ok := storage.ParsePathEscaped("/" + strings.Trim(root, "/"))
		if !ok {
			return nil, fmt.Errorf("root %q is not a data path", root)
		}
		v, err := opts.Store.Read(opts.Ctx, opts.Txn, path)
		if storage.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		doc, err := jsonDoc(v)
		if err != nil {
			return nil, err
		}
		if len(path) == 0 {
			m, _ := doc.(map[string]any)
			delete(m, "system") // OPA's own bundle bookkeeping
			mergeInto(files.Documents, m)
			continue
		}
		nested := doc
		for i := len(path) - 1; i >= 0; i-- {
			nested = map[string]any{path[i]: nested}
		}
		mergeInto(files.Documents, nested.(map[string]any))
	}
	return files, nil
}

// Auditor wraps next (nil: no audit log) so that every audited request is
// also sent to OPA's decision log plugin, when decision_logs is configured.
// The audit log stays the record of truth: Ready and Audit's error are
// next's, and a decision the decision log drops is only counted.
func (f *Fleet) Auditor(next proxy.Auditor) proxy.Auditor {
	return &decisionLogAuditor{f: f, next: next}
}

type decisionLogAuditor struct {
	f    *Fleet
	next proxy.Auditor
}

func (a *decisionLogAuditor) Ready() error {
	if a.next == nil {
		return nil
	}
	return a.next.Ready()
}

func (a *decisionLogAuditor) Audit(ev *proxy.AuditEvent) error {
	var err error
	if a.next != nil {
		err = a.next.Audit(ev)
	}
	if logErr := a.f.LogDecision(context.Background(), ev); logErr != nil {
		a.f.log.Debug("decision log event dropped", "error", logErr)
		if a.f.onLogError != nil {
			a.f.onLogError(logErr)
		}
	}
	return err
}

// LogDecision sends one audited request to OPA's decision log plugin (a
// no-op without decision_logs). The event's input is the request as
// audited (operation, caller, key facts), its result the decision.
func (f *Fleet) LogDecision(ctx context.Context, ev *proxy.AuditEvent) error {
	p := logs.Lookup(f.manager)
	if p == nil {
		return nil
	}
	var in any
	id := ""
	if r := ev.Request; r != nil {
		id = r.ID
		in = map[string]any{
			"operation":   r.Operation.Name,
			"method":      r.Operation.Method,
			"path":        r.Operation.Path,
			"api_version": r.Operation.APIVersion,
			"caller":      r.Caller,
			"facts":       ev.Decision.Facts,
		}
	}
	result := any(map[string]any{
		"decision":    decisionName(ev),
		"reasons":     nonNil(ev.Decision.Reasons),
		"warnings":    nonNil(ev.Decision.Warnings),
		"status":      ev.Status,
		"body_sha256": ev.BodySHA256,
	})
	info := &server.Info{
		DecisionID: id,
		Path:       "sockproxy/deny",
		Revision:   ev.Decision.Revision,
		Timestamp:  ev.Start,
		Input:      &in,
		Results:    &result,
		Custom:     map[string]any{"policy_revision": ev.Decision.Revision, "mode": ev.Mode},
	}
	// Plain JSON values: OPA's masking and drop rules work on them.
	in, result = plainJSON(in), plainJSON(result)
	return p.Log(ctx, info)
}

// nonNil makes an absent list an empty one, as the audit log writes it.
func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// plainJSON is v as encoding/json decodes it (maps, slices, strings,
// float64s), or v when it does not encode.
func plainJSON(v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(raw, &out) != nil {
		return v
	}
	return out
}

// decisionName is the decision as the audit log names it.
func decisionName(ev *proxy.AuditEvent) string {
	switch ev.Outcome {
	case "allow":
		if ev.Mode == "dry-run" && !ev.Decision.Allow {
			return "would-deny"
		}
		return "allow"
	case "":
		if ev.Decision.Allow {
			return "allow"
		}
		return "deny"
	default:
		return ev.Outcome
	}
}

// opaLogger sends OPA's plugin logs to slog.
type opaLogger struct {
	log *slog.Logger
}

func (l *opaLogger) logf(level slog.Level, format string, a []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, a...))
	}
}

func (l *opaLogger) Debug(format string, a ...any) { l.logf(slog.LevelDebug, format, a) }
func (l *opaLogger) Info(format string, a ...any)  { l.logf(slog.LevelInfo, format, a) }
func (l *opaLogger) Warn(format string, a ...any)  { l.logf(slog.LevelWarn, format, a) }
func (l *opaLogger) Error(format string, a ...any) { l.logf(slog.LevelError, format, a) }

func (l *opaLogger) WithFields(fields map[string]any) logging.Logger {
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	return &opaLogger{log: l.log.With(args...)}
}

func (l *opaLogger) GetLevel() logging.Level {
	switch ctx := context.Background(); {
	case l.log.Enabled(ctx, slog.LevelDebug):
		return logging.Debug
	case l.log.Enabled(ctx, slog.LevelInfo):
		return logging.Info
	case l.log.Enabled(ctx, slog.LevelWarn):
		return logging.Warn
	}
	return logging.Error
}

func (l *opaLogger) SetLevel(logging.Level) {}
