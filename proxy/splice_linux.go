//go:build linux

package proxy

import (
	"bufio"
	"io"
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
	p, size, err := newSplicePipe()
	if err != nil {
		return false, nil
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	s := hijackSplicer{rd: rd, wr: wr, pipe: p, cap: size}
	s.readFn, s.writeFn = s.onReadable, s.onWritable

	if n := srcBuf.Buffered(); n > 0 {
		data, _ := srcBuf.Peek(n)
		if _, err := dst.Write(data); err != nil {
			return true, err
		}
		_, _ = srcBuf.Discard(n)
	}
	return true, s.run()
}

// hijackSplicer is one direction of a hijacked connection joined by
// splice: src → pipe → dst. Its raw-connection callbacks are bound once,
// so that no closure is made per system call.
type hijackSplicer struct {
	rd, wr          syscall.RawConn
	pipe            [2]int
	cap             int // bytes the pipe can hold
	inPipe          int // bytes spliced in and not yet out
	paused          bool
	n               int
	errno           syscall.Errno
	readFn, writeFn func(uintptr) bool
}

// run moves src to dst until src ends (nil) or either side fails.
func (s *hijackSplicer) run() error {
	for {
		s.paused = false
		if err := s.rd.Read(s.readFn); err != nil {
			return err
		}
		if s.errno != 0 {
			return s.errno
		}
		if s.n == 0 { // src ended
			return nil
		}
		s.inPipe = s.n
		for s.inPipe > 0 {
			if err := s.wr.Write(s.writeFn); err != nil {
				return err
			}
			if s.errno != 0 {
				return s.errno
			}
			if s.n == 0 {
				return io.ErrUnexpectedEOF // cannot happen: the pipe holds inPipe bytes
			}
			s.inPipe -= s.n
		}
	}
}

// onReadable splices what src holds into the (empty) pipe. When src is
// empty the peer is behind: it gets a moment in the thread (splicePauseTime)
// before the goroutine parks, so that the next splice moves more per
// wake-up; parking each time the relay caught up with a busy exec cost
// more than the splices (as for bodySplicer).
func (s *hijackSplicer) onReadable(fd uintptr) bool {
	for {
		r, _, errno := syscall.Syscall6(syscall.SYS_SPLICE, fd, 0, uintptr(s.pipe[1]), 0, uintptr(s.cap), spliceFlags)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno != syscall.EAGAIN:
			s.n, s.errno = int(r), errno
			return true
		case !s.paused:
			s.paused = true
			pauseInThread(splicePauseTime)
			continue
		}
		return false
	}
}

// onWritable splices what the pipe holds to dst.
func (s *hijackSplicer) onWritable(fd uintptr) bool {
	for {
		r, _, errno := syscall.Syscall6(syscall.SYS_SPLICE, uintptr(s.pipe[0]), 0, fd, 0, uintptr(s.inPipe), spliceFlags)
		if errno == syscall.EINTR {
			continue
		}
		s.n, s.errno = int(r), errno
		return errno != syscall.EAGAIN
	}
}

const spliceFlags = 0x1 | 0x2 // SPLICE_F_MOVE | SPLICE_F_NONBLOCK

// newSplicePipe makes a non-blocking pipe for splicing, enlarged to
// spliceChunk where the kernel allows, and says how much it holds.
func newSplicePipe() (p [2]int, size int, err error) {
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return p, 0, err
	}
	size = 64 << 10 // the default pipe size
	if n, err := fcntl(p[1], syscall.F_SETPIPE_SZ, spliceChunk); err == nil {
		size = n
	}
	return p, size, nil
}

func fcntl(fd, cmd, arg int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
