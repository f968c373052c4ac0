//go:build linux

package proxy

import (
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hangupPoller watches the client connections whose requests wait on
// dockerd for a hang-up, all in one epoll set, instead of a goroutine (and
// its stack) per waiting request. Its one goroutine waits in Go's network
// poller on the epoll descriptor, so it holds no thread while nothing
// happens. Each connection is armed once (EPOLLONESHOT): its first event
// either cuts the upstream call (the client closed or reset the
// connection) or ends the watch (the client sent its next request).
type hangupPoller struct {
	epfd int
	rc   syscall.RawConn // of the epoll descriptor, to wait for its events

	mu      sync.Mutex
	next    uint64
	watches map[uint64]*hangupWatch
}

// hangupWatch is one waiting request's watch.
type hangupWatch struct {
	p  *hangupPoller
	id uint64
	cc *clientConn
	up *upstreamConn
	rc syscall.RawConn // of the client connection

	mu      sync.Mutex // held while an event is acted on
	stopped bool
}

var (
	hangupsOnce sync.Once
	hangups     *hangupPoller // nil: no epoll; goroutines watch
)

// startHangupPoller starts the poller once per process (Serve does, so
// that its descriptor and goroutine exist from the first connection on).
func startHangupPoller() *hangupPoller {
	hangupsOnce.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return
		}
		// A non-blocking descriptor is registered with Go's poller.
		f := os.NewFile(uintptr(fd), "sockproxy-hangups")
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			return
		}
		p := &hangupPoller{epfd: fd, rc: rc, watches: map[uint64]*hangupWatch{}}
		go p.run(f)
		hangups = p
	})
	return hangups
}

// watchHangup arms the poller for cc, or returns nil when it cannot (no
// epoll, or a connection without a descriptor): a goroutine watches then.
func watchHangup(cc *clientConn, up *upstreamConn) *hangupWatch {
	p := startHangupPoller()
	sc, ok := cc.conn.(syscall.Conn)
	if p == nil || !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &hangupWatch{p: p, cc: cc, up: up, rc: rc}
	p.mu.Lock()
	p.next++
	w.id = p.next
	p.watches[w.id] = w
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(w.id), Pad: int32(w.id >> 32)}
	var ctlErr error
	if err := rc.Control(func(fd uintptr) { ctlErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev) }); err != nil {
		// Closed already (a forced shutdown): as a read would fail, cut.
		w.forget()
		w.stopped = true
		cc.gone.Store(true)
		up.conn.Close()
		return w
	}
	if ctlErr != nil {
		w.forget()
		return nil
	}
	return w
}

// stop ends the watch: once it returns, the watch acts no more.
func (w *hangupWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	// A closed descriptor left the set by itself; Control fails then.
	_ = w.rc.Control(func(fd uintptr) { _ = unix.EpollCtl(w.p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
	w.forget()
}

func (w *hangupWatch) forget() {
	w.p.mu.Lock()
	delete(w.p.watches, w.id)
	w.p.mu.Unlock()
}

// run waits for events and acts on them, for the life of the process.
func (p *hangupPoller) run(f *os.File) {
	defer f.Close()
	events := make([]unix.EpollEvent, 64)
	for {
		var n int
		err := p.rc.Read(func(fd uintptr) bool {
			var werr error
			n, werr = unix.EpollWait(int(fd), events, 0)
			if werr != nil {
				n = 0
			}
			return n > 0 // none: wait until the descriptor is readable
		})
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			p.mu.Lock()
			w := p.watches[id]
			p.mu.Unlock()
			if w != nil {
				w.fire()
			}
		}
	}
}

// fire acts on an event of w's connection: it looks at what is there
// without taking it.
func (w *hangupWatch) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	var n uintptr
	var errno syscall.Errno
	if err := w.rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, errno = syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	}); err != nil {
		errno = syscall.EBADF // closed under the watch: as a read would fail
	}
	switch {
	case errno == 0 && n > 0: // the next request: it waits, unread
		w.stopped = true
	case errno == syscall.EAGAIN || errno == syscall.EINTR: // nothing after all: arm again
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(w.id), Pad: int32(w.id >> 32)}
		_ = w.rc.Control(func(fd uintptr) { _ = unix.EpollCtl(w.p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev) })
	default: // end of stream, reset, or closed: the client is gone
		w.stopped = true
		w.cc.gone.Store(true)
		w.up.conn.Close()
	}
}
