//go:build linux

package proxy

import (
	"bufio"
	"errors"
	"net"
	"syscall"
)

// spliceChunk is the most one splice moves: the pipe is sized to it.
const spliceChunk = 256 << 10

// splicePump copies src to dst like pump, but moves the bytes through a
// pipe with splice(2) when both ends are Unix sockets: the kernel hands
// the pages on instead of copying them out to the proxy and back in, which
// on a busy exec or attach session is most of what the hop costs. Bytes
// src already buffered go first. handled is false (and nothing was done)
// when the ends do not allow it; pump is then used.
func splicePump(dst net.Conn, src net.Conn, srcBuf *bufio.Reader) (handled bool, err error) {
	du, ok1 := dst.(*net.UnixConn)
	su, ok2 := src.(*net.UnixConn)
	if !ok1 || !ok2 {
		return false, nil
	}
	rd, err := su.SyscallConn()
	if err != nil {
		return false, nil
	}
	wr, err := du.SyscallConn()
	if err != nil {
		return false, nil
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return false, nil
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	_, _ = fcntl(p[1], syscall.F_SETPIPE_SZ, spliceChunk) // a smaller pipe only means smaller moves

	if n := srcBuf.Buffered(); n > 0 {
		data, _ := srcBuf.Peek(n)
		if _, err := dst.Write(data); err != nil {
			return true, err
		}
		_, _ = srcBuf.Discard(n)
	}
	for {
		var moved int
		var serr error
		if err := rd.Read(func(fd uintptr) bool {
			var n int64
			n, serr = syscall.Splice(int(fd), nil, p[1], nil, spliceChunk, spliceFlags)
			moved = int(n)
			return !errors.Is(serr, syscall.EAGAIN)
		}); err != nil {
			return true, err
		}
		if serr != nil {
			return true, serr
		}
		if moved == 0 { // src ended
			return true, nil
		}
		for moved > 0 {
			var n int64
			if err := wr.Write(func(fd uintptr) bool {
				n, serr = syscall.Splice(p[0], nil, int(fd), nil, moved, spliceFlags)
				return !errors.Is(serr, syscall.EAGAIN)
			}); err != nil {
				return true, err
			}
			if serr != nil {
				return true, serr
			}
			moved -= int(n)
		}
	}
}

const spliceFlags = 0x1 | 0x2 // SPLICE_F_MOVE | SPLICE_F_NONBLOCK

func fcntl(fd, cmd, arg int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
