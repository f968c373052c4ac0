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
	c := in.Container
	if c.Name != "openhands-runtime-1" || c.User.UID != 1000 || c.User.Root || len(c.Mounts) != 2 ||
		c.Mounts[0].ReadOnly || !c.Mounts[1].ReadOnly || c.Mounts[0].PathStatus != PathUnresolvable ||
		len(c.Ports) != 2 || !c.Ports[0].Loopback || c.Ports[0].AllInterfaces ||
		len(c.Networks) != 1 || !c.Networks[0].Found || c.Networks[0].Name != "openhands-network" {
		b, _ := json.MarshalIndent(c, "", "  ")
		t.Fatalf("facts:\n%s", b)
	}
	if string(in.Body.(json.RawMessage)) != string(canon) {
		t.Fatal("input body is not the canonical body")
	}
}
