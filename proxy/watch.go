package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// watchClient notices a client that hangs up while its request waits on
// dockerd (wait, logs, events...): an end or error on the idle client
// connection cuts the upstream call; a pipelined request just stays unread
// and ends the watch. One poller watches all such connections (see
// hangupPoller); where it cannot, a goroutine reads ahead on the
// connection.
//
// While it waits, the exchange also holds as little memory as it can: the
// client's read buffer and the upstream write buffer go back to their
// pools (nothing is read from the client or written to dockerd until the
// answer ends), and the client write buffer and upstream read buffer are
// swapped for small ones, which hold a response head and a stream's event
// or log line (larger data goes around them). A quiet stream so keeps
// ~6 KiB of buffers instead of 40. The usual ones come back only when the
// connections carry another request (see normalBuffers), not when a
// stream just ends with its client.
//
// The returned stop ends the watch; it runs on the connection's goroutine
// before up serves anyone else.
func watchClient(cc *clientConn, up *upstreamConn) (stop func()) {
	if cc.br.Buffered() > 0 { // the next request is here already: nothing to watch
		return func() {}
	}
	parkBuffers(cc, up)
	if w := watchHangup(cc, up); w != nil {
		putReader(&clientReaders, cc.br)
		cc.br = nil
		return func() {
			w.stop()
			cc.br = getReader(&clientReaders, &cc.limit)
			cc.ownReader = true
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := cc.br.Peek(1)
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			cc.gone.Store(true)
			up.conn.Close()
		}
	}()
	return func() {
		_ = cc.conn.SetReadDeadline(time.Unix(1, 0)) // wake the read
		<-done
		_ = cc.conn.SetReadDeadline(time.Time{})
	}
}

// Buffers of waiting exchanges. A pooled reader or writer is empty, and
// holds no reference to its connection.
const (
	// streamWriteBufferSize sizes the client write buffer while a response
	// streams: a head, or an event or log line with its chunk framing.
	streamWriteBufferSize = 2 << 10
	// streamReadBufferSize sizes the upstream read buffer while a response
	// streams; a read that fills it switches the relay to the large pooled
	// buffers (burstReader).
	streamReadBufferSize = 4 << 10
)

var (
	clientReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, clientBufferSize) }}
	clientWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, clientWriteBufferSize) }}
	streamWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, streamWriteBufferSize) }}
	streamReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, streamReadBufferSize) }}
)

// parkBuffers swaps the client write and upstream read buffers for small
// ones and gives the upstream write buffer back, each when it is empty.
func parkBuffers(cc *clientConn, up *upstreamConn) {
	if cc.bw.Buffered() == 0 && cc.bw.Size() == clientWriteBufferSize {
		putWriter(&clientWriters, cc.bw)
		cc.bw = getWriter(&streamWriters, cc.conn)
	}
	if up.br.Buffered() == 0 && up.br.Size() == upstreamBufferSize {
		putReader(&upstreamReaders, up.br)
		up.br = getReader(&streamReaders, up.conn)
	}
	if up.bw != nil && up.bw.Buffered() == 0 {
		putWriter(&upstreamWriters, up.bw)
		up.bw = nil
	}
}

// normalClientBuffers gives a connection whose last request streamed its
// usual write buffer back, before the next request.
func normalClientBuffers(cc *clientConn) {
	if cc.bw.Size() == streamWriteBufferSize && cc.bw.Buffered() == 0 {
		putWriter(&streamWriters, cc.bw)
		cc.bw = getWriter(&clientWriters, cc.conn)
	}
}

// normalUpstreamBuffers does the same for a daemon connection that goes
// back to the pool.
func normalUpstreamBuffers(up *upstreamConn) {
	if up.br.Size() == streamReadBufferSize && up.br.Buffered() == 0 {
		putReader(&streamReaders, up.br)
		up.br = getReader(&upstreamReaders, up.conn)
	}
	if up.bw == nil {
		up.bw = getWriter(&upstreamWriters, up.conn)
	}
}

func getReader(pool *sync.Pool, r io.Reader) *bufio.Reader {
	br := pool.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(pool *sync.Pool, br *bufio.Reader) {
	br.Reset(nil)
	pool.Put(br)
}

func getWriter(pool *sync.Pool, w io.Writer) *bufio.Writer {
	bw := pool.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putWriter(pool *sync.Pool, bw *bufio.Writer) {
	bw.Reset(nil)
	pool.Put(bw)
}
