package input

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/docker/docker/api/types/container"
)

// FuzzDecodeCreate: whatever is accepted decodes to the same value with
// plain encoding/json into the moby type (what dockerd does) as its
// canonical bytes do, and the canonical bytes give the same input again.
func FuzzDecodeCreate(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.json")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, body := range roundTripCases {
		f.Add([]byte(body))
	}
	fd := newFakeDaemon()
	opts := Options{Daemon: fd, HostFS: HostFS{Unavailable: true}}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, canon, err := Build(context.Background(), request("container.create", "1.41", string(body)), opts)
		if err != nil {
			return
		}
		var orig, again container.CreateRequest
		if err := json.Unmarshal(body, &orig); err != nil {
			t.Fatalf("accepted a body encoding/json refuses: %v", err)
		}
		if err := json.Unmarshal(canon, &again); err != nil {
			t.Fatalf("canonical bytes do not decode: %v\n%s", err, canon)
		}
		if !reflect.DeepEqual(orig, again) {
			t.Fatalf("canonical decodes differently\n%q\n%s", body, canon)
		}
		in2, canon2, err := Build(context.Background(), request("container.create", "1.41", string(canon)), opts)
		if err != nil {
			t.Fatalf("canonical bytes refused: %v\n%s", err, canon)
		}
		if string(canon2) != string(canon) {
			t.Fatalf("canonical bytes not stable\n%s\n%s", canon, canon2)
		}
		// body_size is the size as received, so it may differ; nothing else may.
		in.BodySize, in2.BodySize = 0, 0
		a, _ := json.Marshal(in)
		b, _ := json.Marshal(in2)
		if string(a) != string(b) {
			t.Fatalf("input differs when built from the canonical bytes\n%s\n%s", a, b)
		}
	})
}
