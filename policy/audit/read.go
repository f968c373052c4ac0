package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"time"
)

// View is one audit line with its top-level fields located lazily: the
// line is scanned only as far as the fields asked for, and nothing is
// decoded until read, which keeps reviewing a large log fast. The byte
// slices alias the line.
type View struct {
	Raw []byte

	vals [nFields][]byte
	pos  int  // where the scan of members resumes
	done bool // scanned to the end, or stopped at a syntax error
	err  error
}

type field int

const (
	fTime field = iota
	fRequestID
	fDecision
	fCaller
	fOperation
	fMethod
	fPath
	fReasons
	fFacts
	fStatus
	fError
	nFields
)

func fieldOf(key []byte) (field, bool) {
	switch string(key) {
	case "time":
		return fTime, true
	case "request_id":
		return fRequestID, true
	case "decision":
		return fDecision, true
	case "caller":
		return fCaller, true
	case "operation":
		return fOperation, true
	case "method":
		return fMethod, true
	case "path":
		return fPath, true
	case "reasons":
		return fReasons, true
	case "facts":
		return fFacts, true
	case "status":
		return fStatus, true
	case "error":
		return fError, true
	}
	return 0, false
}

var errSyntax = errors.New("not a JSON object")

// ParseView locates the time and decision of one audit line; other fields
// are located when first read.
func ParseView(line []byte) (*View, error) {
	v := &View{}
	if err := v.Reset(line); err != nil {
		return nil, err
	}
	return v, nil
}

// Reset makes v a view of line (reusing v saves an allocation per line).
func (v *View) Reset(line []byte) error {
	*v = View{Raw: line}
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' || !complete(line) {
		return errSyntax
	}
	v.pos = i + 1
	if j := skipWS(line, v.pos); j < len(line) && line[j] == '}' {
		v.done = true // {}
	}
	if v.get(fTime) == nil || v.get(fDecision) == nil {
		if v.err != nil {
			return v.err
		}
		return errors.New("not an audit record: no time or decision")
	}
	return nil
}

// complete rejects torn lines (a crash mid-write) without scanning the
// whole line: the writer's lines end with the error member; other
// encoders' lines at least end with the object's brace.
func complete(line []byte) bool {
	line = bytes.TrimRight(line, " \t\r\n")
	if bytes.HasPrefix(line, canonicalPrefix) {
		return bytes.HasSuffix(line, []byte(`"}`)) && bytes.LastIndex(line, []byte(`,"error":"`)) > 0
	}
	return bytes.HasSuffix(line, []byte("}"))
}

// get returns the raw value of f, scanning on until it is found.
func (v *View) get(f field) []byte {
	for v.vals[f] == nil && !v.done {
		v.step()
	}
	return v.vals[f]
}

// peek returns the key of the next member and where its value starts.
func (v *View) peek() (key []byte, val int, ok bool) {
	b := v.Raw
	i := skipWS(b, v.pos)
	if i >= len(b) || b[i] != '"' {
		v.done, v.err = true, errSyntax
		return nil, 0, false
	}
	end, err := skipString(b, i)
	if err != nil {
		v.done, v.err = true, errSyntax
		return nil, 0, false
	}
	key = b[i+1 : end-1]
	i = skipWS(b, end)
	if i >= len(b) || b[i] != ':' {
		v.done, v.err = true, errSyntax
		return nil, 0, false
	}
	return key, skipWS(b, i+1), true
}

// step scans one member.
func (v *View) step() {
	b := v.Raw
	fail := func() { v.done, v.err = true, errSyntax }
	key, i, ok := v.peek()
	if !ok {
		return
	}
	vend, err := skipValue(b, i)
	if err != nil {
		fail()
		return
	}
	if f, ok := fieldOf(key); ok && v.vals[f] == nil {
		v.vals[f] = b[i:vend]
	}
	i = skipWS(b, vend)
	switch {
	case i < len(b) && b[i] == ',':
		v.pos = i + 1
	case i < len(b) && b[i] == '}':
		v.done = true
	default:
		fail()
	}
}

// Time is the record's time (zero when unparseable).
func (v *View) Time() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, jsonString(v.get(fTime)))
	return t
}

// Decision is allow, deny, error or would-deny.
func (v *View) Decision() string { return jsonString(v.get(fDecision)) }

// Operation is the Engine API operation name.
func (v *View) Operation() string { return jsonString(v.get(fOperation)) }

// Method is the HTTP method.
func (v *View) Method() string { return jsonString(v.get(fMethod)) }

// Path is the request path.
func (v *View) Path() string { return jsonString(v.get(fPath)) }

// RequestID is the proxy's request id.
func (v *View) RequestID() string { return jsonString(v.get(fRequestID)) }

// Error is the record's error text.
func (v *View) Error() string { return jsonString(v.get(fError)) }

// Status is the HTTP status the client got.
func (v *View) Status() int {
	n, _ := strconv.Atoi(string(v.get(fStatus)))
	return n
}

// Reasons are the record's reasons.
func (v *View) Reasons() []string {
	var out []string
	_ = scanArray(v.get(fReasons), func(e []byte) { out = append(out, jsonString(e)) })
	return out
}

// Image is facts.image ("" when absent or not a string).
func (v *View) Image() string { return jsonString(v.image()) }

// image finds facts.image without skipping over the rest of the facts
// (mounts and networks can be long) when the facts were not needed yet.
func (v *View) image() []byte {
	facts := v.vals[fFacts]
	for facts == nil && !v.done {
		key, val, ok := v.peek()
		if !ok {
			return nil
		}
		if string(key) == "facts" {
			facts = v.Raw[val:]
			break
		}
		v.step()
	}
	var img []byte
	_ = scanObject(facts, func(key, val []byte) bool {
		if string(key) == "image" {
			img = val
			return true
		}
		return false
	})
	return img
}

// Caller returns the caller's uid, user name and whether it was known.
func (v *View) Caller() (uid int, user string, known bool) {
	uidRaw, userRaw, knownRaw := v.callerFields()
	uid, _ = strconv.Atoi(string(uidRaw))
	return uid, jsonString(userRaw), string(knownRaw) == "true"
}

func (v *View) callerFields() (uid, user, known []byte) {
	_ = scanObject(v.get(fCaller), func(key, val []byte) bool {
		switch string(key) {
		case "uid":
			uid = val
		case "user":
			user = val
		case "known":
			known = val
		}
		return uid != nil && user != nil && known != nil
	})
	return uid, user, known
}

// CallerLabel is how tables name the caller: "alice(1000)", "uid 1000" or
// "unknown".
func (v *View) CallerLabel() string {
	uid, user, known := v.Caller()
	switch {
	case !known:
		return "unknown"
	case user != "":
		return user + "(" + strconv.Itoa(uid) + ")"
	default:
		return "uid " + strconv.Itoa(uid)
	}
}

// Query selects records. Zero fields select everything.
type Query struct {
	Decisions []string // any of these decisions
	UID       int      // caller uid; -1 for any
	User      string   // caller user name
	Operation string   // glob over the operation name (path.Match syntax), e.g. "container.*"
	Image     string   // substring of facts.image
	Reason    string   // substring of a reason or of the error
	Since     time.Time
	Until     time.Time
}

// Matcher is a compiled Query.
type Matcher struct {
	q Query
	// needles are substrings a matching line must contain in the compact
	// form the writer produces; lines without them are rejected without
	// parsing. Each group needs one of its needles.
	needles   [][][]byte
	since     []byte // Since in TimeLayout, for byte comparison
	until     []byte
	uid       []byte
	decisions map[string]bool
	opLiteral bool
}

// canonicalPrefix starts every line the writer produces; only such lines
// are prefiltered by substring (another encoder may add spaces).
var canonicalPrefix = []byte(`{"time":"`)

// Compile checks q and prepares its prefilters.
func (q Query) Compile() (*Matcher, error) {
	m := &Matcher{q: q}
	if len(q.Decisions) > 0 {
		m.decisions = map[string]bool{}
		var group [][]byte
		for _, d := range q.Decisions {
			switch d {
			case DecisionAllow, DecisionDeny, DecisionError, DecisionWouldDeny:
			default:
				return nil, fmt.Errorf("unknown decision %q: use allow, deny, error or would-deny", d)
			}
			m.decisions[d] = true
			group = append(group, append([]byte(`"decision":`), appendString(nil, d)...))
		}
		m.needles = append(m.needles, group)
	}
	if q.Operation != "" {
		if _, err := path.Match(q.Operation, ""); err != nil {
			return nil, fmt.Errorf("bad --operation pattern %q: %v", q.Operation, err)
		}
		if !bytes.ContainsAny([]byte(q.Operation), `*?[\`) {
			m.opLiteral = true
			m.needles = append(m.needles, [][]byte{append([]byte(`"operation":`), appendString(nil, q.Operation)...)})
		}
	}
	if q.UID >= 0 {
		m.uid = strconv.AppendInt(nil, int64(q.UID), 10)
		m.needles = append(m.needles, [][]byte{append([]byte(`"uid":`), m.uid...)})
	}
	if q.User != "" {
		m.needles = append(m.needles, [][]byte{append([]byte(`"user":`), appendString(nil, q.User)...)})
	}
	for _, sub := range []string{q.Image, q.Reason} {
		if sub != "" {
			esc := appendString(nil, sub)
			m.needles = append(m.needles, [][]byte{esc[1 : len(esc)-1]})
		}
	}
	if !q.Since.IsZero() {
		m.since = q.Since.UTC().AppendFormat(nil, TimeLayout)
	}
	if !q.Until.IsZero() {
		m.until = q.Until.UTC().AppendFormat(nil, TimeLayout)
	}
	return m, nil
}

// Match makes v a view of line and reports whether it is selected. Lines
// that are not audit records return an error.
func (m *Matcher) Match(line []byte, v *View) (bool, error) {
	if bytes.HasPrefix(line, canonicalPrefix) {
		for _, group := range m.needles {
			found := false
			for _, n := range group {
				if bytes.Contains(line, n) {
					found = true
					break
				}
			}
			if !found {
				return false, nil
			}
		}
	}
	if err := v.Reset(line); err != nil {
		return false, err
	}
	return m.MatchView(v), nil
}

// MatchView reports whether a parsed record is selected.
func (m *Matcher) MatchView(v *View) bool {
	q := &m.q
	if m.decisions != nil && !m.decisions[v.Decision()] {
		return false
	}
	if (m.since != nil || m.until != nil) && !m.inRange(v.get(fTime)) {
		return false
	}
	if q.Operation != "" {
		op := v.Operation()
		if m.opLiteral {
			if op != q.Operation {
				return false
			}
		} else if ok, _ := path.Match(q.Operation, op); !ok {
			return false
		}
	}
	if m.uid != nil || q.User != "" {
		uid, user, _ := v.callerFields()
		if m.uid != nil && !bytes.Equal(uid, m.uid) {
			return false
		}
		if q.User != "" && jsonString(user) != q.User {
			return false
		}
	}
	if q.Image != "" && !bytes.Contains([]byte(v.Image()), []byte(q.Image)) {
		return false
	}
	if q.Reason != "" {
		found := bytes.Contains([]byte(v.Error()), []byte(q.Reason))
		for _, r := range v.Reasons() {
			found = found || bytes.Contains([]byte(r), []byte(q.Reason))
		}
		if !found {
			return false
		}
	}
	return true
}

// inRange compares the raw time: the writer's fixed-width UTC form compares
// as bytes; anything else is parsed.
func (m *Matcher) inRange(raw []byte) bool {
	inner := raw
	if len(raw) >= 2 {
		inner = raw[1 : len(raw)-1]
	}
	if len(inner) != len(TimeLayout)-5 || inner[len(inner)-1] != 'Z' {
		t, err := time.Parse(time.RFC3339Nano, jsonString(raw))
		if err != nil {
			return false
		}
		inner = t.UTC().AppendFormat(nil, TimeLayout)
	}
	if m.since != nil && bytes.Compare(inner, m.since) < 0 {
		return false
	}
	if m.until != nil && bytes.Compare(inner, m.until) >= 0 {
		return false
	}
	return true
}

// ReadFiles calls fn with every line of the files, oldest file first (by
// modification time: rotated files before the live one), decompressing
// gzip files. The line is only valid during the call.
func ReadFiles(paths []string, fn func(line []byte) error) error {
	files, err := sortByMtime(paths)
	if err != nil {
		return err
	}
	for _, p := range files {
		if err := withReader(p, func(r io.Reader) error {
			return eachLine(bufio.NewReaderSize(r, 1<<20), fn)
		}); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

// sortByMtime orders files oldest first (rotated files before the live one).
func sortByMtime(paths []string) ([]string, error) {
	type file struct {
		path  string
		mtime time.Time
	}
	files := make([]file, 0, len(paths))
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		files = append(files, file{p, st.ModTime()})
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].mtime.Before(files[j].mtime) })
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.path
	}
	return out, nil
}

// withReader calls fn with the file's contents, decompressed when gzipped.
func withReader(p string, fn func(r io.Reader) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		return fn(zr)
	}
	return fn(br)
}

// eachLine calls fn for each non-empty line, including a last one without
// a newline.
func eachLine(br *bufio.Reader, fn func(line []byte) error) error {
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, chunk...)
			continue
		}
		line := chunk
		if long != nil {
			long = append(long, chunk...)
			line = long
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) > 0 {
			if ferr := fn(line); ferr != nil {
				return ferr
			}
		}
		long = long[:0:0]
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Follow calls fn with each line appended to the file at p until ctx is
// done, like tail -F: it starts at the end (or the beginning, with
// fromStart), follows the path to a new file when the log is rotated
// (after reading what was left in the old one), and starts over when the
// file is truncated. A last line without its newline waits for it.
func Follow(ctx context.Context, p string, fromStart bool, poll time.Duration, fn func(line []byte) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	var offset int64
	if !fromStart {
		if offset, err = f.Seek(0, io.SeekEnd); err != nil {
			return err
		}
	}
	buf := make([]byte, 256<<10)
	var partial []byte
	drain := func() error {
		for {
			n, err := f.Read(buf)
			offset += int64(n)
			data := buf[:n]
			for len(data) > 0 {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					partial = append(partial, data...)
					break
				}
				line := data[:i]
				if len(partial) > 0 {
					partial = append(partial, line...)
					line = partial
				}
				if len(line) > 0 {
					if err := fn(line); err != nil {
						return err
					}
				}
				partial = partial[:0]
				data = data[i+1:]
			}
			if err == io.EOF || n == 0 {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	for {
		if err := drain(); err != nil {
			return err
		}
		if st, err := os.Stat(p); err == nil { // a missing path: mid-rotation, look again later
			cur, err := f.Stat()
			if err != nil {
				return err
			}
			switch {
			case !os.SameFile(st, cur):
				if err := drain(); err != nil { // what was written before the rotation
					return err
				}
				next, err := os.Open(p)
				if err != nil {
					break
				}
				f.Close()
				f, offset, partial = next, 0, partial[:0]
				continue
			case st.Size() < offset:
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					return err
				}
				offset, partial = 0, partial[:0]
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// jsonString decodes a raw JSON string value ("" for anything else).
func jsonString(raw []byte) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner)
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// jsonStringBytes is jsonString without allocating when there is nothing
// to unescape.
func jsonStringBytes(raw []byte) []byte {
	if len(raw) < 2 || raw[0] != '"' {
		return nil
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner
	}
	return []byte(jsonString(raw))
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	// A plain loop beats bytes.IndexByte here: most strings are short.
	for i++; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1, nil
		case '\\':
			i++
		}
	}
	return 0, errSyntax
}

// skipValue returns the index after the JSON value starting at b[i]. It
// checks structure only as far as needed to find the end.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errSyntax
	default:
		start := i
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\r' && b[i] != '\n' {
			i++
		}
		if i == start {
			return 0, errSyntax
		}
		return i, nil
	}
}

// scanObject calls fn with each member of the object at the start of b
// (raw key without quotes, raw value) until fn returns true.
func scanObject(b []byte, fn func(key, val []byte) bool) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errSyntax
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errSyntax
		}
		end, err := skipString(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : end-1]
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return errSyntax
		}
		i = skipWS(b, i+1)
		vend, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if fn(key, b[i:vend]) {
			return nil
		}
		i = skipWS(b, vend)
		if i >= len(b) {
			return errSyntax
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return nil
		default:
			return errSyntax
		}
	}
}

// scanArray calls fn with each element of the array b.
func scanArray(b []byte, fn func(elem []byte)) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '[' {
		return errSyntax
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for {
		end, err := skipValue(b, i)
		if err != nil {
			return err
		}
		fn(b[i:end])
		i = skipWS(b, end)
		if i >= len(b) {
			return errSyntax
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case ']':
			return nil
		default:
			return errSyntax
		}
	}
}
