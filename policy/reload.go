package policy

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ReloadResult is the outcome of one attempt to put a new revision in force.
type ReloadResult struct {
	// Cause says what asked for the reload ("start", "SIGHUP", "files
	// changed: ...", "config", "bundle site").
	Cause string
	// Revision is the revision in force after the attempt (the old one when
	// the attempt failed).
	Revision *Revision
	// Changed is true when a revision with other content was swapped in.
	Changed bool
	// Tests are the Rego tests the candidate ran.
	Tests TestReport
	// Err is why the candidate was refused (it names file:line); the old
	// revision keeps serving.
	Err      error
	Duration time.Duration
	At       time.Time
}

// ReloaderOptions configure a Reloader.
type ReloaderOptions struct {
	// Engine gets the validated revisions (Engine.Swap).
	Engine *Engine
	// Dirs and Data are the local policy source (as in Options).
	Dirs []string
	Data map[string]any
	// Logger receives one line per attempt (slog.Default() when nil).
	Logger *slog.Logger
	// Observe, when set, is called after every attempt (metrics).
	Observe func(ReloadResult)
}

// Reloader validates and swaps policy revisions: the local directories and
// data plus the last good content of every activated bundle are compiled,
// their Rego tests run, and only a candidate that passes both is swapped
// into the engine. Requests already deciding keep the revision they loaded.
// Reloads are serialized.
type Reloader struct {
	engine  *Engine
	log     *slog.Logger
	observe func(ReloadResult)

	mu      sync.Mutex
	dirs    []string
	data    map[string]any
	bundles map[string]*Files

	last     atomic.Pointer[ReloadResult]
	attempts atomic.Uint64
	failures atomic.Uint64
}

// NewReloader returns a reloader for opts.Engine; it does not reload.
func NewReloader(opts ReloaderOptions) *Reloader {
	r := &Reloader{
		engine:  opts.Engine,
		log:     opts.Logger,
		observe: opts.Observe,
		dirs:    slices.Clone(opts.Dirs),
		data:    opts.Data,
		bundles: map[string]*Files{},
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r
}

// Reload re-reads the policy directories and tries the result.
func (r *Reloader) Reload(ctx context.Context, cause string) ReloadResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.try(ctx, cause, r.dirs, r.data, r.bundles)
}

// SetSource tries new directories and library data (a configuration
// reload); they are kept only when the candidate is put in force.
func (r *Reloader) SetSource(ctx context.Context, cause string, dirs []string, data map[string]any) ReloadResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.try(ctx, cause, dirs, data, r.bundles)
	if res.Err == nil {
		r.dirs, r.data = slices.Clone(dirs), data
	}
	return res
}

// SetBundle tries the content of an activated bundle in place of its
// previous content; it is kept only when the candidate is put in force.
func (r *Reloader) SetBundle(ctx context.Context, name string, files *Files) ReloadResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	bundles := maps.Clone(r.bundles)
	bundles[name] = files
	res := r.try(ctx, "bundle "+name, r.dirs, r.data, bundles)
	if res.Err == nil {
		r.bundles = bundles
	}
	return res
}

// Dirs are the policy directories in force (to watch).
func (r *Reloader) Dirs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.dirs)
}

// Last is the latest attempt (nil before the first).
func (r *Reloader) Last() *ReloadResult { return r.last.Load() }

// Counts are the attempts and the failed attempts so far.
func (r *Reloader) Counts() (attempts, failures uint64) {
	return r.attempts.Load(), r.failures.Load()
}

func (r *Reloader) try(ctx context.Context, cause string, dirs []string, data map[string]any, bundles map[string]*Files) ReloadResult {
	start := time.Now()
	src, tests := bundleSource(bundles)
	src.Dirs, src.Data = dirs, data
	done := CompileMemory()
	rev, report, err := Validate(ctx, src, tests)
	done()
	res := ReloadResult{Cause: cause, Tests: report, Err: err, At: start}
	if err == nil {
		old := r.engine.Revision()
		res.Changed = old == nil || old.Hash != rev.Hash
		if res.Changed {
			r.engine.Swap(rev)
		}
	}
	res.Revision = r.engine.Revision()
	res.Duration = time.Since(start)
	r.attempts.Add(1)
	if err != nil {
		r.failures.Add(1)
		r.log.Error("policy reload refused; the previous revision stays in force", "cause", cause,
			"revision", revisionID(res.Revision), "error", err.Error())
	} else {
		r.log.Info("policy reload", "cause", cause, "revision", res.Revision.ID, "changed", res.Changed,
			"modules", len(res.Revision.Modules), "library_tests", report.Library, "user_tests", report.User, "duration", res.Duration)
	}
	r.last.Store(&res)
	if r.observe != nil {
		r.observe(res)
	}
	return res
}

func revisionID(rev *Revision) string {
	if rev == nil {
		return ""
	}
	return rev.ID
}

// bundleSource puts the modules and data of every bundle, in name order,
// into one Source, and their tests together. A bundle's files are named
// bundle:<name>/<path> so that errors say where they come from.
func bundleSource(bundles map[string]*Files) (Source, map[string]string) {
	var src Source
	tests := map[string]string{}
	if len(bundles) == 0 {
		return src, tests
	}
	src.Modules = map[string]string{}
	src.Documents = map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(bundles)) {
		f := bundles[name]
		for path, text := range f.Modules {
			src.Modules[BundleFileName(name, path)] = text
		}
		for path, text := range f.Tests {
			tests[BundleFileName(name, path)] = text
		}
		mergeInto(src.Documents, f.Documents)
	}
	return src, tests
}

// BundleFileName is how a bundle's file is named in revisions and errors.
func BundleFileName(bundle, path string) string {
	return "bundle:" + bundle + "/" + strings.TrimPrefix(path, "/")
}
