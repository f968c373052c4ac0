package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// side is one of the two sockets under comparison, with its own HTTP client
// so that neither side's connection pool warms or starves the other.
type side struct {
	name   string // "direct" or "proxied", used in errors
	socket string
	client *http.Client
	api    string // versioned path prefix, e.g. "/v1.41"
}

func newSide(name, socket string, pool int) *side {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}
	return &side{
		name:   name,
		socket: socket,
		client: &http.Client{Transport: &http.Transport{
			DialContext: dial,
			// Go's default of 2 idle connections per host would make the
			// 32-client run measure connection setup instead of the hop.
			MaxIdleConns:        pool,
			MaxIdleConnsPerHost: pool,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}},
	}
}

func (s *side) close() { s.client.CloseIdleConnections() }

// apiError is a non-2xx answer, carrying dockerd's (or the proxy's) message.
type apiError struct {
	side, method, path string
	status             int
	message            string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s: %s %s: HTTP %d: %s", e.side, e.method, e.path, e.status, e.message)
}

func newAPIError(s *side, method, path string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var msg struct {
		Message string `json:"message"`
	}
	text := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &msg) == nil && msg.Message != "" {
		text = msg.Message
	}
	return &apiError{side: s.name, method: method, path: path, status: resp.StatusCode, message: text}
}

func (s *side) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do sends one request and returns the whole response body; a non-2xx status
// is an error.
func (s *side) do(ctx context.Context, method, path string, body []byte) ([]byte, http.Header, error) {
	req, err := s.newRequest(ctx, method, path, body)
	if err != nil {
		return nil, nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s %s: %w", s.name, method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, nil, newAPIError(s, method, path, resp)
	}
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s %s: reading body: %w", s.name, method, path, err)
	}
	return out, resp.Header, nil
}

// timed sends one request, reads the body to EOF so the connection returns to
// the pool, and returns the time from sending to the last byte and the number
// of body bytes.
func (s *side) timed(ctx context.Context, method, path string, body []byte) (time.Duration, int64, error) {
	req, err := s.newRequest(ctx, method, path, body)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %s %s: %w", s.name, method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, 0, newAPIError(s, method, path, resp)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	elapsed := time.Since(start)
	if err != nil {
		return 0, n, fmt.Errorf("%s: %s %s: reading body after %d bytes: %w", s.name, method, path, n, err)
	}
	return elapsed, n, nil
}

// hijack sends a POST asking to upgrade the connection to a raw stream, the
// way the docker CLI starts exec and attach, and returns the connection once
// the 101 response has been read.
func (s *side) hijack(ctx context.Context, path string, body []byte) (*net.UnixConn, *bufio.Reader, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", s.socket)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: dial %s: %w", s.name, s.socket, err)
	}
	conn := c.(*net.UnixConn)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", path, len(body))
	if _, err := conn.Write(append([]byte(head), body...)); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("%s: POST %s: writing request: %w", s.name, path, err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodPost})
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("%s: POST %s: reading upgrade response: %w", s.name, path, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		err := newAPIError(s, http.MethodPost, path, resp)
		conn.Close()
		return nil, nil, fmt.Errorf("upgrade refused (want 101): %w", err)
	}
	return conn, br, nil
}
