package audit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sockproxy/sockproxy/internal/dockertest"
	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/proxy"
	"github.com/sockproxy/sockproxy/proxy/route"
)

// TestEveryProxiedRequestIsAuditedOnce runs the real proxy in front of the
// real dockerd with this log, sends a concurrent mix of allowed, refused and
// unroutable requests, and counts the lines.
func TestEveryProxiedRequestIsAuditedOnce(t *testing.T) {
	sock := dockertest.Require(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.log")
	l, err := audit.New(audit.Options{Path: logPath, MaxSizeMB: 1})
	if err != nil {
		t.Fatal(err)
	}
	decider := proxy.DeciderFunc(func(_ context.Context, req *proxy.Request) proxy.Decision {
		if req.Operation.Name == "system.info" {
			return proxy.Decision{Reasons: []string{"info is not for you"}, Revision: "test-rev"}
		}
		return proxy.Decision{Allow: true, Revision: "test-rev", Warnings: []string{"test warning"}}
	})
	p, err := proxy.New(proxy.Config{Classifier: route.New(route.Config{}), Decider: decider, Auditor: l,
		Upstream: proxy.Upstream{Address: "unix://" + sock}})
	if err != nil {
		t.Fatal(err)
	}
	lnPath := filepath.Join(dir, "proxy.sock")
	ln, err := proxy.ListenUnix(lnPath, 0o600, "")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	t.Cleanup(func() { p.Shutdown(context.Background()) })

	client := dockertest.Client(lnPath)
	paths := map[string]string{ // path -> expected decision
		"/v1.41/_ping":           "allow",
		"/v1.41/version":         "allow",
		"/v1.41/containers/json": "allow",
		"/v1.41/info":            "deny",
		"/v1.41/no/such/route":   "error",
	}
	var list []string
	for p := range paths {
		list = append(list, p)
	}
	const perWorker, workers = 60, 6
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				res, err := client.Get("http://docker" + list[(w+i)%len(list)])
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	self, _ := os.Readlink("/proc/self/exe")
	files, _ := filepath.Glob(logPath + "*")
	counts := map[string]int{}
	lines := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec audit.Record
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("bad line %q: %v", sc.Text(), err)
			}
			want, ok := paths[rec.Path]
			if rec.Path == "" {
				// The proxy leaves the operation zero when it cannot
				// classify a request, method and path included.
				want, ok = "error", true
			}
			if !ok || rec.Decision != want {
				t.Errorf("record for %q: decision %q, want %q", rec.Path, rec.Decision, want)
			}
			if want == "allow" && (rec.Status != http.StatusOK || rec.PolicyRevision != "test-rev" || len(rec.Warnings) != 1) {
				t.Errorf("allowed record %+v", rec)
			}
			if want == "deny" && (rec.Status != http.StatusForbidden || len(rec.Reasons) != 1) {
				t.Errorf("refused record %+v", rec)
			}
			if !rec.Caller.Known || rec.Caller.PID != os.Getpid() || rec.Caller.Exe != self {
				t.Errorf("caller %+v is not this test process", rec.Caller)
			}
			counts[rec.Decision]++
			lines++
		}
		fh.Close()
	}
	if lines != workers*perWorker {
		t.Fatalf("%d requests, %d audit lines (%v)", workers*perWorker, lines, counts)
	}
	perPath := workers * perWorker / len(paths)
	if counts["deny"] != perPath || counts["error"] != perPath || counts["allow"] != 3*perPath {
		t.Fatalf("decisions %v, want %d deny, %d error, %d allow", counts, perPath, perPath, 3*perPath)
	}
}
