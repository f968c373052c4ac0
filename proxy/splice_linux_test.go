package proxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// unixPair is a connected pair of Unix stream sockets.
func unixPair(t testing.TB) (a, b *net.UnixConn) {
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

// A source that writes in pieces with quiet spells between them makes the
// splicer catch up, pause and park again and again; every byte still
// arrives, in order, and join returns at the source's end.
func TestJoinSplicesTrickleWhole(t *testing.T) {
	srcW, srcR := unixPair(t)
	dstW, dstR := unixPair(t)
	payload := make([]byte, 1<<20)
	_, _ = rand.Read(payload)
	go func() {
		for off, i := 0, 0; off < len(payload); i++ {
			n := min(len(payload)-off, 1+(i*7919)%(48<<10))
			_, _ = srcW.Write(payload[off : off+n])
			off += n
			if i%16 == 0 {
				time.Sleep(time.Millisecond) // quiet: the splicer parks
			}
		}
		_ = srcW.CloseWrite()
	}()
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(dstR)
		got <- b
	}()
	if err := join(dstW, srcR, bufio.NewReader(srcR)); err != nil {
		t.Fatalf("join: %v", err)
	}
	_ = dstW.CloseWrite()
	if b := <-got; !bytes.Equal(b, payload) {
		t.Fatalf("received %d bytes, not the %d sent (or not the same)", len(b), len(payload))
	}
}

// When the destination hangs up mid-stream, join returns an error instead
// of waiting for a reader that is gone.
func TestJoinSpliceEndsWhenDestinationHangsUp(t *testing.T) {
	srcW, srcR := unixPair(t)
	dstW, dstR := unixPair(t)
	stop := make(chan struct{})
	go func() {
		buf := make([]byte, 64<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := srcW.Write(buf); err != nil {
				return
			}
		}
	}()
	defer close(stop)
	go func() { // reads a while, then hangs up
		_, _ = io.ReadFull(dstR, make([]byte, 1<<20))
		dstR.Close()
	}()
	if err := join(dstW, srcR, bufio.NewReader(srcR)); err == nil {
		t.Fatal("join returned nil after the destination hung up; want the write error")
	}
}

// BenchmarkJoinSplice moves 16 MiB per iteration from a writer of 64 KiB
// pieces (as the exec bench's client) through join to a reader, and
// reports the process CPU per iteration (writer and reader included).
func BenchmarkJoinSplice(b *testing.B) {
	const size = 16 << 20
	srcW, srcR := unixPair(b)
	dstW, dstR := unixPair(b)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := srcW.Write(buf); err != nil {
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- join(dstW, srcR, bufio.NewReader(srcR)) }()
	buf := make([]byte, 256<<10)
	b.SetBytes(size)
	b.ReportAllocs()
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b.Loop() {
		for left := size; left > 0; {
			n, err := dstR.Read(buf[:min(left, len(buf))])
			if err != nil {
				b.Fatal(err)
			}
			left -= n
		}
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	srcW.Close()
	dstR.Close()
	<-done
}
