package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// apiVersionSource learns the upstream dockerd's API version (what it
// applies to unversioned paths) and re-learns it now and then, since the
// daemon may be upgraded under a running proxy.
type apiVersionSource struct {
	client *http.Client
	logger *slog.Logger

	mu      sync.Mutex
	version string
	learned time.Time
}

const apiVersionTTL = time.Minute

func newAPIVersionSource(rt http.RoundTripper, logger *slog.Logger) *apiVersionSource {
	return &apiVersionSource{client: &http.Client{Transport: rt, Timeout: 10 * time.Second}, logger: logger}
}

func (s *apiVersionSource) get(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.version != "" && time.Since(s.learned) < apiVersionTTL {
		return s.version, nil
	}
	v, err := s.fetch(ctx)
	if err != nil {
		if s.version != "" {
			return s.version, nil // a daemon restarting keeps its version; judge with the last one seen
		}
		return "", fmt.Errorf("cannot judge an unversioned request: the upstream's API version is unknown (%v); is dockerd running?", err)
	}
	if v != s.version {
		s.logger.Info("upstream API version", "version", v)
	}
	s.version, s.learned = v, time.Now()
	return v, nil
}

func (s *apiVersionSource) fetch(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/version", nil)
	if err != nil {
		return "", err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /version answered %s", resp.Status)
	}
	var body struct{ APIVersion string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("GET /version: %w", err)
	}
	if body.APIVersion == "" {
		return "", fmt.Errorf("GET /version named no ApiVersion")
	}
	return body.APIVersion, nil
}
