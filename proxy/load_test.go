package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sockproxy/sockproxy/internal/dockertest"
	"github.com/sockproxy/sockproxy/proxy"
)

// countingAuditor counts audit events per request ID and per operation.
type countingAuditor struct {
	mu       sync.Mutex
	perID    map[string]int
	perOp    map[string]int
	outcomes map[string]int
}

func (a *countingAuditor) Ready() error { return nil }
func (a *countingAuditor) Audit(ev *proxy.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.perID[ev.Request.ID]++
	a.perOp[ev.Request.Operation.Name]++
	a.outcomes[fmt.Sprintf("%s %d", ev.Outcome, ev.Status)]++
	return nil
}

// 10,000 mixed allowed and refused requests from 64 concurrent clients
// through the proxy to the real dockerd: nothing fails beyond the intended
// refusals, and every request is audited exactly once.
func TestLoadMixedAllowedAndRefused(t *testing.T) {
	upstream := dockertest.Require(t)
	refused := map[string]bool{"system.info": true, "image.list": true}
	dec := proxy.DeciderFunc(func(_ context.Context, r *proxy.Request) proxy.Decision {
		if refused[r.Operation.Name] {
			return proxy.Decision{Reasons: []string{"refused by the load test"}}
		}
		return proxy.Decision{Allow: true}
	})
	audit := &countingAuditor{perID: map[string]int{}, perOp: map[string]int{}, outcomes: map[string]int{}}
	sock, _ := startProxy(t, proxy.Config{Decider: dec, Auditor: audit, Upstream: proxy.Upstream{Address: "unix://" + upstream},
		Logger: quietLogger(t)})

	mix := []struct{ path, op string }{
		{"/_ping", "system.ping"},
		{"/v1.41/version", "system.version"},
		{"/v1.41/containers/json?limit=1", "container.list"},
		{"/v1.41/info", "system.info"},
		{"/v1.41/images/json", "image.list"},
	}
	const total, clients = 10000, 64
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: clients,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	var next atomic.Int64
	var mu sync.Mutex
	sent, failures := map[string]int{}, []string{}
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				m := mix[i%int64(len(mix))]
				want := http.StatusOK
				if refused[m.op] {
					want = http.StatusForbidden
				}
				resp, err := client.Get("http://d" + m.path)
				var status int
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				mu.Lock()
				sent[m.op]++
				if err != nil || status != want {
					failures = append(failures, fmt.Sprintf("%s: status %d, want %d, error %v", m.path, status, want, err))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed, e.g. %s", len(failures), total, failures[0])
	}

	audit.mu.Lock()
	defer audit.mu.Unlock()
	if len(audit.perID) != total {
		t.Errorf("%d distinct requests audited, want %d", len(audit.perID), total)
	}
	for id, n := range audit.perID {
		if n != 1 {
			t.Errorf("request %s audited %d times", id, n)
		}
	}
	for op, n := range sent {
		if audit.perOp[op] != n {
			t.Errorf("%s: %d sent, %d audited", op, n, audit.perOp[op])
		}
	}
	wantRefused := sent["system.info"] + sent["image.list"]
	if audit.outcomes["deny 403"] != wantRefused || audit.outcomes["allow 200"] != total-wantRefused {
		t.Errorf("audited outcomes %v, want %d deny 403 and %d allow 200", audit.outcomes, wantRefused, total-wantRefused)
	}
}

// quietLogger sends the proxy's warnings and errors to the test log, and
// drops the per-request debug lines that would swamp it under load.
func quietLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
