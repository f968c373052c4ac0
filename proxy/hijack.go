package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// relayBothWays joins a client connection and a daemon connection once
// dockerd has hijacked its side (attach, exec start: after "101 UPGRADED"
// or the raw "200 OK"). Bytes are copied both ways, those already buffered
// first, and never read as HTTP again. When one side ends its output, the
// other side's writing half is closed, so stdin EOF reaches the container
// while its output still flows back. A failed write cuts both.
func relayBothWays(client net.Conn, clientBuf *bufio.Reader, up *upstreamConn) {
	var once sync.Once
	cut := func() { once.Do(func() { client.Close(); up.conn.Close() }) }
	done := make(chan struct{})
	go func() { // client → dockerd (stdin)
		defer close(done)
		if err := join(up.conn, client, clientBuf); err != nil {
			cut()
			return
		}
		closeWrite(up.conn)
	}()
	if err := join(client, up.conn, up.br); err != nil { // dockerd → client (output)
		cut()
	} else {
		closeWrite(client)
	}
	<-done
}

// join copies src (read through srcBuf) to dst until src ends (nil) or
// either side fails: by splice when it can, else by pump.
func join(dst, src net.Conn, srcBuf *bufio.Reader) error {
	if handled, err := splicePump(dst, src, srcBuf); handled {
		return err
	}
	return pump(dst, srcBuf)
}

// pump copies src to dst until src ends (nil) or either side fails.
func pump(dst io.Writer, src *bufio.Reader) error {
	in := burstReader{br: src}
	defer in.release()
	for {
		data, err := in.next(nil)
		if len(data) > 0 {
			if _, werr := dst.Write(data); werr != nil {
				return werr
			}
			in.consume(len(data))
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// closeWrite half-closes c so the other end sees EOF while replies can
// still flow back.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// bigBufferSize is the read size while data streams (archives, exports,
// busy exec sessions): a few large system calls instead of many small ones.
const bigBufferSize = 256 << 10

var bigBuffers = sync.Pool{New: func() any { b := make([]byte, bigBufferSize); return &b }}

// Stream coalescing: after coalesceAfter reads of less than smallRead
// bytes in one body, the relay (having flushed all it read) waits
// coalesceWait before reading again. A line of a busy stream so reaches the
// client at most about a millisecond later; the first line after a quiet
// spell goes at once.
const (
	coalesceAfter = 8
	smallRead     = 16 << 10
	coalesceWait  = 500 * time.Microsecond
)

// burstReader hands out what a connection has received. While the peer is
// quiet it waits in the connection's small bufio buffer; when a read fills
// that buffer the data is streaming, and it reads straight into a large
// pooled buffer until reads come back small again. A quiet stream (events,
// follow-logs, an idle attach) so holds 4 KiB, a busy one moves up to
// 256 KiB per system call.
type burstReader struct {
	br *bufio.Reader
	// coalesce: once a body has come in many small reads (a stream of log
	// frames), wait a moment before each further read so that frames that
	// arrive meanwhile come in one read instead of one read each.
	coalesce bool
	reads    int  // reads from the connection so far
	small    bool // the last read returned less than smallRead
	big      *[]byte
	fromBuf  int   // bytes handed out from br's buffer, to discard on consume
	shrink   bool  // the last big read was small: give the big buffer back
	err      error // a read error held back until the data before it is used
}

// next returns received bytes, waiting for some when none are buffered;
// beforeWait (if not nil) runs just before it would block, which is when a
// writer should flush: nothing more is pending. The caller reports what it
// used with consume; bytes of a big read it does not use are dropped (they
// can only follow the end of a body, and the connection is then not reused).
func (b *burstReader) next(beforeWait func() error) ([]byte, error) {
	b.fromBuf = 0
	if n := b.br.Buffered(); n > 0 {
		data, _ := b.br.Peek(n)
		b.fromBuf = n
		return data, nil
	}
	if b.err != nil {
		return nil, b.err
	}
	if beforeWait != nil {
		if err := beforeWait(); err != nil {
			return nil, err
		}
	}
	if b.shrink {
		b.release()
	}
	if b.coalesce && b.small && b.reads >= coalesceAfter {
		pauseInThread(coalesceWait)
	}
	b.reads++
	if b.big != nil {
		// br is empty and the buffer is larger than br's: bufio reads
		// directly into it.
		n, err := b.br.Read(*b.big)
		b.shrink = n < b.br.Size()
		b.small = n < smallRead
		b.err = err
		return (*b.big)[:n], nil
	}
	if _, err := b.br.Peek(1); err != nil {
		return nil, err
	}
	n := b.br.Buffered()
	b.small = n < smallRead
	if n == b.br.Size() {
		b.big = bigBuffers.Get().(*[]byte)
		b.shrink = false
	}
	data, _ := b.br.Peek(n)
	b.fromBuf = n
	return data, nil
}

// idle tells whether everything received was handed out and nothing is
// held back: the next bytes are still in the socket.
func (b *burstReader) idle() bool { return b.br.Buffered() == 0 && b.err == nil }

// consume marks n bytes of the last next as used.
func (b *burstReader) consume(n int) {
	if b.fromBuf > 0 {
		_, _ = b.br.Discard(min(n, b.fromBuf))
	}
}

// release gives the big buffer back to the pool.
func (b *burstReader) release() {
	if b.big != nil {
		bigBuffers.Put(b.big)
		b.big = nil
	}
	b.shrink = false
}
