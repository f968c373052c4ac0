package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// CheckTimeout bounds each health check.
const CheckTimeout = 2 * time.Second

// Check is one part of /healthz: it returns a short detail on success.
type Check struct {
	Name string
	Run  func(ctx context.Context) (detail string, err error)
}

// CheckResult is one check's part of the /healthz answer.
type CheckResult struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Health is the /healthz answer.
type Health struct {
	Status string                 `json:"status"` // "ok" or "unhealthy"
	Checks map[string]CheckResult `json:"checks"`
}

// HealthHandler runs every check (concurrently, each bounded by
// CheckTimeout) and answers their results as JSON: 200 when all pass, 503
// otherwise.
func HealthHandler(checks ...Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := Health{Status: "ok", Checks: make(map[string]CheckResult, len(checks))}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range checks {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(r.Context(), CheckTimeout)
				defer cancel()
				detail, err := c.Run(ctx)
				res := CheckResult{OK: err == nil, Detail: detail}
				if err != nil {
					res.Error = err.Error()
				}
				mu.Lock()
				h.Checks[c.Name] = res
				mu.Unlock()
			})
		}
		wg.Wait()
		status := http.StatusOK
		for _, c := range h.Checks {
			if !c.OK {
				h.Status, status = "unhealthy", http.StatusServiceUnavailable
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(h)
	})
}

// UpstreamCheck pings dockerd through rt (proxy.Upstream.RoundTripper):
// healthy when /_ping answers 200 OK; the detail is dockerd's API version.
func UpstreamCheck(rt http.RoundTripper) Check {
	return Check{Name: "upstream", Run: func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
		if err != nil {
			return "", err
		}
		res, err := rt.RoundTrip(req)
		if err != nil {
			return "", fmt.Errorf("dockerd unreachable: %w", err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 64))
		if res.StatusCode != http.StatusOK {
			return "", fmt.Errorf("dockerd answered /_ping with %s: %q", res.Status, body)
		}
		return "API " + res.Header.Get("Api-Version"), nil
	}}
}

// Mux serves /metrics (m may be nil: no metrics) and /healthz.
func Mux(m *Metrics, health http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
	mux.Handle("GET /healthz", health)
	return mux
}

// CheckAddress checks a metrics listen address: an absolute path (a Unix
// socket) or host:port where host is a loopback IP or "localhost". Metrics
// and health say what the policy refuses and whether auditing works: they
// are not for other hosts.
func CheckAddress(addr string) error {
	if filepath.IsAbs(addr) {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("%q is neither an absolute socket path nor host:port", addr)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: the metrics listener accepts a Unix socket path or a loopback address (127.0.0.1, [::1], localhost), not %q; put a reverse proxy in front to publish it", addr, host)
	}
	return nil
}

// Listen opens the listener of a checked address; a socket path is handed
// to listenUnix (which sets its mode and removes a stale socket).
func Listen(addr string, listenUnix func(path string) (net.Listener, error)) (net.Listener, error) {
	if err := CheckAddress(addr); err != nil {
		return nil, err
	}
	if filepath.IsAbs(addr) {
		return listenUnix(addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	// "localhost" may resolve to a non-loopback address on a broken host.
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		ln.Close()
		return nil, errors.New("metrics listener: " + addr + " resolved to a non-loopback address " + tcp.IP.String())
	}
	return ln, nil
}
