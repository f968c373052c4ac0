package proxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"path/filepath"
	"testing"
)

// unixPair is a connected pair of Unix stream sockets.
func unixPair(t *testing.T) (a, b *net.UnixConn) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan *net.UnixConn)
	go func() {
		c, _ := ln.AcceptUnix()
		done <- c
	}()
	a, err = net.DialUnix("unix", nil, ln.Addr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	b = <-done
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// join moves every byte, those already buffered first, and returns at the
// source's end, so that the relay can half-close the other side.
func TestJoinSplicesUnixSocketsWhole(t *testing.T) {
	srcW, srcR := unixPair(t)
	dstW, dstR := unixPair(t)
	payload := make([]byte, 8<<20+123)
	_, _ = rand.Read(payload)
	go func() {
		_, _ = srcW.Write(payload)
		_ = srcW.CloseWrite()
	}()
	br := bufio.NewReaderSize(srcR, 4096)
	if _, err := br.Peek(100); err != nil { // some bytes wait in the buffer
		t.Fatal(err)
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(dstR)
		got <- b
	}()
	handled, err := splicePump(dstW, srcR, br)
	if !handled || err != nil {
		t.Fatalf("splicePump: handled %v, err %v", handled, err)
	}
	_ = dstW.CloseWrite()
	if b := <-got; !bytes.Equal(b, payload) {
		t.Fatalf("received %d bytes, not the %d sent (or not the same)", len(b), len(payload))
	}
}
