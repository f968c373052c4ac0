package input

import (
	"testing"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/volume/mounts"
)

// FuzzParseBind checks ParseBind against dockerd's own Linux parser (moby's
// volume/mounts, which reads no files for a Binds entry): both accept or
// refuse the same entries, and agree on type, source, target, read-only,
// propagation and nocopy for what they accept.
func FuzzParseBind(f *testing.F) {
	for _, s := range []string{
		"/data:/data", "/data:/data:ro", "/a/../b:/c:rw,rshared", "vol:/v:nocopy", "/v",
		"/:/host", "/x:/", "rel/path:/x", "/x:/y:ro,rw", "/x:/y:z,Z", "/x:/y:nocopy",
		"vol:/v:rshared", "/x:ro", "a:b:c:d", ":/x", "/x:/y:delegated,ro", `\x:/y`, "/x:y",
		"/x:/y:rslave,ro,z", "vol:/v:nocopy,nocopy", "/x://y/../z",
	} {
		f.Add(s)
	}
	parser := mounts.NewLinuxParser()
	f.Fuzz(func(t *testing.T, raw string) {
		ours, ourErr := ParseBind(raw)
		theirs, theirErr := parser.ParseMountRaw(raw, "")
		if (ourErr == nil) != (theirErr == nil) {
			t.Fatalf("%q: ParseBind err=%v, dockerd's parser err=%v", raw, ourErr, theirErr)
		}
		if ourErr != nil {
			return
		}
		if string(theirs.Type) != ours.Type || theirs.Destination != ours.Target || theirs.RW == ours.ReadOnly {
			t.Fatalf("%q: ParseBind %+v, dockerd's parser type=%s dst=%q rw=%v", raw, ours, theirs.Type, theirs.Destination, theirs.RW)
		}
		src := theirs.Source
		if theirs.Type == mount.TypeVolume {
			src = theirs.Name
		}
		if src != ours.Source {
			t.Fatalf("%q: source %q, dockerd's parser %q", raw, ours.Source, src)
		}
		if ours.Type == "bind" && string(theirs.Propagation) != ours.Propagation && !(ours.Propagation == "" && theirs.Propagation == mount.PropagationRPrivate) {
			t.Fatalf("%q: propagation %q, dockerd's parser %q", raw, ours.Propagation, theirs.Propagation)
		}
		if ours.Type == "volume" && ours.NoCopy == theirs.CopyData {
			t.Fatalf("%q: nocopy %v, dockerd's parser copies data: %v", raw, ours.NoCopy, theirs.CopyData)
		}
	})
}
