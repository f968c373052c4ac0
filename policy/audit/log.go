// Package audit writes the audit log: one JSON line per decision
// (docs/audit.md), to a rotated file and/or a stream, and reads it back for
// review. It fails closed: while a record cannot be written, Ready reports
// an error so that the proxy refuses requests instead of forwarding them
// unaudited.
package audit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockproxy/sockproxy/proxy"
)

// Options configure a Log.
type Options struct {
	// Path is the file records are appended to ("" for none).
	Path string
	// Stdout, when non-nil, also receives every record (e.g. os.Stdout for a
	// container's log collector).
	Stdout io.Writer
	// MaxSizeMB rotates the file before it would grow past this many
	// megabytes; 0 never rotates (use an external logrotate and Reopen).
	MaxSizeMB int
	// MaxBackups is how many rotated files are kept; 0 keeps them all.
	MaxBackups int
	// Compress gzips rotated files in the background.
	Compress bool
	// Sync fsyncs the file after every record: a record is then on disk
	// before the request it describes is answered (or forwarded, for the
	// refusals that follow a failure). Costs a disk flush per request.
	Sync bool
	// FailOpen keeps Ready healthy when records cannot be written: requests
	// are then forwarded unaudited (logged loudly). Default: refuse them.
	FailOpen bool
	// RetryInterval is how often a failed destination is retried (reopened
	// and the held records written); 0 means one second.
	RetryInterval time.Duration
	// MaxPending is how many records are held in memory while a destination
	// fails, written when it recovers; older ones are dropped beyond it.
	// 0 means 10000.
	MaxPending int
	// Logger receives the log's own errors; nil means slog.Default().
	Logger *slog.Logger
}

// Stats are counters of a Log, for metrics.
type Stats struct {
	Records     uint64 // records audited (calls to Audit)
	WriteErrors uint64 // failed writes (each destination counts)
	Dropped     uint64 // records lost because too many were pending
	Pending     int    // records waiting for a failed destination
	Rotations   uint64
	Failing     bool // a destination is failing: Ready errs unless FailOpen
}

// Log is an audit log. It implements proxy.Auditor and is safe for
// concurrent use.
type Log struct {
	opts   Options
	logger *slog.Logger

	mu    sync.Mutex // serializes writes, rotation and reopen
	sinks []*sink

	// failure is the error Ready returns (nil when healthy), readable
	// without the lock because Ready is on every request's path.
	failure atomic.Pointer[error]

	records, writeErrors, dropped, rotations atomic.Uint64

	bufs sync.Pool

	stop     chan struct{}
	done     chan struct{}
	mill     chan struct{}
	millDone chan struct{}
	closed   bool
}

var _ proxy.Auditor = (*Log)(nil)

// New opens the audit log. It fails when no destination is configured or
// the file cannot be opened, so that the proxy does not start unaudited.
func New(opts Options) (*Log, error) {
	if opts.Path == "" && opts.Stdout == nil {
		return nil, errors.New("audit: no destination: set a file path and/or stdout")
	}
	if opts.MaxSizeMB < 0 || opts.MaxBackups < 0 || opts.MaxPending < 0 {
		return nil, errors.New("audit: max_size_mb, max_backups and max_pending must not be negative")
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = time.Second
	}
	if opts.MaxPending == 0 {
		opts.MaxPending = 10000
	}
	l := &Log{
		opts:     opts,
		logger:   opts.Logger,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		mill:     make(chan struct{}, 1),
		millDone: make(chan struct{}),
	}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	l.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	if opts.Path != "" {
		fs := &fileSink{path: opts.Path, maxSize: int64(opts.MaxSizeMB) << 20, sync: opts.Sync}
		if err := fs.open(); err != nil {
			return nil, fmt.Errorf("audit: %w (check the directory exists and is writable)", err)
		}
		l.sinks = append(l.sinks, &sink{name: opts.Path, file: fs})
	}
	if opts.Stdout != nil {
		l.sinks = append(l.sinks, &sink{name: "stdout", w: opts.Stdout})
	}
	go l.retryLoop()
	go l.millLoop()
	return l, nil
}

// sink is one destination and the records it still owes.
type sink struct {
	name    string
	w       io.Writer // a plain writer (nil for the file)
	file    *fileSink // the file (nil for a plain writer)
	pending [][]byte
	// torn is set after a write to w failed halfway: the next write starts
	// with a newline so that the fragment stays a line of its own.
	torn bool
	err  error
}

// Ready reports whether records can be written. The proxy refuses requests
// while it returns an error (unless FailOpen).
func (l *Log) Ready() error {
	if p := l.failure.Load(); p != nil && !l.opts.FailOpen {
		return *p
	}
	return nil
}

// Audit writes one record for ev. It returns an error when a destination
// failed; the record is then held and written when the destination
// recovers (at most MaxPending records are held).
func (l *Log) Audit(ev *proxy.AuditEvent) error {
	l.records.Add(1)
	now := time.Now()
	var exe string
	if ev.Request != nil {
		exe = callerExe(&ev.Request.Caller, now)
	}
	bp := l.bufs.Get().(*[]byte)
	line := appendRecord((*bp)[:0], ev, exe, now)

	l.mu.Lock()
	var errs []error
	for _, s := range l.sinks {
		if err := l.write(s, line); err != nil {
			errs = append(errs, err)
		}
	}
	l.updateFailure()
	l.mu.Unlock()

	if cap(line) <= 64<<10 { // do not keep huge buffers around
		*bp = line
		l.bufs.Put(bp)
	}
	return errors.Join(errs...)
}

// write writes line to s, after whatever s still owes; l.mu is held.
func (l *Log) write(s *sink, line []byte) error {
	if l.closed {
		return errors.New("audit: log is closed")
	}
	if len(s.pending) > 0 {
		l.hold(s, line)
		if err := l.flush(s); err != nil {
			return err
		}
		return nil
	}
	if err := l.writeLine(s, line); err != nil {
		l.hold(s, line)
		return err
	}
	return nil
}

// writeLine makes one write call for the line, so that concurrent readers
// and a crash see whole lines (only the last one may be torn).
func (l *Log) writeLine(s *sink, line []byte) error {
	var err error
	if s.file != nil {
		var rotated bool
		rotated, err = s.file.write(line)
		if rotated {
			l.rotations.Add(1)
			l.kickMill()
		}
	} else {
		if s.torn {
			line = append(append(make([]byte, 0, len(line)+1), '\n'), line...)
		}
		var n int
		n, err = s.w.Write(line)
		if err == nil && n < len(line) {
			err = io.ErrShortWrite
		}
		if n > 0 { // part of the line went out; nothing written keeps the state
			s.torn = n < len(line)
		}
	}
	if err != nil {
		l.writeErrors.Add(1)
		if s.err == nil {
			l.logger.Error("audit log write failed; holding records until it recovers",
				"destination", s.name, "err", err, "fail_open", l.opts.FailOpen)
		}
		s.err = fmt.Errorf("audit log %s cannot be written: %w", s.name, err)
		return s.err
	}
	return nil
}

// hold keeps a copy of line for a later retry, dropping the oldest held
// record when too many are held.
func (l *Log) hold(s *sink, line []byte) {
	if len(s.pending) >= l.opts.MaxPending {
		s.pending[0] = nil
		s.pending = s.pending[1:]
		if l.dropped.Add(1) == 1 || l.dropped.Load()%1000 == 0 {
			l.logger.Error("audit records dropped: the destination has failed for too long",
				"destination", s.name, "dropped_total", l.dropped.Load())
		}
	}
	s.pending = append(s.pending, append([]byte(nil), line...))
}

// flush writes s's held records in order, reopening a file first when it
// had failed; l.mu is held.
func (l *Log) flush(s *sink) error {
	if s.file != nil && s.err != nil {
		if err := s.file.reopen(); err != nil {
			l.writeErrors.Add(1)
			s.err = fmt.Errorf("audit log %s cannot be reopened: %w", s.name, err)
			return s.err
		}
	}
	held := len(s.pending)
	for len(s.pending) > 0 {
		if err := l.writeLine(s, s.pending[0]); err != nil {
			return err
		}
		s.pending[0] = nil
		s.pending = s.pending[1:]
	}
	if s.err != nil {
		l.logger.Warn("audit log writable again", "destination", s.name, "records_written_late", held)
	}
	s.pending = nil
	s.err = nil
	return nil
}

// updateFailure publishes the state for Ready; l.mu is held.
func (l *Log) updateFailure() {
	var failing error
	for _, s := range l.sinks {
		if s.err != nil || len(s.pending) > 0 {
			failing = s.err
			if failing == nil {
				failing = fmt.Errorf("audit log %s has unwritten records", s.name)
			}
			break
		}
	}
	prev := l.failure.Load()
	if failing == nil {
		if prev != nil {
			l.failure.Store(nil)
		}
		return
	}
	err := fmt.Errorf("%w; refusing requests until the audit log is writable (check disk space and permissions)", failing)
	if l.opts.FailOpen {
		err = failing
		if prev == nil {
			l.logger.Error("AUDIT LOG FAILING AND fail_open IS SET: requests are forwarded without audit records", "err", failing)
		}
	}
	l.failure.Store(&err)
}

// retryLoop retries failed destinations, so that the log recovers (and
// Ready turns healthy) even when every request is being refused.
func (l *Log) retryLoop() {
	defer close(l.done)
	t := time.NewTicker(l.opts.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if l.failure.Load() == nil {
				continue
			}
			l.mu.Lock()
			if !l.closed {
				for _, s := range l.sinks {
					if s.err != nil || len(s.pending) > 0 {
						_ = l.flush(s)
					}
				}
				l.updateFailure()
			}
			l.mu.Unlock()
		}
	}
}

// Reopen closes and reopens the file at Path: after an external logrotate
// moved it away (send SIGHUP), records go to the new file.
func (l *Log) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("audit: log is closed")
	}
	var errs []error
	for _, s := range l.sinks {
		if s.file == nil {
			continue
		}
		if err := s.file.reopen(); err != nil {
			l.writeErrors.Add(1)
			s.err = fmt.Errorf("audit log %s cannot be reopened: %w", s.name, err)
			errs = append(errs, s.err)
			continue
		}
		if s.err != nil || len(s.pending) > 0 {
			if err := l.flush(s); err != nil {
				errs = append(errs, err)
			}
		}
	}
	l.updateFailure()
	return errors.Join(errs...)
}

// Close writes what it can of the held records, closes the file and waits
// for background compression. It reports records that were never written.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	var errs []error
	for _, s := range l.sinks {
		if len(s.pending) > 0 {
			_ = l.flush(s)
		}
		if n := len(s.pending); n > 0 {
			errs = append(errs, fmt.Errorf("audit: %d records never reached %s: %w", n, s.name, s.err))
		}
		if s.file != nil {
			if err := s.file.close(); err != nil {
				errs = append(errs, fmt.Errorf("audit: closing %s: %w", s.name, err))
			}
		}
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	close(l.mill)
	<-l.millDone
	return errors.Join(errs...)
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	st := Stats{
		Records:     l.records.Load(),
		WriteErrors: l.writeErrors.Load(),
		Dropped:     l.dropped.Load(),
		Rotations:   l.rotations.Load(),
		Failing:     l.failure.Load() != nil,
	}
	l.mu.Lock()
	for _, s := range l.sinks {
		st.Pending += len(s.pending)
	}
	l.mu.Unlock()
	return st
}
