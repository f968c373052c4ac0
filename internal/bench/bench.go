// Package bench measures a Docker API socket proxy against the socket it
// fronts. Both sockets are driven by the same client code in one run, with the
// direct and proxied rounds interleaved (ABBA order) so that drift in machine
// load falls on both sides alike; each metric is reported as direct, proxied
// and the ratio proxied/direct, checked against the targets of issue 8.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// Metric groups that Config.Only can select.
const (
	GroupPing    = "ping"    // sequential /_ping latency
	GroupRPS     = "rps"     // /_ping requests/s with concurrent clients
	GroupList    = "list"    // GET /containers/json latency
	GroupInspect = "inspect" // GET /containers/{id}/json latency
	GroupCreate  = "create"  // POST /containers/create latency
	GroupLogs    = "logs"    // log download throughput
	GroupArchive = "archive" // GET /containers/{id}/archive throughput
	GroupExec    = "exec"    // hijacked exec round-trip throughput
	GroupRSS     = "rss"     // proxy resident memory with open streams
)

// Groups lists every metric group in the order Run measures them.
var Groups = []string{GroupRSS, GroupPing, GroupRPS, GroupList, GroupInspect, GroupCreate, GroupLogs, GroupArchive, GroupExec}

// Config says what to measure and how hard.
type Config struct {
	Direct  string // the daemon's socket, e.g. /var/run/docker.sock
	Proxied string // the proxy's socket in front of the same daemon

	// Rounds is the number of transfers per side for logs, archive and exec,
	// alternating which side goes first; the requests/s run uses twice as
	// many windows. Latency metrics alternate every few samples instead.
	Rounds int
	// Iterations is the number of sequential /_ping samples per side; list
	// and inspect take a fifth as many, create a twenty-fifth.
	Iterations  int
	Duration    time.Duration // per side, for the concurrent /_ping run
	Concurrency int           // concurrent clients for the requests/s run

	LogMiB      int // bytes of log lines the log container writes
	ArchiveMiB  int // size of the file downloaded with GET …/archive
	ExecMiB     int // bytes written to, and read back from, `cat` in an exec
	Streams     int // open GET /events streams while sampling the proxy's memory
	ProxyPID    int // the proxy's process id; the memory metric needs it
	BindRoot    string
	Image       string   // image for every container the run creates
	NamePrefix  string   // prefix of every container name, so leftovers can be found
	Only        []string // metric groups to run; empty means all
	CallTimeout time.Duration
	Logger      *slog.Logger
}

// DefaultConfig returns the settings `sockproxy bench` uses unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Rounds:      6,
		Iterations:  2000,
		Duration:    3 * time.Second,
		Concurrency: 32,
		LogMiB:      32,
		ArchiveMiB:  64,
		ExecMiB:     64,
		Streams:     256,
		Image:       "sockproxy-test:latest",
		NamePrefix:  "sp-bench-",
		CallTimeout: 2 * time.Minute,
	}
}

func (c *Config) validate() error {
	var problems []string
	if c.Direct == "" || c.Proxied == "" {
		problems = append(problems, "both the direct and the proxied socket paths are required")
	}
	if c.Direct != "" && c.Direct == c.Proxied {
		problems = append(problems, "direct and proxied are the same socket")
	}
	if c.Rounds < 1 || c.Iterations < 1 || c.Concurrency < 1 || c.Duration <= 0 || c.CallTimeout <= 0 {
		problems = append(problems, "rounds, iterations, concurrency, duration and call timeout must be positive")
	}
	if c.LogMiB < 1 || c.ArchiveMiB < 1 || c.ExecMiB < 1 || c.Streams < 1 {
		problems = append(problems, "log, archive and exec sizes and the stream count must be at least 1")
	}
	if c.Image == "" || c.NamePrefix == "" {
		problems = append(problems, "image and name prefix must be set")
	}
	for _, g := range c.Only {
		if !slices.Contains(Groups, g) {
			problems = append(problems, fmt.Sprintf("unknown metric group %q (known: %s)", g, strings.Join(Groups, ", ")))
		}
	}
	if len(problems) > 0 {
		return errors.New("bench: " + strings.Join(problems, "; "))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func (c *Config) wants(group string) bool {
	return len(c.Only) == 0 || slices.Contains(c.Only, group)
}

// Verdict is the outcome of one metric against its target.
type Verdict string

// Verdicts.
const (
	Pass  Verdict = "PASS"
	Fail  Verdict = "FAIL"
	Info  Verdict = "INFO"  // measured, no target
	Error Verdict = "ERROR" // not measured; see Metric.Error
)

// Target bounds a metric. Of is "ratio" (proxied/direct) or "proxied" (the
// proxied figure alone, for metrics with no direct counterpart).
type Target struct {
	Of    string  `json:"of"`
	Cmp   string  `json:"cmp"` // "<=" or ">="
	Value float64 `json:"value"`
}

func (t Target) String() string {
	if t.Cmp == "" {
		return "-"
	}
	if t.Of == "ratio" {
		return fmt.Sprintf("%s %gx", t.Cmp, t.Value)
	}
	return fmt.Sprintf("%s %g", t.Cmp, t.Value)
}

func (t Target) met(v float64) bool {
	if t.Cmp == "<=" {
		return v <= t.Value
	}
	return v >= t.Value
}

// Metric is one measured figure on both sides.
type Metric struct {
	Name    string  `json:"name"`
	Unit    string  `json:"unit"`
	Direct  float64 `json:"direct"`  // 0 when the metric has no direct counterpart
	Proxied float64 `json:"proxied"` //
	Ratio   float64 `json:"ratio"`   // proxied/direct; 0 when there is no direct figure
	Samples int     `json:"samples"` // per side
	Target  Target  `json:"target"`
	Verdict Verdict `json:"verdict"`
	Error   string  `json:"error,omitempty"`
	Note    string  `json:"note,omitempty"`
}

// Targets from issue 8, keyed by metric name. Metrics missing here are
// reported for information.
var Targets = map[string]Target{
	"ping p50":              {Of: "ratio", Cmp: "<=", Value: 1.8},
	"ping req/s 32 clients": {Of: "ratio", Cmp: ">=", Value: 0.45},
	"list p50":              {Of: "ratio", Cmp: "<=", Value: 1.15},
	"inspect p50":           {Of: "ratio", Cmp: "<=", Value: 1.6},
	"create p50":            {Of: "ratio", Cmp: "<=", Value: 1.03},
	"logs":                  {Of: "ratio", Cmp: ">=", Value: 1.0},
	"archive":               {Of: "ratio", Cmp: ">=", Value: 0.9},
	"exec round-trip":       {Of: "ratio", Cmp: ">=", Value: 0.95},
	"proxy RSS 256 streams": {Of: "proxied", Cmp: "<=", Value: 40},
}

// judge fills Ratio, Target and Verdict from Direct and Proxied.
func (m *Metric) judge() {
	if m.Error != "" {
		m.Verdict = Error
		return
	}
	if m.Direct > 0 {
		m.Ratio = m.Proxied / m.Direct
	}
	t, ok := Targets[m.Name]
	if !ok {
		m.Verdict = Info
		return
	}
	m.Target = t
	v := m.Proxied
	if t.Of == "ratio" {
		v = m.Ratio
	}
	if t.met(v) {
		m.Verdict = Pass
	} else {
		m.Verdict = Fail
	}
}

// Report is the outcome of one run.
type Report struct {
	Direct     string        `json:"direct"`
	Proxied    string        `json:"proxied"`
	APIVersion string        `json:"api_version"`
	Started    time.Time     `json:"started"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	Rounds     int           `json:"rounds"`
	// LoadBefore and LoadAfter are /proc/loadavg at both ends of the run:
	// ratios from a busy machine are noisier.
	LoadBefore string   `json:"load_before"`
	LoadAfter  string   `json:"load_after"`
	Metrics    []Metric `json:"metrics"`
}

// Metric returns the metric with the given name, or nil.
func (r *Report) Metric(name string) *Metric {
	for i := range r.Metrics {
		if r.Metrics[i].Name == name {
			return &r.Metrics[i]
		}
	}
	return nil
}

// Passed reports whether every metric with a target was measured and met it.
func (r *Report) Passed() bool {
	for _, m := range r.Metrics {
		if m.Verdict == Fail || m.Verdict == Error {
			return false
		}
	}
	return true
}

// Run measures every selected metric on both sockets. It returns an error only
// when the run cannot start (a socket does not answer, the image is missing);
// a metric that fails to measure is reported with Verdict Error, and the run
// goes on to the next. Containers it creates are removed before it returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := &bencher{cfg: cfg, log: cfg.Logger}
	pool := max(2*cfg.Concurrency, 64)
	b.sides = [2]*side{newSide("direct", cfg.Direct, pool), newSide("proxied", cfg.Proxied, pool)}
	defer b.sides[0].close()
	defer b.sides[1].close()

	rep := &Report{Direct: cfg.Direct, Proxied: cfg.Proxied, Started: time.Now(), Rounds: cfg.Rounds, LoadBefore: loadAverage()}
	if err := b.preflight(ctx); err != nil {
		return nil, err
	}
	rep.APIVersion = b.apiVersion
	defer b.cleanup()

	steps := []struct {
		group string
		run   func(context.Context) []Metric
	}{
		// Memory first: VmHWM is a high-water mark, and the transfers below
		// would otherwise set it rather than the open streams.
		{GroupRSS, b.measureRSS},
		{GroupPing, b.measurePing},
		{GroupRPS, b.measureRPS},
		{GroupList, b.measureList},
		{GroupInspect, b.measureInspect},
		{GroupCreate, b.measureCreate},
		{GroupLogs, b.measureLogs},
		{GroupArchive, b.measureArchive},
		{GroupExec, b.measureExec},
	}
	for _, st := range steps {
		if !cfg.wants(st.group) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench: interrupted before %s: %w", st.group, err)
		}
		b.log.Info("measuring", "group", st.group)
		for _, m := range st.run(ctx) {
			m.judge()
			b.log.Info("measured", "metric", m.Name, "direct", m.Direct, "proxied", m.Proxied, "ratio", m.Ratio, "verdict", m.Verdict, "error", m.Error)
			rep.Metrics = append(rep.Metrics, m)
		}
	}
	if cfg.ProxyPID > 0 {
		if hwm, _, err := readProcMemory(cfg.ProxyPID); err == nil {
			m := Metric{Name: "proxy peak RSS whole run", Unit: "MiB", Proxied: hwm, Samples: 1,
				Note: "VmHWM after every selected metric ran (counted from the start of the rss group when it ran)"}
			m.judge()
			rep.Metrics = append(rep.Metrics, m)
		}
	}
	rep.Elapsed = time.Since(rep.Started)
	rep.LoadAfter = loadAverage()
	return rep, nil
}

// loadAverage returns the 1, 5 and 15 minute load averages, or "" off Linux.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	return strings.Join(f[:min(3, len(f))], " ")
}

// bencher holds the state of one run.
type bencher struct {
	cfg        Config
	log        *slog.Logger
	sides      [2]*side // [0] direct, [1] proxied
	apiVersion string
	fixtures   []string // ids of long-lived containers, removed by cleanup
	idle       string   // a running container for inspect and exec
}

// interleave calls fn for both sides in every round, alternating which side
// goes first. fn gets the side's index: 0 direct, 1 proxied.
func (b *bencher) interleave(ctx context.Context, rounds int, fn func(ctx context.Context, round, i int) error) error {
	for r := range rounds {
		order := [2]int{0, 1}
		if r%2 == 1 {
			order = [2]int{1, 0}
		}
		for _, i := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(ctx, r, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// callCtx bounds one call (or one transfer) so that a hung side cannot stall
// the run.
func (b *bencher) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.cfg.CallTimeout)
}

// percentile returns the nearest-rank percentile p (0..1) of samples in µs.
func percentile(samples []time.Duration, p float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	idx := int(math.Ceil(p*float64(len(s)))) - 1
	idx = min(max(idx, 0), len(s)-1)
	return float64(s[idx]) / float64(time.Microsecond)
}

// latencyMetrics turns per-side samples into metrics for the given percentiles.
func latencyMetrics(name string, samples [2][]time.Duration, err error, percents ...int) []Metric {
	var out []Metric
	for _, pc := range percents {
		m := Metric{Name: fmt.Sprintf("%s p%d", name, pc), Unit: "µs", Samples: min(len(samples[0]), len(samples[1]))}
		if err != nil {
			m.Error = err.Error()
		} else {
			p := float64(pc) / 100
			m.Direct, m.Proxied = percentile(samples[0], p), percentile(samples[1], p)
		}
		out = append(out, m)
	}
	return out
}

// throughput accumulates bytes and time per side; the figure is total bytes
// over total time, in MB/s (10^6 bytes).
type throughput struct {
	bytes [2]int64
	time  [2]time.Duration
	n     [2]int
}

func (t *throughput) add(i int, n int64, d time.Duration) {
	t.bytes[i] += n
	t.time[i] += d
	t.n[i]++
}

func (t *throughput) metric(name string, err error) Metric {
	m := Metric{Name: name, Unit: "MB/s", Samples: min(t.n[0], t.n[1])}
	if err != nil {
		m.Error = err.Error()
		return m
	}
	rate := func(i int) float64 {
		if t.time[i] <= 0 {
			return 0
		}
		return float64(t.bytes[i]) / 1e6 / t.time[i].Seconds()
	}
	m.Direct, m.Proxied = rate(0), rate(1)
	return m
}
