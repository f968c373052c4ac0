package proxy

import (
	"errors"
	"net"
	"time"
)

// watchClient notices a client that hangs up while its request waits on
// dockerd: it reads ahead on the idle client connection; an end or error
// cuts the upstream call (a pipelined request just stays buffered). The
// returned stop ends the watch.
func watchClient(cc *clientConn, up *upstreamConn) (stop func()) {
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
