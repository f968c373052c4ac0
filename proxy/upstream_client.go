package proxy

import (
	"context"
	"net"
	"net/http"
	"time"
)

// RoundTripper returns an HTTP transport to the upstream, for the proxy's
// own look-ups (daemon facts a policy needs, the daemon's API version).
// Forwarded client requests never go through it. Requests may name any
// URL host: the transport sends them to the upstream with its scheme.
func (u Upstream) RoundTripper() (http.RoundTripper, error) {
	ep, err := u.endpoint()
	if err != nil {
		return nil, err
	}
	t := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return ep.dial(ctx)
		},
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	if ep.scheme == "https" {
		cfg, err := u.tlsConfig(hostOnly(ep.addr))
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig = cfg
	}
	return toEndpoint{t: t, scheme: ep.scheme, host: ep.host}, nil
}

// toEndpoint points every request at the upstream's scheme and host.
type toEndpoint struct {
	t            http.RoundTripper
	scheme, host string
}

func (te toEndpoint) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = te.scheme, te.host, te.host
	return te.t.RoundTrip(r)
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
