package input

import (
	"context"
	"testing"
)

// BenchmarkBuildCreate: decode, canonicalize and normalize the OpenHands-like
// create with an in-memory daemon (lookups cost what the upstream costs).
func BenchmarkBuildCreate(b *testing.B) {
	body := string(readTestdata(b, "openhands-create.json"))
	req := request("container.create", "1.41", body)
	opts := Options{Daemon: newFakeDaemon(), HostFS: HostFS{Unavailable: true}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Build(ctx, req, opts); err != nil {
			b.Fatal(err)
		}
	}
}
