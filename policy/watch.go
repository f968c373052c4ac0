package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a Watcher waits for the files to settle: an
// editor's save or a `git checkout` is many events, and one reload.
const DefaultDebounce = 300 * time.Millisecond

// Watcher reports changes to policy directories (recursively: modules and
// data files, new subdirectories) and to single files (the configuration),
// batched: after a change it waits until nothing changed for the debounce
// interval, then reports every path that changed.
//
// Single files are watched through their directory, so that editors that
// save by renaming a new file over the old one, and Kubernetes volumes that
// swap a ..data symlink, are seen.
type Watcher struct {
	fsw      *fsnotify.Watcher
	debounce time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	roots   []string        // watched policy directories
	files   map[string]bool // watched single files
	watched map[string]bool // directories added to fsw
}

// NewWatcher starts an inotify watcher that watches nothing yet; debounce
// 0 means DefaultDebounce.
func NewWatcher(debounce time.Duration, log *slog.Logger) (*Watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch policy files: %w (raise fs.inotify.max_user_instances, or set policy.watch: false and reload with SIGHUP)", err)
	}
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{fsw: fsw, debounce: debounce, log: log, files: map[string]bool{}, watched: map[string]bool{}}, nil
}

// Set replaces what is watched: dirs recursively, files one by one.
func (w *Watcher) Set(dirs, files []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for d := range w.watched {
		_ = w.fsw.Remove(d)
	}
	w.watched = map[string]bool{}
	w.roots = nil
	w.files = map[string]bool{}
	var errs []error
	for _, d := range dirs {
		d = filepath.Clean(d)
		w.roots = append(w.roots, d)
		if err := w.addTree(d); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range files {
		f = filepath.Clean(f)
		w.files[f] = true
		if err := w.add(filepath.Dir(f)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// addTree watches dir and every directory below it (hidden ones excepted,
// as the loader skips them). w.mu is held.
func (w *Watcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("watch %s: %w", path, err)
		}
		if !d.IsDir() {
			return nil
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		return w.add(path)
	})
}

func (w *Watcher) add(dir string) error {
	if w.watched[dir] {
		return nil
	}
	if err := w.fsw.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	w.watched[dir] = true
	return nil
}

// Run reports changes to onChange until ctx ends; onChange is called from
// Run's goroutine, one batch at a time, and may call Set.
func (w *Watcher) Run(ctx context.Context, onChange func(changed []string)) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	pending := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if w.relevant(ev) {
				pending[ev.Name] = true
				timer.Reset(w.debounce)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			// An overflowed queue lost events: reload to be sure.
			w.log.Warn("policy file watch error; reloading to be safe", "error", err)
			pending["(watch error)"] = true
			timer.Reset(w.debounce)
		case <-timer.C:
			batch := slices.Sorted(maps.Keys(pending))
			clear(pending)
			onChange(batch)
		}
	}
}

// relevant keeps the events that can change the policy or the
// configuration, and starts watching directories created inside a policy
// directory.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	name := filepath.Clean(ev.Name)
	if w.files[name] {
		return true
	}
	dir := filepath.Dir(name)
	for f := range w.files {
		// A Kubernetes volume swaps its ..data symlink: the file behind
		// every symlink in the directory changes at once.
		if filepath.Dir(f) == dir && strings.HasPrefix(filepath.Base(name), "..") {
			return true
		}
	}
	root := w.rootOf(name)
	if root == "" {
		return false
	}
	base := filepath.Base(name)
	if strings.HasPrefix(base, "..") {
		return true
	}
	if strings.HasPrefix(base, ".") {
		return false
	}
	if ev.Has(fsnotify.Create) {
		if info, err := os.Stat(name); err == nil && info.IsDir() {
			if err := w.addTree(name); err != nil {
				w.log.Warn("cannot watch a new policy subdirectory", "error", err)
			}
			return true
		}
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		if w.watched[name] {
			delete(w.watched, name) // inotify dropped it with the directory
			return true
		}
	}
	return PolicyFile(base)
}

// rootOf is the watched policy directory that holds path, or "".
func (w *Watcher) rootOf(path string) string {
	for _, r := range w.roots {
		if path == r || strings.HasPrefix(path, r+string(filepath.Separator)) {
			return r
		}
	}
	return ""
}

// Close stops watching.
func (w *Watcher) Close() error { return w.fsw.Close() }
