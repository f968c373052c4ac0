package input

import (
	"context"
	"encoding/json"
	"testing"
)

func TestBuildOpenHandsCreate(t *testing.T) {
	req := request("container.create", "1.41", string(readTestdata(t, "openhands-create.json")))
	req.Operation.Query.Set("name", "openhands-runtime-1")
	in, canon, err := Build(context.Background(), req, Options{Daemon: newFakeDaemon(), HostFS: HostFS{Unavailable: true}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(in, "", "  ")
	t.Logf("%s\n%s", canon, b)
}
