//go:build !linux

package proxy

// hangupWatch is the epoll watch of watch_linux.go; elsewhere a goroutine
// watches each waiting request.
type hangupWatch struct{}

func (*hangupWatch) stop() {}

func startHangupPoller() {}

func watchHangup(*clientConn, *upstreamConn) *hangupWatch { return nil }
