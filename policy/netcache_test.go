package policy

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
	"github.com/sockproxy/sockproxy/policy/input"
)

// countingTransport counts the requests that reach dockerd, by path.
type countingTransport struct {
	rt   http.RoundTripper
	hits map[string]*atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	for p, n := range c.hits {
		if strings.HasSuffix(r.URL.Path, p) {
			n.Add(1)
		}
	}
	return c.rt.RoundTrip(r)
}

// Lookups of predefined networks are answered from memory within the TTL
// and asked again after it; other networks and other lookups always reach
// dockerd, and exec lookups still work through the cache.
func TestNetworkCacheAgainstDockerd(t *testing.T) {
	sock := dockertest.Require(t)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	ct := &countingTransport{rt: tr, hits: map[string]*atomic.Int64{"/networks/bridge": {}, "/networks/sp-perf-absent": {}}}
	c := NewNetworkCache(input.NewHTTPDaemon(ct, ""), time.Minute)
	clock := time.Now()
	c.now = func() time.Time { return clock }
	ctx := context.Background()

	first, err := c.InspectNetwork(ctx, "bridge")
	if err != nil || first.Name != "bridge" || first.Driver != "bridge" || first.ID == "" {
		t.Fatalf("bridge: %+v, %v", first, err)
	}
	first.Options["sp-perf-mutated"] = "x" // a caller's change must not reach the next caller
	second, err := c.InspectNetwork(ctx, "bridge")
	if err != nil || second.ID != first.ID {
		t.Fatalf("bridge again: %+v, %v", second, err)
	}
	if _, ok := second.Options["sp-perf-mutated"]; ok {
		t.Error("the cache handed out a map another caller changed")
	}
	if n := ct.hits["/networks/bridge"].Load(); n != 1 {
		t.Errorf("dockerd asked %d times for bridge within the TTL, want 1", n)
	}
	clock = clock.Add(time.Minute)
	if _, err := c.InspectNetwork(ctx, "bridge"); err != nil {
		t.Fatal(err)
	}
	if n := ct.hits["/networks/bridge"].Load(); n != 2 {
		t.Errorf("dockerd asked %d times for bridge after the TTL, want 2", n)
	}

	for range 2 {
		if _, err := c.InspectNetwork(ctx, "sp-perf-absent"); err == nil {
			t.Fatal("a missing network was found")
		}
	}
	if n := ct.hits["/networks/sp-perf-absent"].Load(); n != 2 {
		t.Errorf("dockerd asked %d times for a user network, want 2 (never cached)", n)
	}

	var d input.Daemon = c
	if _, ok := d.(interface {
		InspectExec(context.Context, string) (*input.ExecInfo, error)
	}); !ok {
		t.Error("the cache hides InspectExec: exec targets could not be resolved")
	}
}
