package audit

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Summary aggregates records for `sockproxy audit --summary`. It keeps
// counts only (memory grows with distinct reasons, callers and images, not
// with records).
type Summary struct {
	Records     int
	Unparseable int

	first, last []byte // raw times, compared as bytes (fixed-width UTC)
	decisions   map[string]int
	reasons     map[string]int
	callers     map[string]*tally
	images      map[string]*tally
	// refusals per time slot of width gran seconds; gran grows when the
	// map gets large, so a long log stays cheap.
	refusals map[int64]int
	gran     int64
	scratch  []byte
}

type tally struct{ records, refused int }

// maxSlots bounds the refusals-over-time map before it coarsens.
const maxSlots = 100000

// NewSummary returns an empty summary.
func NewSummary() *Summary {
	return &Summary{
		decisions: map[string]int{},
		reasons:   map[string]int{},
		callers:   map[string]*tally{},
		images:    map[string]*tally{},
		refusals:  map[int64]int{},
		gran:      1,
	}
}

func isRefusal(decision []byte) bool {
	return string(decision) == DecisionDeny || string(decision) == DecisionError || string(decision) == DecisionWouldDeny
}

func bump(m map[string]*tally, key []byte, refused bool) {
	t, ok := m[string(key)]
	if !ok {
		t = &tally{}
		m[string(key)] = t
	}
	t.records++
	if refused {
		t.refused++
	}
}

// Add counts one record.
func (s *Summary) Add(v *View) {
	s.Records++
	timeRaw := jsonStringBytes(v.get(fTime))
	if s.first == nil || bytes.Compare(timeRaw, s.first) < 0 {
		s.first = append(s.first[:0], timeRaw...)
	}
	if s.last == nil || bytes.Compare(timeRaw, s.last) > 0 {
		s.last = append(s.last[:0], timeRaw...)
	}
	decision := jsonStringBytes(v.get(fDecision))
	s.decisions[string(decision)]++
	refused := isRefusal(decision)

	uid, user, known := v.callerFields()
	key := s.scratch[:0]
	switch {
	case string(known) != "true":
		key = append(key, "unknown"...)
	case len(user) > 2:
		key = append(append(append(key, jsonStringBytes(user)...), '('), uid...)
		key = append(key, ')')
	default:
		key = append(append(key, "uid "...), uid...)
	}
	s.scratch = key
	bump(s.callers, key, refused)
	if img := jsonStringBytes(v.image()); len(img) > 0 {
		bump(s.images, img, refused)
	}
	if !refused {
		return
	}
	n := 0
	_ = scanArray(v.get(fReasons), func(e []byte) {
		s.reasons[string(jsonStringBytes(e))]++
		n++
	})
	if n == 0 {
		if msg := jsonStringBytes(v.get(fError)); len(msg) > 0 {
			s.reasons[string(msg)]++
		} else {
			s.reasons["(no reason given)"]++
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, string(timeRaw)); err == nil {
		s.refusals[t.Unix()/s.gran]++
		if len(s.refusals) > maxSlots {
			s.coarsen()
		}
	}
}

func (s *Summary) coarsen() {
	for len(s.refusals) > maxSlots {
		factor := int64(60)
		if s.gran >= 3600 {
			factor = 24
		}
		next := make(map[int64]int, len(s.refusals)/int(factor)+1)
		for slot, n := range s.refusals {
			next[slot/factor] += n
		}
		s.refusals, s.gran = next, s.gran*factor
	}
}

type count struct {
	key string
	n   int
	t   *tally
}

func topCounts(m map[string]int, top int) ([]count, int) {
	out := make([]count, 0, len(m))
	for k, n := range m {
		out = append(out, count{key: k, n: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].key < out[j].key
	})
	if top > 0 && len(out) > top {
		return out[:top], len(out) - top
	}
	return out, 0
}

func topTallies(m map[string]*tally, top int) ([]count, int) {
	flat := make(map[string]int, len(m))
	for k, t := range m {
		flat[k] = t.records
	}
	out, more := topCounts(flat, top)
	for i := range out {
		out[i].t = m[out[i].key]
	}
	return out, more
}

// group formats n with thousands separators.
func group(n int) string {
	s := strconv.Itoa(n)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// chartWidths are the slot widths the refusal chart may use, in seconds.
var chartWidths = []int64{1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400, 30 * 86400}

const chartRows = 24

// Print prints the summary, listing at most top entries per table.
func (s *Summary) Print(w io.Writer, top int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s records", group(s.Records))
	if s.Unparseable > 0 {
		fmt.Fprintf(&b, " (%s unparseable lines skipped)", group(s.Unparseable))
	}
	if s.Records > 0 {
		fmt.Fprintf(&b, ", %s .. %s", s.first, s.last)
	}
	b.WriteString("\n\nDecisions\n")
	for _, d := range []string{DecisionAllow, DecisionDeny, DecisionWouldDeny, DecisionError} {
		fmt.Fprintf(&b, "  %-12s %12s  %5.1f%%\n", d, group(s.decisions[d]), pct(s.decisions[d], s.Records))
	}
	others, _ := topCounts(s.decisions, 0)
	for _, c := range others {
		switch c.key {
		case DecisionAllow, DecisionDeny, DecisionWouldDeny, DecisionError:
		default:
			fmt.Fprintf(&b, "  %-12s %12s  %5.1f%%\n", c.key, group(c.n), pct(c.n, s.Records))
		}
	}

	b.WriteString("\nTop refusal reasons (deny, would-deny, error)\n")
	reasons, more := topCounts(s.reasons, top)
	if len(reasons) == 0 {
		b.WriteString("  (none)\n")
	}
	for _, c := range reasons {
		fmt.Fprintf(&b, "  %12s  %s\n", group(c.n), c.key)
	}
	if more > 0 {
		fmt.Fprintf(&b, "  (%d more)\n", more)
	}

	for _, table := range []struct {
		title string
		m     map[string]*tally
	}{{"Callers", s.callers}, {"Images", s.images}} {
		rows, more := topTallies(table.m, top)
		width := len(table.title)
		for _, c := range rows {
			width = max(width, len(c.key))
		}
		fmt.Fprintf(&b, "\n%-*s %12s %12s\n", width+2, table.title, "records", "refused")
		if len(rows) == 0 {
			b.WriteString("  (none)\n")
		}
		for _, c := range rows {
			fmt.Fprintf(&b, "  %-*s %12s %12s\n", width, c.key, group(c.t.records), group(c.t.refused))
		}
		if more > 0 {
			fmt.Fprintf(&b, "  (%d more)\n", more)
		}
	}
	s.writeChart(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

func pct(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}

// writeChart draws refusals per time slot as a bar chart, choosing the
// slot width so that the whole span fits in chartRows rows.
func (s *Summary) writeChart(b *strings.Builder) {
	if len(s.refusals) == 0 {
		b.WriteString("\nRefusals over time\n  (none)\n")
		return
	}
	lo, hi := int64(1<<62), int64(-1<<62)
	for slot := range s.refusals {
		lo, hi = min(lo, slot*s.gran), max(hi, slot*s.gran)
	}
	width := chartWidths[len(chartWidths)-1]
	for _, w := range chartWidths {
		if w%s.gran == 0 && (hi-lo)/w < chartRows {
			width = w
			break
		}
	}
	rows := map[int64]int{}
	for slot, n := range s.refusals {
		rows[slot*s.gran/width] += n
	}
	peak := 0
	for _, n := range rows {
		peak = max(peak, n)
	}
	layout := "2006-01-02 15:04Z"
	if width < 60 {
		layout = "2006-01-02 15:04:05Z"
	}
	fmt.Fprintf(b, "\nRefusals over time (per %s)\n", slotName(width))
	for row := lo / width; row <= hi/width; row++ {
		n := rows[row]
		bar := 0
		if peak > 0 {
			bar = (n*40 + peak - 1) / peak
		}
		fmt.Fprintf(b, "  %s  %-40s %s\n", time.Unix(row*width, 0).UTC().Format(layout), strings.Repeat("█", bar), group(n))
	}
}

func slotName(seconds int64) string {
	switch {
	case seconds%86400 == 0:
		return strconv.FormatInt(seconds/86400, 10) + "d"
	case seconds%3600 == 0:
		return strconv.FormatInt(seconds/3600, 10) + "h"
	case seconds%60 == 0:
		return strconv.FormatInt(seconds/60, 10) + "m"
	}
	return strconv.FormatInt(seconds, 10) + "s"
}

// Merge adds the counts of o to s.
func (s *Summary) Merge(o *Summary) {
	s.Records += o.Records
	s.Unparseable += o.Unparseable
	if o.first != nil && (s.first == nil || bytes.Compare(o.first, s.first) < 0) {
		s.first = append(s.first[:0], o.first...)
	}
	if o.last != nil && (s.last == nil || bytes.Compare(o.last, s.last) > 0) {
		s.last = append(s.last[:0], o.last...)
	}
	for k, n := range o.decisions {
		s.decisions[k] += n
	}
	for k, n := range o.reasons {
		s.reasons[k] += n
	}
	for _, pair := range [][2]map[string]*tally{{s.callers, o.callers}, {s.images, o.images}} {
		for k, t := range pair[1] {
			if mine, ok := pair[0][k]; ok {
				mine.records += t.records
				mine.refused += t.refused
			} else {
				pair[0][k] = &tally{t.records, t.refused}
			}
		}
	}
	gran := max(s.gran, o.gran)
	merged := make(map[int64]int, len(s.refusals))
	for _, src := range []*Summary{s, o} {
		for slot, n := range src.refusals {
			merged[slot*src.gran/gran] += n
		}
	}
	s.refusals, s.gran = merged, gran
	if len(s.refusals) > maxSlots {
		s.coarsen()
	}
}

// Summarize summarizes the records of the files that m selects, oldest
// file first, with workers goroutines parsing blocks of lines in parallel.
func Summarize(paths []string, m *Matcher, workers int) (*Summary, error) {
	workers = max(workers, 1)
	blocks := make(chan []byte, workers)
	free := make(chan []byte, 2*workers+1)
	results := make(chan *Summary, workers)
	for range workers {
		go func() {
			sum := NewSummary()
			var v View
			for orig := range blocks {
				block := orig
				for len(block) > 0 {
					line := block
					if i := bytes.IndexByte(block, '\n'); i >= 0 {
						line, block = block[:i], block[i+1:]
					} else {
						block = nil
					}
					if len(line) == 0 {
						continue
					}
					ok, err := m.Match(line, &v)
					if err != nil {
						sum.Unparseable++
					} else if ok {
						sum.Add(&v)
					}
				}
				select {
				case free <- orig[:0]:
				default:
				}
			}
			results <- sum
		}()
	}
	err := readBlocks(paths, blocks, free)
	close(blocks)
	total := NewSummary()
	for range workers {
		total.Merge(<-results)
	}
	return total, err
}

// blockSize is how much a reader hands a worker at once (a variable so
// that tests can force many blocks and lines longer than a block).
var blockSize = 4 << 20

// readBlocks sends the files' contents in blocks of whole lines.
func readBlocks(paths []string, blocks chan<- []byte, free chan []byte) error {
	files, err := sortByMtime(paths)
	if err != nil {
		return err
	}
	for _, p := range files {
		if err := withReader(p, func(r io.Reader) error {
			var carry []byte
			for {
				var buf []byte
				select {
				case buf = <-free:
				default:
					buf = make([]byte, 0, max(blockSize, 2*len(carry)))
				}
				if cap(buf) < 2*len(carry) {
					buf = make([]byte, 0, 2*len(carry))
				}
				buf = append(buf[:0], carry...)
				n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
				buf = buf[:len(buf)+n]
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					if len(buf) > 0 {
						blocks <- buf
					}
					return nil
				}
				if err != nil {
					return err
				}
				cut := bytes.LastIndexByte(buf, '\n')
				if cut < 0 { // a line longer than the buffer: read on with a bigger one
					carry = append([]byte(nil), buf...)
					continue
				}
				carry = append(carry[:0], buf[cut+1:]...)
				blocks <- buf[:cut+1]
			}
		}); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}
