package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
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

// transport builds the connection pool to dockerd. There are no response
// timeouts: streams (logs, events, attach) last as long as the client wants.
func (u Upstream) transport(ep endpoint) (*http.Transport, error) {
	t := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return ep.dial(ctx)
		},
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		// The client's Accept-Encoding passes through as sent; the proxy
		// neither asks for nor undoes compression.
		DisableCompression: true,
		ReadBufferSize:     64 << 10,
		WriteBufferSize:    64 << 10,
	}
	if ep.scheme == "https" {
		host, _, err := net.SplitHostPort(ep.addr)
		if err != nil {
			host = ep.addr
		}
		cfg, err := u.tlsConfig(host)
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig = cfg
		t.TLSHandshakeTimeout = 10 * time.Second
	}
	return t, nil
}

var upstreamDialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}

// dial opens a plain connection to the upstream (TLS, if any, goes on top).
func (ep endpoint) dial(ctx context.Context) (net.Conn, error) {
	return upstreamDialer.DialContext(ctx, ep.network, ep.addr)
}
