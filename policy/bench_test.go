package policy

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/sockproxy/sockproxy/internal/dockertest"
	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
)

// benchLatency runs op b.N times and reports the median and 99th
// percentile as well as the mean, since a proxy's latency is a distribution.
func benchLatency(b *testing.B, op func()) {
	b.Helper()
	samples := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		op()
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	// CPU time per operation (GC included) stays meaningful when other
	// processes compete for the cores and stretch the wall-clock numbers.
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkDecideCreate is one decision on the OpenHands-like create: input
// to AST, evaluation of the whole library with the user's roots, verdict and
// audit facts. The input is prebuilt (see BenchmarkDecideCreateWithInput for
// the normalizer included once policy/input provides input.Build).
func BenchmarkDecideCreate(b *testing.B) {
	in, body := openHandsInput(b)
	e := newEngine(b, Options{Data: openHandsRoots, Build: staticBuilder(in, body)})
	ctx := context.Background()
	if d := e.Decide(ctx, createReq); !d.Allow {
		b.Fatalf("refused: %v", d.Reasons)
	}
	benchLatency(b, func() {
		if d := e.Decide(ctx, createReq); !d.Allow {
			b.Fatal("refused")
		}
	})
}

// BenchmarkDecideCreateWithInput is the whole decision on the OpenHands-like
// create as the proxy makes it: input.Build (strict decode, canonical body,
// normalized facts; host paths resolved on disk, lookups from memory), then
// evaluation and verdict.
func BenchmarkDecideCreateWithInput(b *testing.B) {
	e := newEngine(b, Options{Data: openHandsRoots, Input: input.Options{Daemon: fakeDaemon{}, HostFS: input.HostFS{Root: hostRoot(b)}}})
	req := openHandsRequest(openHandsBody)
	ctx := context.Background()
	if d := e.Decide(ctx, req); !d.Allow {
		b.Fatalf("refused: %v", d.Reasons)
	}
	benchLatency(b, func() {
		if d := e.Decide(ctx, req); !d.Allow {
			b.Fatal("refused")
		}
	})
}

// BenchmarkEvaluateCreate is the evaluation alone (input already an AST
// value): the cost of the Rego library itself.
func BenchmarkEvaluateCreate(b *testing.B) {
	in, body := openHandsInput(b)
	e := newEngine(b, Options{Data: openHandsRoots})
	rev := e.Revision()
	val, err := inputValue(in, body, rev.bodyWant)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	benchLatency(b, func() {
		rs, err := rev.query.Eval(ctx, rego.EvalParsedInput(val))
		if err != nil || len(rs) != 1 {
			b.Fatal(err)
		}
	})
}

// BenchmarkEvaluateTrivialQuery is OPA's fixed cost per evaluation on this
// machine, to read the others against.
func BenchmarkEvaluateTrivialQuery(b *testing.B) {
	q, err := rego.New(rego.Query("x = input.a")).PrepareForEval(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	val := ast.MustParseTerm(`{"a": 1}`).Value
	ctx := context.Background()
	benchLatency(b, func() {
		if _, err := q.Eval(ctx, rego.EvalParsedInput(val)); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkEvaluateRefusedCreate: the same create with every message rule
// firing on something (ports, user, mounts, privilege).
func BenchmarkEvaluateRefusedCreate(b *testing.B) {
	in, body := openHandsInput(b)
	in.Container.Ports[0].HostIP, in.Container.Ports[0].AllInterfaces = "0.0.0.0", true
	in.Container.User.Root, in.Container.User.UID = true, 0
	in.Container.Privileges.Privileged = true
	in.Container.Privileges.CapAdd = []string{"SYS_ADMIN"}
	e := newEngine(b, Options{Data: openHandsRoots})
	ctx := context.Background()
	benchLatency(b, func() {
		if res := e.Evaluate(ctx, in, body); res.Allow {
			b.Fatal("allowed")
		}
	})
}

// The ways to make the AST input, compared: built directly from the structs
// with the whole body (the engine converts only the body parts the policy
// reads, see BodyPaths), ast.InterfaceToValue over the input's JSON form,
// and ast.InterfaceToValue on the struct.
func BenchmarkInputValueDirect(b *testing.B) {
	in, body := openHandsInput(b)
	benchLatency(b, func() {
		if _, err := inputValue(in, body, nil); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkInputValueDecide is the conversion as a decision makes it: the
// body reduced to the paths the library reads (see BodyPaths).
func BenchmarkInputValueDecide(b *testing.B) {
	in, body := openHandsInput(b)
	want := newEngine(b, Options{Data: openHandsRoots}).Revision().bodyWant
	benchLatency(b, func() {
		if _, err := inputValue(in, body, want); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkInputValueInterfaceToValue(b *testing.B) {
	in, _ := openHandsInput(b)
	benchLatency(b, func() {
		raw, err := json.Marshal(in)
		if err != nil {
			b.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			b.Fatal(err)
		}
		if _, err := ast.InterfaceToValue(doc); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkInputValueStructToValue(b *testing.B) {
	in, _ := openHandsInput(b)
	benchLatency(b, func() {
		if _, err := ast.InterfaceToValue(in); err != nil {
			b.Fatal(err)
		}
	})
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEvaluatePing is a body-less allowed operation as the proxy sees
// it many times a second: remembered after the first evaluation (memo) or
// evaluated every time (nomemo).
func BenchmarkEvaluatePing(b *testing.B) {
	for _, memo := range []bool{true, false} {
		name := "memo"
		if !memo {
			name = "nomemo"
		}
		b.Run(name, func(b *testing.B) {
			e := newEngine(b, Options{Data: openHandsRoots})
			rev := e.Revision()
			if !memo {
				rev.memo = nil
			}
			ctx := context.Background()
			in := &input.Input{Operation: "system.ping", Method: "GET", Path: "/_ping", Caller: proxy.Caller{Known: true, UID: 1000, GID: 1000, PID: 4242}}
			benchLatency(b, func() {
				if res := rev.Evaluate(ctx, in, nil, time.Second); !res.Allow {
					b.Fatal(res.Reasons())
				}
			})
		})
	}
}

// BenchmarkDecideCreateLive is the OpenHands-like create (image
// sockproxy-test:latest) decided the way `sockproxy serve` decides it:
// input.Build with its lookups sent to the real dockerd over its socket
// (through NetworkCache as serve does, and without it), then evaluation.
// build-p50-ns is input.Build alone (lookups included), the rest is
// conversion, evaluation and verdict.
func BenchmarkDecideCreateLive(b *testing.B) {
	sock := dockertest.Require(b)
	for _, cached := range []bool{true, false} {
		name := "netcache"
		if !cached {
			name = "uncached"
		}
		b.Run(name, func(b *testing.B) {
			rt := &http.Transport{MaxIdleConnsPerHost: 8, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}}
			defer rt.CloseIdleConnections()
			var daemon input.Daemon = input.NewHTTPDaemon(rt, "")
			if cached {
				daemon = NewNetworkCache(input.NewHTTPDaemon(rt, ""), 0)
			}
			inOpts := input.Options{Daemon: daemon, HostFS: input.HostFS{Root: hostRoot(b)}}
			var builds []time.Duration
			build := func(ctx context.Context, req *proxy.Request) (*input.Input, []byte, error) {
				t0 := time.Now()
				in, body, err := input.Build(ctx, req, inOpts)
				builds = append(builds, time.Since(t0))
				return in, body, err
			}
			e := newEngine(b, Options{Data: openHandsRoots, Build: build})
			req := openHandsRequest(strings.Replace(openHandsBody, "docker.openhands.dev/openhands/runtime:0.62-nikolaik", "sockproxy-test:latest", 1))
			ctx := context.Background()
			if d := e.Decide(ctx, req); !d.Allow {
				b.Fatalf("refused: %v", d.Reasons)
			}
			builds = builds[:0]
			benchLatency(b, func() {
				if d := e.Decide(ctx, req); !d.Allow {
					b.Fatal("refused")
				}
			})
			slices.Sort(builds)
			b.ReportMetric(float64(builds[len(builds)/2].Nanoseconds()), "build-p50-ns")
		})
	}
}
