//go:build !linux

package proxy

import (
	"bufio"
	"net"
	"time"
)

// bodySplicer is splice(2) on Linux; elsewhere relayBody copies.
type bodySplicer struct{}

func newBodySplicer(net.Conn, net.Conn) *bodySplicer { return &bodySplicer{} }

func (*bodySplicer) close() {}

func (*bodySplicer) usable() bool { return false }

func (*bodySplicer) relay(*bufio.Writer, framing, *chunkScanner, *int64) (bool, error) {
	return false, nil
}

func large(framing, *chunkScanner, int64) bool { return false }

func pauseInThread(d time.Duration) { time.Sleep(d) }
