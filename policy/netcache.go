package policy

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/sockproxy/sockproxy/policy/input"
)

// PredefinedNetworkTTL is how long NetworkCache trusts a lookup of a
// predefined network.
const PredefinedNetworkTTL = 10 * time.Second

// NetworkCache is an input.HTTPDaemon whose lookups of dockerd's predefined
// networks (bridge, host, none) are answered from memory for a while.
// Nearly every create names one (NetworkMode "default" is bridge), and
// dockerd takes about 0.6 ms to answer GET /networks/bridge, more than half
// of the create's decision. These networks cannot be removed, renamed or
// recreated under their names; only their ID changes when dockerd restarts,
// which the TTL bounds. Every other lookup goes to dockerd each time.
type NetworkCache struct {
	*input.HTTPDaemon
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]networkEntry
}

type networkEntry struct {
	info *input.NetworkInfo
	at   time.Time
}

// NewNetworkCache wraps d; ttl <= 0 means PredefinedNetworkTTL.
func NewNetworkCache(d *input.HTTPDaemon, ttl time.Duration) *NetworkCache {
	if ttl <= 0 {
		ttl = PredefinedNetworkTTL
	}
	return &NetworkCache{HTTPDaemon: d, ttl: ttl, now: time.Now, entries: map[string]networkEntry{}}
}

// InspectNetwork implements input.Daemon.
func (c *NetworkCache) InspectNetwork(ctx context.Context, ref string) (*input.NetworkInfo, error) {
	switch ref {
	case "bridge", "host", "none":
	default:
		return c.HTTPDaemon.InspectNetwork(ctx, ref)
	}
	c.mu.Lock()
	e, ok := c.entries[ref]
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < c.ttl {
		return cloneNetwork(e.info), nil
	}
	info, err := c.HTTPDaemon.InspectNetwork(ctx, ref)
	if err != nil {
		return nil, err // errors are not remembered: the next request asks again
	}
	c.mu.Lock()
	c.entries[ref] = networkEntry{info: cloneNetwork(info), at: c.now()}
	c.mu.Unlock()
	return info, nil
}

// cloneNetwork copies the maps, so that no caller can change what the
// cache hands to the next.
func cloneNetwork(n *input.NetworkInfo) *input.NetworkInfo {
	c := *n
	c.Options = maps.Clone(n.Options)
	c.Labels = maps.Clone(n.Labels)
	return &c
}
