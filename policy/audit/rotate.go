package audit

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Rotation is written here rather than taken from lumberjack (which is in
// the module graph): the log needs fsync per record, a reopen that reports
// its error (to drive Ready), and synchronous, checked renames; lumberjack
// offers none of these and prunes with a goroutine that cannot be stopped.

// backupLayout names rotated files <path>.<UTC time>: they sort by name in
// the order they were written, and never collide with the live file.
const backupLayout = "20060102T150405.000000000Z"

// fileSink appends to Path and rotates it by size.
type fileSink struct {
	path    string
	maxSize int64 // 0: never rotate
	sync    bool
	f       *os.File
	size    int64
	// torn is set when the file does not end with a newline (a write that
	// failed halfway, or a crash): the next record starts with one, so the
	// fragment stays a line of its own instead of corrupting the record.
	torn bool
}

func (fs *fileSink) open() error {
	// The log's directory is made on first use (owner and group only), so a
	// fresh host needs no setup step before the proxy can audit.
	if err := os.MkdirAll(filepath.Dir(fs.path), 0o750); err != nil {
		return err
	}
	// Read-write only to look at the last byte; writes always append.
	f, err := os.OpenFile(fs.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	fs.f, fs.size, fs.torn = f, st.Size(), false
	if st.Mode().IsRegular() && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			fs.torn = true
		}
	}
	return nil
}

func (fs *fileSink) close() error {
	if fs.f == nil {
		return nil
	}
	err := fs.f.Close()
	fs.f = nil
	return err
}

func (fs *fileSink) reopen() error {
	_ = fs.close() // the old handle may be on a failed or vanished file
	return fs.open()
}

// write appends line, rotating first when it would pass the size limit.
func (fs *fileSink) write(line []byte) (rotated bool, err error) {
	if fs.f == nil {
		if err := fs.open(); err != nil {
			return false, err
		}
	}
	if fs.maxSize > 0 && fs.size > 0 && fs.size+int64(len(line)) > fs.maxSize {
		if err := fs.rotate(); err != nil {
			return false, fmt.Errorf("rotating: %w", err)
		}
		rotated = true
	}
	if fs.torn {
		line = append(append(make([]byte, 0, len(line)+1), '\n'), line...)
	}
	n, err := fs.f.Write(line)
	fs.size += int64(n)
	if err != nil {
		if n > 0 { // part of the line is in the file; nothing written keeps the state
			fs.torn = n < len(line)
		}
		return rotated, err
	}
	fs.torn = false
	if fs.sync {
		if err := fs.f.Sync(); err != nil {
			return rotated, fmt.Errorf("fsync: %w", err)
		}
	}
	return rotated, nil
}

func (fs *fileSink) rotate() error {
	if err := fs.f.Close(); err != nil {
		fs.f = nil
		return err
	}
	fs.f = nil
	backup := fs.path + "." + time.Now().UTC().Format(backupLayout)
	if err := os.Rename(fs.path, backup); err != nil {
		return err
	}
	return fs.open()
}

// kickMill asks the background goroutine to compress and prune backups.
func (l *Log) kickMill() {
	if !l.opts.Compress && l.opts.MaxBackups == 0 {
		return
	}
	select {
	case l.mill <- struct{}{}:
	default: // a run is already due; it will see this backup too
	}
}

func (l *Log) millLoop() {
	defer close(l.millDone)
	for range l.mill {
		if err := l.millOnce(); err != nil {
			l.logger.Error("audit: compressing or pruning rotated files failed", "err", err)
		}
	}
}

// millOnce compresses uncompressed backups, then removes the oldest beyond
// MaxBackups. Compression writes a temporary file and renames it, so a
// crash leaves either the plain or the compressed backup, never a half one.
func (l *Log) millOnce() error {
	backups, err := listBackups(l.opts.Path)
	if err != nil {
		return err
	}
	if l.opts.Compress {
		for i, b := range backups {
			if strings.HasSuffix(b, ".gz") {
				continue
			}
			if err := gzipFile(b); err != nil {
				return err
			}
			backups[i] = b + ".gz"
		}
	}
	if n := l.opts.MaxBackups; n > 0 && len(backups) > n {
		for _, b := range backups[:len(backups)-n] {
			if err := os.Remove(b); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}

// listBackups returns path's rotated files, oldest first.
func listBackups(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		stamp, ok := strings.CutPrefix(name, base+".")
		if !ok || e.IsDir() {
			continue
		}
		stamp = strings.TrimSuffix(stamp, ".gz")
		if _, err := time.Parse(backupLayout, stamp); err != nil {
			continue
		}
		out = append(out, filepath.Join(dir, name))
	}
	sort.Strings(out)
	return out, nil
}

func gzipFile(path string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := path + ".gz.tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Keep the rotation time: readers order files by modification time.
		if st, serr := in.Stat(); serr == nil {
			err = os.Chtimes(tmp, st.ModTime(), st.ModTime())
		}
	}
	if err == nil {
		err = os.Rename(tmp, path+".gz")
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compressing %s: %w", path, err)
	}
	return os.Remove(path)
}
