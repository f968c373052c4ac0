package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// DefaultUpstream is dockerd's usual socket.
const DefaultUpstream = "unix:///var/run/docker.sock"

// Upstream says where dockerd listens.
type Upstream struct {
	// Address is unix:///path, a bare /path, or tcp://host:port.
	Address string
	// TLS client settings for a tcp:// upstream (PEM files; all optional).
	// With any of them set the connection uses TLS.
	CAFile, CertFile, KeyFile string
}

// endpoint is a parsed Upstream.
type endpoint struct {
	network string // "unix" or "tcp"
	addr    string // socket path or host:port
	scheme  string // "http" or "https"
	host    string // URL host of forwarded requests
	display string // how error messages name the upstream
}

func (u Upstream) endpoint() (endpoint, error) {
	addr := u.Address
	if addr == "" {
		addr = DefaultUpstream
	}
	if strings.HasPrefix(addr, "/") {
		addr = "unix://" + addr
	}
	parsed, err := url.Parse(addr)
	if err != nil {
		return endpoint{}, fmt.Errorf("upstream %q is not a URL: %w", addr, err)
	}
	useTLS := u.CAFile != "" || u.CertFile != "" || u.KeyFile != ""
	switch parsed.Scheme {
	case "unix":
		if parsed.Path == "" {
			return endpoint{}, fmt.Errorf("upstream %q names no socket path; use unix:///path/to/docker.sock", addr)
		}
		if useTLS {
			return endpoint{}, fmt.Errorf("TLS settings apply to a tcp:// upstream only, not %q", addr)
		}
		return endpoint{network: "unix", addr: parsed.Path, scheme: "http", host: "docker", display: "unix://" + parsed.Path}, nil
	case "tcp", "http", "https":
		if parsed.Host == "" {
			return endpoint{}, fmt.Errorf("upstream %q names no host; use tcp://host:port", addr)
		}
		scheme := "http"
		if useTLS || parsed.Scheme == "https" {
			scheme = "https"
		}
		return endpoint{network: "tcp", addr: parsed.Host, scheme: scheme, host: parsed.Host, display: "tcp://" + parsed.Host}, nil
	default:
		return endpoint{}, fmt.Errorf("upstream %q: scheme must be unix or tcp", addr)
	}
}

func (u Upstream) tlsConfig(serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if u.CAFile != "" {
		pem, err := os.ReadFile(u.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read the upstream CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream CA %s holds no PEM certificate", u.CAFile)
		}
		cfg.RootCAs = pool
	}
	if u.CertFile != "" || u.KeyFile != "" {
		if u.CertFile == "" || u.KeyFile == "" {
			return nil, fmt.Errorf("an upstream client certificate needs both a certificate and a key file")
		}
		cert, err := tls.LoadX509KeyPair(u.CertFile, u.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load the upstream client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

var upstreamDialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}

// dial opens a plain connection to the upstream (TLS, if any, goes on top).
func (ep endpoint) dial(ctx context.Context) (net.Conn, error) {
	return upstreamDialer.DialContext(ctx, ep.network, ep.addr)
}

// upstreamConn is one connection to dockerd with its buffers. It carries
// one request at a time and goes back to the pool when its response was
// read to the end.
type upstreamConn struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	// reused is true when the connection served an earlier request: a
	// daemon that restarted meanwhile leaves it dead.
	reused bool
}

// upstreamBufferSize sizes the per-connection read buffer: enough for
// response heads and log frames; bulk transfers read into the large pooled
// buffers instead (see burstReader). upstreamWriteBufferSize sizes the write
// buffer, which only gathers request heads (bodies larger than it are
// written through): a connection held by a stream (events, logs) keeps both
// for as long as the stream lasts.
const (
	upstreamBufferSize      = 16 << 10
	upstreamWriteBufferSize = 4 << 10
)

// maxIdleUpstream bounds the idle connections kept to dockerd: enough for
// bursts of concurrent clients (a small pool caps throughput).
const maxIdleUpstream = 256

// upstreamPool keeps idle keep-alive connections to dockerd. Requests are
// written and responses read by the client connection's own goroutine; the
// pool only hands connections out and takes them back.
type upstreamPool struct {
	ep        endpoint
	tlsConfig *tls.Config // nil: plain connection

	mu     sync.Mutex
	idle   []*upstreamConn
	closed bool
}

// get returns an idle connection, or dials a new one.
func (p *upstreamPool) get(ctx context.Context) (*upstreamConn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		uc := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		uc.reused = true
		return uc, nil
	}
	p.mu.Unlock()
	conn, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	return &upstreamConn{conn: conn, br: getReader(&upstreamReaders, conn), bw: getWriter(&upstreamWriters, conn)}, nil
}

// Buffers of upstream connections come from pools, which waiting exchanges
// give theirs back to (see watchClient).
var (
	upstreamReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, upstreamBufferSize) }}
	upstreamWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, upstreamWriteBufferSize) }}
)

// put takes back a connection whose last response was read to its end.
func (p *upstreamPool) put(uc *upstreamConn) {
	normalUpstreamBuffers(uc)
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdleUpstream {
		p.mu.Unlock()
		uc.conn.Close()
		return
	}
	p.idle = append(p.idle, uc)
	p.mu.Unlock()
}

// closeIdle closes the idle connections (after a failure on one of them,
// the others are likely dead too); close also stops keeping new ones.
func (p *upstreamPool) closeIdle() { p.drain(false) }
func (p *upstreamPool) close()     { p.drain(true) }

func (p *upstreamPool) drain(final bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if final {
		p.closed = true
	}
	p.mu.Unlock()
	for _, uc := range idle {
		uc.conn.Close()
	}
}

// dial opens a connection to dockerd, TLS included.
func (p *upstreamPool) dial(ctx context.Context) (net.Conn, error) {
	conn, err := p.ep.dial(ctx)
	if err != nil {
		return nil, err
	}
	if p.tlsConfig == nil {
		return conn, nil
	}
	tconn := tls.Client(conn, p.tlsConfig.Clone())
	if err := tconn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tconn, nil
}
