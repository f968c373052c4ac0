//go:build linux

package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bodySplicer moves the large chunks of a response body from dockerd's
// socket to the client's with splice(2) through a pipe: the kernel hands
// the pages on instead of copying them out to the proxy and back in, which
// is most of what relaying an archive costs. While chunks stay large they
// go verbatim, framing included: the framing is only peeked at (MSG_PEEK),
// to follow the chunks; at the first small one the relay hands back to
// relayBody's copy, at a chunk boundary, so that the end of the body (and
// whether the daemon connection can carry the next request) is found there.
type bodySplicer struct {
	rd, wr syscall.RawConn
	pipe   [2]int // 0 until the first large chunk
	cap    int    // bytes the pipe can hold
	inPipe int    // bytes spliced in and not yet out
	want   int    // what spliceInOp moves at most
	chunks *chunkScanner
	peek   [64]byte
	peeked int  // bytes in peek
	noPipe bool // no pipe could be made: do not try again
	// The raw connections' callbacks and what they report.
	readFn, writeFn func(uintptr) bool
	op, opN         int
	opErr           error
	outN            int
	outErr          syscall.Errno
	paused          bool
	head            [20]byte
}

// spliceMin is the least chunk data worth a splice: below it the system
// calls (in and out of the pipe) cost more than the copy they save.
const spliceMin = 16 << 10

// newBodySplicer returns a splicer between client and daemon connection,
// usable when both are Unix sockets, the only ends it relays (TLS and TCP
// ends are copied).
func newBodySplicer(client, upstream net.Conn) *bodySplicer {
	cu, ok1 := client.(*net.UnixConn)
	uu, ok2 := upstream.(*net.UnixConn)
	if !ok1 || !ok2 {
		return &bodySplicer{noPipe: true}
	}
	wr, err1 := cu.SyscallConn()
	rd, err2 := uu.SyscallConn()
	if err1 != nil || err2 != nil {
		return &bodySplicer{noPipe: true}
	}
	s := &bodySplicer{rd: rd, wr: wr}
	s.readFn, s.writeFn = s.onReadable, s.onWritable
	return s
}

// usable tells whether relay can be tried: the ends allow it and a pipe
// could be made.
func (s *bodySplicer) usable() bool { return !s.noPipe }

func (s *bodySplicer) open() error {
	if s.pipe[0] != 0 {
		return nil
	}
	p, size, err := newSplicePipe()
	if err != nil {
		return err
	}
	s.pipe, s.cap = p, size
	return nil
}

func (s *bodySplicer) close() {
	if s != nil && s.pipe[0] != 0 {
		syscall.Close(s.pipe[0])
		syscall.Close(s.pipe[1])
		s.pipe = [2]int{}
	}
}

// large tells whether the body's next bytes in the socket are enough data
// to splice: the rest of a fixed-length body, or of the current chunk.
func large(f framing, chunks *chunkScanner, remaining int64) bool {
	if f == chunkedBody {
		return chunks.state == csData && chunks.size >= spliceMin
	}
	return remaining >= spliceMin
}

// relay takes over a body at a large piece of data, once everything read
// before was written and flushed to the client (bw is empty) and up's read
// buffer is empty. A fixed-length body is relayed to its end (end true).
// A chunked one is relayed while its chunks are large: the rest of the
// current chunk under a chunk head of its own, the next ones verbatim; it
// returns at a chunk boundary (the scanner then expects the CRLF ending a
// chunk's data, which it already wrote to bw).
func (s *bodySplicer) relay(bw *bufio.Writer, f framing, chunks *chunkScanner, remaining *int64) (end bool, err error) {
	if s.open() != nil {
		s.noPipe = true // out of descriptors: relayBody copies the rest
		return false, nil
	}
	if f != chunkedBody {
		if err := s.move(*remaining); err != nil {
			return false, err
		}
		*remaining = 0
		return true, s.drain()
	}
	s.chunks = chunks
	defer func() { s.chunks = nil }()
	head := strconv.AppendInt(s.head[:0], chunks.size, 16)
	head = append(head, '\r', '\n')
	if _, err := bw.Write(head); err != nil {
		return false, err
	}
	if err := bw.Flush(); err != nil {
		return false, err
	}
	owed := 0 // framing bytes scanned and still in the socket
	for {
		if err := s.move(int64(owed) + chunks.size); err != nil {
			return false, err
		}
		chunks.size, chunks.state = 0, csDataCR
		// What follows the chunk: its CRLF and the next chunk's head.
		if _, err := s.fromUpstream(opPeek); err != nil {
			return false, err
		}
		next := *chunks
		used, ended, serr := next.scan(s.peek[:s.peeked], ignoreData)
		if serr != nil || ended || next.state != csData || next.size < spliceMin-int64(len(s.peek)) {
			// A small chunk, the end, or something odd: relayBody reads it.
			if err := s.drain(); err != nil {
				return false, err
			}
			_, err := bw.WriteString("\r\n")
			return false, err
		}
		// The data seen in the peek is spliced with the framing.
		owed = used - int(chunks.sizeOf(s.peek[:used]))
		*chunks = next
		chunks.size += int64(used - owed)
	}
}

// sizeOf is how many bytes of p, scanned from a chunk boundary into the
// next chunk's data, are data.
func (s *chunkScanner) sizeOf(p []byte) int64 {
	t := *s
	framing, _, _ := t.scan(p, stopAtData) // stops at the first data byte
	return int64(len(p) - framing)
}

var errDataReached = errors.New("chunk data reached")

func stopAtData([]byte) error { return errDataReached }

// move splices n bytes from the daemon socket towards the client; the
// pipe is drained when full or when dockerd has nothing more yet.
func (s *bodySplicer) move(n int64) error {
	for n > 0 {
		if s.inPipe == s.cap {
			if err := s.drain(); err != nil {
				return err
			}
		}
		s.want = int(min(n, int64(s.cap-s.inPipe)))
		moved, err := s.fromUpstream(opSpliceIn)
		if err != nil {
			return err
		}
		if moved == 0 {
			return io.ErrUnexpectedEOF
		}
		s.inPipe += moved
		n -= int64(moved)
	}
	return nil
}

func ignoreData([]byte) error { return nil }

// fromUpstream runs op (opPeek, opSpliceIn) on the daemon socket until it
// does not block. When it would, what the pipe holds goes to the client
// first (nothing more is pending), then op is tried again, and only then
// does it wait. op runs in the one callback, after the runtime reset the
// socket's readiness, so no wake-up is lost between a try and the wait.
func (s *bodySplicer) fromUpstream(op int) (n int, err error) {
	s.op, s.opN, s.opErr, s.paused = op, 0, nil, false
	if err := s.rd.Read(s.readFn); err != nil {
		return 0, err
	}
	return s.opN, s.opErr
}

const (
	opPeek = iota
	opSpliceIn
)

// onReadable is fromUpstream's callback (bound once, as readFn, so that
// no closure is made per call).
func (s *bodySplicer) onReadable(fd uintptr) bool {
	for {
		var errno syscall.Errno
		if s.op == opPeek {
			s.opN, errno = s.peekOp(int(fd))
		} else {
			s.opN, errno = s.spliceInOp(int(fd))
		}
		switch {
		case errno == syscall.EINTR:
			continue
		case errno != syscall.EAGAIN:
			if errno != 0 {
				s.opErr = errno
			}
			return true
		case s.inPipe == 0 && !s.paused:
			// The socket is empty (an empty pipe is never full): dockerd
			// is behind. Give it a moment in the thread before parking,
			// so that the next splice moves more per wake-up.
			s.paused = true
			pauseInThread(splicePauseTime)
			continue
		case s.inPipe == 0:
			return false
		}
		if s.opErr = s.drain(); s.opErr != nil {
			return true
		}
	}
}

// spliceInOp moves up to s.want bytes from the daemon socket into the pipe.
func (s *bodySplicer) spliceInOp(fd int) (int, syscall.Errno) {
	r, _, errno := syscall.Syscall6(syscall.SYS_SPLICE, uintptr(fd), 0, uintptr(s.pipe[1]), 0, uintptr(s.want), spliceFlags)
	return int(r), errno
}

// peekOp reads what the daemon socket holds into s.peek without taking it.
// Until the bytes after a chunk's data hold the next chunk's whole head (or
// fill the peek buffer, or show the end), it reports EAGAIN, so that the
// caller waits for more: dockerd may write a chunk's end and the next head
// apart.
func (s *bodySplicer) peekOp(fd int) (int, syscall.Errno) {
	r, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&s.peek[0])), uintptr(len(s.peek)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	s.peeked = int(r)
	if s.peeked == 0 || s.peeked == len(s.peek) {
		return s.peeked, 0
	}
	next := *s.chunks
	_, ended, err := next.scan(s.peek[:s.peeked], ignoreData)
	if err == nil && !ended && next.state != csData && !peerShutDown(fd) {
		return 0, syscall.EAGAIN
	}
	return s.peeked, 0
}

// peerShutDown tells whether dockerd has ended its side of the socket: the
// partial head peeked is then all there will be, and no further readiness
// edge comes to wake a wait for the rest.
func peerShutDown(fd int) bool {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	for {
		n, err := unix.Poll(fds[:], 0)
		if err == syscall.EINTR {
			continue
		}
		return err != nil || n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
	}
}

// drain moves everything in the pipe to the client, waiting for it to take
// it.
func (s *bodySplicer) drain() error {
	for s.inPipe > 0 {
		if err := s.wr.Write(s.writeFn); err != nil {
			return err
		}
		if s.outErr == syscall.EINTR {
			continue
		}
		if s.outErr != 0 {
			return s.outErr
		}
		if s.outN == 0 {
			return io.ErrUnexpectedEOF // cannot happen: the pipe holds inPipe bytes
		}
		s.inPipe -= s.outN
	}
	return nil
}

// onWritable is drain's callback (bound once, as writeFn).
func (s *bodySplicer) onWritable(fd uintptr) bool {
	r, _, errno := syscall.Syscall6(syscall.SYS_SPLICE, uintptr(s.pipe[0]), 0, fd, 0, uintptr(s.inPipe), spliceFlags)
	s.outN, s.outErr = int(r), errno
	return errno != syscall.EAGAIN
}

// pauseInThread waits d in the thread, not in the scheduler: a time.Sleep
// this short parks the goroutine and wakes another thread to spin and poll
// for the timer, which cost a stream of log frames more CPU than the reads
// it saves (0.8-1.4 s against 0.3 s of proxy CPU per 36 MB of logs). The
// thread keeps its P meanwhile; with two busy streams pausing at once on
// two cores, other requests measured no slower. The log relay pauses
// coalesceWait, the splicers splicePauseTime.
func pauseInThread(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

// splicePauseTime is the moment the splicers give their peer before
// parking: an archive caught up with arrives in dockerd's 4 KiB and 28 KiB
// writes of each 32 KiB chunk, and parking for each cost more than the
// splices (quiet machine, 67 MB: proxy CPU 14-17 -> 9-10 ticks for six
// transfers, futex calls 4905 -> 288 per transfer).
const splicePauseTime = 100 * time.Microsecond
