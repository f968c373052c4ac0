package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// warm sends a few pings on both sides so that the first timed sample does
// not pay for dialing.
func (b *bencher) warm(ctx context.Context) error {
	for _, s := range b.sides {
		for range 20 {
			cctx, cancel := b.callCtx(ctx)
			_, _, err := s.timed(cctx, http.MethodGet, "/_ping", nil)
			cancel()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// latency takes perSide sequential samples of call on each side, switching
// sides every chunk samples (ABBA): short chunks keep a burst of load from
// other processes from landing on one side only.
func (b *bencher) latency(ctx context.Context, perSide, chunk int, call func(ctx context.Context, s *side) (time.Duration, error)) ([2][]time.Duration, error) {
	var samples [2][]time.Duration
	if err := b.warm(ctx); err != nil {
		return samples, err
	}
	chunk = max(chunk, 1)
	rounds := (perSide + chunk - 1) / chunk
	err := b.interleave(ctx, rounds, func(ctx context.Context, _, i int) error {
		for range chunk {
			cctx, cancel := b.callCtx(ctx)
			d, err := call(cctx, b.sides[i])
			cancel()
			if err != nil {
				return err
			}
			samples[i] = append(samples[i], d)
		}
		return nil
	})
	return samples, err
}

func getLatency(path func(s *side) string) func(ctx context.Context, s *side) (time.Duration, error) {
	return func(ctx context.Context, s *side) (time.Duration, error) {
		d, _, err := s.timed(ctx, http.MethodGet, path(s), nil)
		return d, err
	}
}

func (b *bencher) measurePing(ctx context.Context) []Metric {
	samples, err := b.latency(ctx, b.cfg.Iterations, 20, getLatency(func(*side) string { return "/_ping" }))
	return latencyMetrics("ping", samples, err, 50, 99)
}

func (b *bencher) measureList(ctx context.Context) []Metric {
	samples, err := b.latency(ctx, max(b.cfg.Iterations/5, 1), 10,
		getLatency(func(s *side) string { return s.api + "/containers/json" }))
	return latencyMetrics("list", samples, err, 50)
}

func (b *bencher) measureInspect(ctx context.Context) []Metric {
	samples, err := b.latency(ctx, max(b.cfg.Iterations/5, 1), 10,
		getLatency(func(s *side) string { return s.api + "/containers/" + b.idle + "/json" }))
	return latencyMetrics("inspect", samples, err, 50)
}

// measureCreate times POST /containers/create with a hardened body; every
// container is removed through the direct socket, untimed.
func (b *bencher) measureCreate(ctx context.Context) []Metric {
	// One sample per turn: a create takes tens of milliseconds and the target
	// (3%) is finer than the drift of a shared machine over a few seconds.
	samples, err := b.latency(ctx, max(b.cfg.Iterations/25, 2), 1, func(ctx context.Context, s *side) (time.Duration, error) {
		ports, err := freePorts(2)
		if err != nil {
			return 0, err
		}
		body := HardenedCreateBody(b.cfg.Image, [2]int{ports[0], ports[1]}, b.cfg.BindRoot)
		path := s.api + "/containers/create?name=" + b.containerName("create")
		req, err := s.newRequest(ctx, http.MethodPost, path, body)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		resp, err := s.client.Do(req)
		if err != nil {
			return 0, fmt.Errorf("%s: POST %s: %w", s.name, path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return 0, newAPIError(s, http.MethodPost, path, resp)
		}
		out, err := io.ReadAll(resp.Body)
		elapsed := time.Since(start)
		var created struct{ ID string }
		if err != nil || json.Unmarshal(out, &created) != nil || created.ID == "" {
			return 0, fmt.Errorf("%s: POST %s: no container id in the answer %q (%v)", s.name, path, out, err)
		}
		if err := b.remove(ctx, b.sides[0], created.ID); err != nil {
			b.fixtures = append(b.fixtures, created.ID) // cleanup retries it
			return 0, err
		}
		return elapsed, nil
	})
	return latencyMetrics("create", samples, err, 50)
}

// measureRPS runs Concurrency clients sending /_ping back to back for a
// window per round and side.
func (b *bencher) measureRPS(ctx context.Context) []Metric {
	name := fmt.Sprintf("ping req/s %d clients", b.cfg.Concurrency)
	rounds := 2 * b.cfg.Rounds // short windows, so load bursts hit both sides
	window := max(b.cfg.Duration/time.Duration(rounds), 10*time.Millisecond)
	var count [2]int64
	var spent [2]time.Duration
	var done [2]int
	err := b.warm(ctx)
	if err == nil {
		// Fill both keep-alive pools before timing.
		for _, s := range b.sides {
			if _, _, err = b.burst(ctx, s, 100*time.Millisecond); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = b.interleave(ctx, rounds, func(ctx context.Context, _, i int) error {
			n, d, err := b.burst(ctx, b.sides[i], window)
			count[i] += n
			spent[i] += d
			done[i]++
			return err
		})
	}
	m := Metric{Name: name, Unit: "req/s", Samples: min(done[0], done[1])}
	if err != nil {
		m.Error = err.Error()
		return []Metric{m}
	}
	m.Direct = float64(count[0]) / spent[0].Seconds()
	m.Proxied = float64(count[1]) / spent[1].Seconds()
	return []Metric{m}
}

// burst sends /_ping from Concurrency goroutines until window has passed and
// returns the number of answers and the time it took.
func (b *bencher) burst(ctx context.Context, s *side, window time.Duration) (int64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, window+b.cfg.CallTimeout)
	defer cancel()
	var count atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(window)
	for range b.cfg.Concurrency {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if _, _, err := s.timed(ctx, http.MethodGet, "/_ping", nil); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				count.Add(1)
			}
		})
	}
	wg.Wait()
	return count.Load(), time.Since(start), firstErr
}

// download reads path to EOF on both sides, interleaved, and checks both
// sides got the same number of bytes: a proxy that cuts a stream short must
// not look fast.
func (b *bencher) download(ctx context.Context, name, path string) Metric {
	var tp throughput
	var want int64 = -1
	err := b.interleave(ctx, b.cfg.Rounds, func(ctx context.Context, _, i int) error {
		s := b.sides[i]
		cctx, cancel := b.callCtx(ctx)
		defer cancel()
		d, n, err := s.timed(cctx, http.MethodGet, s.api+path, nil)
		if err != nil {
			return err
		}
		if want < 0 {
			want = n
		} else if n != want {
			return fmt.Errorf("%s: GET %s returned %d bytes where the other side returned %d", s.name, path, n, want)
		}
		tp.add(i, n, d)
		return nil
	})
	m := tp.metric(name, err)
	if err == nil {
		m.Note = fmt.Sprintf("%.1f MB per transfer", float64(want)/1e6)
	}
	return m
}

// logLine is 100 bytes with its newline: dockerd frames every line on its
// own, which is what makes per-write flushing in a proxy expensive.
const logLine = "sockproxy bench log line: the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopq"

func (b *bencher) measureLogs(ctx context.Context) []Metric {
	size := b.cfg.LogMiB << 20
	cctx, cancel := b.callCtx(ctx)
	id, err := b.runContainer(cctx, "logs", []string{"sh", "-c", fmt.Sprintf("yes '%s' | head -c %d", logLine, size)}, true)
	cancel()
	if err != nil {
		return []Metric{{Name: "logs", Unit: "MB/s", Error: err.Error()}}
	}
	return []Metric{b.download(ctx, "logs", "/containers/"+id+"/logs?stdout=1&stderr=1&follow=0")}
}

func (b *bencher) measureArchive(ctx context.Context) []Metric {
	cctx, cancel := b.callCtx(ctx)
	id, err := b.runContainer(cctx, "archive", []string{"dd", "if=/dev/zero", "of=/big", "bs=1048576", "count=" + strconv.Itoa(b.cfg.ArchiveMiB)}, true)
	cancel()
	if err != nil {
		return []Metric{{Name: "archive", Unit: "MB/s", Error: err.Error()}}
	}
	return []Metric{b.download(ctx, "archive", "/containers/"+id+"/archive?path=/big")}
}

// measureExec creates an exec of `cat` on each side, starts it hijacked,
// writes ExecMiB, half-closes, and reads the echo back to EOF. The
// throughput is the bytes echoed over the time from the first write to EOF;
// the start (request to 101) is reported on its own.
func (b *bencher) measureExec(ctx context.Context) []Metric {
	size := int64(b.cfg.ExecMiB) << 20
	var tp throughput
	var starts [2][]time.Duration
	err := b.interleave(ctx, b.cfg.Rounds, func(ctx context.Context, _, i int) error {
		cctx, cancel := b.callCtx(ctx)
		defer cancel()
		start, d, err := b.execRoundTrip(cctx, b.sides[i], size)
		if err != nil {
			return err
		}
		starts[i] = append(starts[i], start)
		tp.add(i, size, d)
		return nil
	})
	m := tp.metric("exec round-trip", err)
	return append([]Metric{m}, latencyMetrics("exec start", starts, err, 50)...)
}

func (b *bencher) execRoundTrip(ctx context.Context, s *side, size int64) (startLatency, transfer time.Duration, err error) {
	// As the sandbox user, like an agent runtime: the hardened library
	// refuses execs as root (the fixture runs as root).
	body := []byte(`{"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":false,"User":"1000:1000","Cmd":["cat"]}`)
	out, _, err := s.do(ctx, http.MethodPost, s.api+"/containers/"+b.idle+"/exec", body)
	if err != nil {
		return 0, 0, err
	}
	var exec struct{ ID string }
	if err := json.Unmarshal(out, &exec); err != nil || exec.ID == "" {
		return 0, 0, fmt.Errorf("%s: exec create: no exec id in the answer %q", s.name, out)
	}
	t0 := time.Now()
	conn, br, err := s.hijack(ctx, s.api+"/exec/"+exec.ID+"/start", []byte(`{"Detach":false,"Tty":false}`))
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	startLatency = time.Since(t0)

	t1 := time.Now()
	writeErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for i := range buf {
			buf[i] = byte('a' + i%26)
		}
		var err error
		for left := size; left > 0 && err == nil; {
			n := min(left, int64(len(buf)))
			_, err = conn.Write(buf[:n])
			left -= n
		}
		if err == nil {
			err = conn.CloseWrite()
		}
		writeErr <- err
	}()
	stdout, stderr, err := readFrames(br)
	transfer = time.Since(t1)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: exec stream: reading after %d bytes: %w", s.name, stdout, err)
	}
	if err := <-writeErr; err != nil {
		return 0, 0, fmt.Errorf("%s: exec stream: writing stdin: %w", s.name, err)
	}
	if stdout != size || stderr != 0 {
		return 0, 0, fmt.Errorf("%s: exec of cat echoed %d bytes on stdout and %d on stderr for %d written; the stream was cut or mangled", s.name, stdout, stderr, size)
	}
	return startLatency, transfer, nil
}

// readFrames reads dockerd's multiplexed stream (8-byte header: stream id,
// three zero bytes, big-endian payload length) to EOF and counts payload
// bytes per stream.
func readFrames(r *bufio.Reader) (stdout, stderr int64, err error) {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return stdout, stderr, nil
			}
			return stdout, stderr, err
		}
		n := int64(binary.BigEndian.Uint32(hdr[4:]))
		if _, err := io.CopyN(io.Discard, r, n); err != nil {
			return stdout, stderr, err
		}
		switch hdr[0] {
		case 1:
			stdout += n
		case 2:
			stderr += n
		default:
			return stdout, stderr, fmt.Errorf("unexpected stream id %d in a frame header", hdr[0])
		}
	}
}

// measureRSS opens Streams GET /events streams through the proxy, makes
// events flow on them, and reads the proxy's memory from /proc.
func (b *bencher) measureRSS(ctx context.Context) []Metric {
	name := fmt.Sprintf("proxy RSS %d streams", b.cfg.Streams)
	fail := func(err error) []Metric { return []Metric{{Name: name, Unit: "MiB", Error: err.Error()}} }
	if b.cfg.ProxyPID <= 0 {
		return fail(errors.New("not measured: pass the proxy's process id (--proxy-pid)"))
	}
	startHWM, idleRSS, err := readProcMemory(b.cfg.ProxyPID)
	if err != nil {
		return fail(err)
	}
	// The peak so far is the proxy's start (compiling the policy and running
	// its tests), not serving: reset it, so that VmHWM is the peak while the
	// streams are opened and held. Without the right to, the figure keeps
	// the start and the note says so.
	hwmSince := "since the proxy started"
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", b.cfg.ProxyPID), []byte("5"), 0); err == nil {
		hwmSince = fmt.Sprintf("since just before opening them (peak before: %.1f MiB, at start)", startHWM)
	}
	ctx, cancel := b.callCtx(ctx)
	defer cancel()
	s := b.sides[1]

	var wg sync.WaitGroup
	var opened, gotEvent atomic.Int64
	errs := make(chan error, b.cfg.Streams)
	var conns []io.Closer
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	for range b.cfg.Streams {
		conn, err := dialUnix(ctx, s.socket)
		if err != nil {
			return fail(fmt.Errorf("proxied: opening stream %d of %d: %w", len(conns)+1, b.cfg.Streams, err))
		}
		conns = append(conns, conn)
		if _, err := fmt.Fprintf(conn, "GET %s/events HTTP/1.1\r\nHost: docker\r\n\r\n", s.api); err != nil {
			return fail(fmt.Errorf("proxied: writing events request: %w", err))
		}
		wg.Go(func() {
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				errs <- err
				return
			}
			if resp.StatusCode != http.StatusOK {
				errs <- newAPIError(s, http.MethodGet, s.api+"/events", resp)
				return
			}
			opened.Add(1)
			first := true
			buf := make([]byte, 4096)
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					return
				}
				if first {
					gotEvent.Add(1)
					first = false
				}
			}
		})
	}
	// Events make every stream carry data, and push out the response
	// headers of a proxy that holds them until the first body byte.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && gotEvent.Load() < int64(b.cfg.Streams) && ctx.Err() == nil && len(errs) == 0 {
		id, err := b.runContainer(ctx, "events", []string{"true"}, true)
		if err != nil {
			return fail(err)
		}
		if err := b.remove(ctx, b.sides[0], id); err != nil {
			return fail(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case err := <-errs:
		return fail(fmt.Errorf("proxied: events stream: %w", err))
	default:
	}
	if n := gotEvent.Load(); n < int64(b.cfg.Streams) {
		return fail(fmt.Errorf("proxied: only %d of %d events streams delivered an event within 30s (%d got headers)", n, b.cfg.Streams, opened.Load()))
	}
	hwm, rss, err := readProcMemory(b.cfg.ProxyPID)
	if err != nil {
		return fail(err)
	}
	return []Metric{
		{Name: name, Unit: "MiB", Proxied: hwm, Samples: 1,
			Note: fmt.Sprintf("VmHWM with the streams open, %s; VmRSS now %.1f MiB, before opening them %.1f MiB", hwmSince, rss, idleRSS)},
	}
}

// readProcMemory returns VmHWM (peak resident set) and VmRSS of pid in MiB.
func readProcMemory(pid int) (hwm, rss float64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the proxy's memory (is --proxy-pid %d right, and may we read its /proc?): %w", pid, err)
	}
	for line := range strings.Lines(string(data)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: unreadable %s line %q", pid, key, line)
		}
		if key == "VmHWM" {
			hwm = kb / 1024
		} else {
			rss = kb / 1024
		}
	}
	if hwm == 0 || rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmHWM/VmRSS lines", pid)
	}
	return hwm, rss, nil
}
