package input

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// HostFS is how the proxy sees the host's filesystem, to evaluate the
// symlinks on a bind's source path the way the kernel will at mount time.
type HostFS struct {
	// Root is where the host's "/" is visible to the proxy ("/" when the
	// proxy runs on the host; e.g. "/host" when the host's root is mounted
	// into the proxy's container). Empty means "/".
	Root string
	// Unavailable says the proxy cannot see the host's filesystem at all:
	// every host path is reported "unresolvable".
	Unavailable bool
}

// Path statuses of a host bind.
const (
	PathResolved     = "resolved"
	PathMissing      = "missing"
	PathUnresolvable = "unresolvable"
)

const maxSymlinks = 255

// resolve evaluates the symlinks of the absolute host path p inside the
// host's root, with absolute link targets taken relative to that root (as
// the kernel would see them on the host). It returns the real host path
// and PathResolved, or the path resolved as far as it exists and
// PathMissing, or PathUnresolvable.
func (h HostFS) resolve(p string) (string, string) {
	if h.Unavailable || !path.IsAbs(p) {
		return "", PathUnresolvable
	}
	root := h.Root
	if root == "" {
		root = "/"
	}
	resolved := "/" // host path resolved so far (always without symlinks)
	rest := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, c)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return path.Join(append([]string{next}, rest...)...), PathMissing
			}
			return "", PathUnresolvable
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		links++
		if links > maxSymlinks {
			return "", PathUnresolvable
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", PathUnresolvable
		}
		if path.IsAbs(target) {
			resolved = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return resolved, PathResolved
}
