package proxy

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// DefaultSocketMode is the file mode of the listening socket: owner and
// group may connect, nobody else.
const DefaultSocketMode fs.FileMode = 0o660

// umaskMu serializes the process-wide umask change in ListenUnix.
var umaskMu sync.Mutex

// ListenUnix listens on a Unix socket at path with the given file mode and,
// when group is not "", that group (a name or a numeric gid).
//
// A socket file left by a process that died is replaced; a socket that
// something still accepts on is not, and neither is a file that is not a
// socket. The parent directory is created (0755) when missing. Closing the
// listener removes the socket file.
func ListenUnix(path string, mode fs.FileMode, group string) (*net.UnixListener, error) {
	if mode == 0 {
		mode = DefaultSocketMode
	}
	gid := -1
	if group != "" {
		var err error
		if gid, err = lookupGroup(group); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create the directory of the listening socket: %w", err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}

	// Create the socket with no access for group and others, so that nobody
	// can connect before the mode and group below are in place.
	umaskMu.Lock()
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	umaskMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("give the socket %s to group %s: %w", path, group, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("set mode %04o on the socket %s: %w", mode, path, err)
	}
	return ln, nil
}

// removeStaleSocket removes path when it is a socket nobody accepts on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check the listening socket path: %w", err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket (%s); remove it or choose another listen path", path, fi.Mode().Type())
	}
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("another process is already listening on %s; stop it or choose another listen path", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot tell whether the socket %s is still in use (%v); remove it by hand if it is stale", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the stale socket %s: %w", path, err)
	}
	return nil
}

func lookupGroup(group string) (int, error) {
	if gid, err := strconv.Atoi(group); err == nil {
		return gid, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return -1, fmt.Errorf("socket group %q: %w", group, err)
	}
	return strconv.Atoi(g.Gid)
}
