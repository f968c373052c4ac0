package audit

import (
	"encoding/json"
	"math"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sockproxy/sockproxy/proxy"
)

// Decision values of a record.
const (
	DecisionAllow     = "allow"
	DecisionDeny      = "deny"
	DecisionError     = "error"
	DecisionWouldDeny = "would-deny"
)

// TimeLayout is the layout of a record's time: RFC 3339 in UTC with a fixed
// nine-digit fraction, so that times compare correctly as strings.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Record is one audit line, field for field (docs/audit.md). The writer
// encodes it by hand for speed; this type is the schema for readers, and
// a test keeps the two in step.
type Record struct {
	Time           string         `json:"time"`
	RequestID      string         `json:"request_id"`
	Decision       string         `json:"decision"`
	Mode           string         `json:"mode"`
	Caller         RecordCaller   `json:"caller"`
	Operation      string         `json:"operation"`
	Method         string         `json:"method"`
	Path           string         `json:"path"`
	APIVersion     string         `json:"api_version"`
	Reasons        []string       `json:"reasons"`
	Warnings       []string       `json:"warnings"`
	PolicyRevision string         `json:"policy_revision"`
	Facts          map[string]any `json:"facts"`
	BodySHA256     string         `json:"body_sha256"`
	Status         int            `json:"status"`
	DecisionUS     int64          `json:"decision_us"`
	TotalUS        int64          `json:"total_us"`
	Error          string         `json:"error"`
}

// RecordCaller is the caller of a record.
type RecordCaller struct {
	Known  bool     `json:"known"`
	UID    int      `json:"uid"`
	GID    int      `json:"gid"`
	PID    int      `json:"pid"`
	User   string   `json:"user"`
	Group  string   `json:"group"`
	Groups []string `json:"groups"`
	Exe    string   `json:"exe"`
}

// decisionOf maps the proxy's outcome and mode to the record's decision.
func decisionOf(ev *proxy.AuditEvent) string {
	switch ev.Outcome {
	case DecisionAllow:
		if ev.Mode == "dry-run" && !ev.Decision.Allow {
			return DecisionWouldDeny
		}
		return DecisionAllow
	case "":
		if ev.Decision.Allow {
			return DecisionAllow
		}
		return DecisionDeny
	default: // deny, error, would-deny, or a value a newer proxy invented
		return ev.Outcome
	}
}

// callerExe reads the caller's executable. It is read when the record is
// written, so a caller that exited gives ""; it is a hint for the reader,
// not an identity. One link is read per process per exeTTL at most: a
// client sending many requests costs no system call per record (a pid
// reused within the TTL, which takes the whole pid space wrapping around,
// would be named by the former program).
func callerExe(c *proxy.Caller, now time.Time) string {
	if !c.Known || c.PID <= 0 {
		return ""
	}
	return exes.lookup(c.PID, now)
}

const (
	exeTTL       = time.Second
	exeCacheSize = 256 // distinct pids remembered; beyond, start over
)

var exes = exeCache{m: map[int]exeEntry{}}

type exeCache struct {
	mu sync.Mutex
	m  map[int]exeEntry
}

type exeEntry struct {
	exe string
	at  time.Time
}

func (c *exeCache) lookup(pid int, now time.Time) string {
	c.mu.Lock()
	e, ok := c.m[pid]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < exeTTL && now.Sub(e.at) >= 0 {
		return e.exe
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		exe = ""
	}
	c.mu.Lock()
	if len(c.m) >= exeCacheSize {
		clear(c.m)
	}
	c.m[pid] = exeEntry{exe: exe, at: now}
	c.mu.Unlock()
	return exe
}

// appendRecord appends ev as one JSON line (with its newline) to b. Every
// field is always present, in the order of Record, so readers see a stable
// shape and the review command can prefilter lines by substring.
func appendRecord(b []byte, ev *proxy.AuditEvent, exe string, now time.Time) []byte {
	req := ev.Request
	if req == nil {
		req = &proxy.Request{}
	}
	t := ev.Start
	if t.IsZero() {
		t = now
	}
	mode := ev.Mode
	if mode == "" {
		mode = "enforce"
	}
	b = append(b, `{"time":"`...)
	b = t.UTC().AppendFormat(b, TimeLayout)
	b = append(b, `","request_id":`...)
	b = appendString(b, req.ID)
	b = append(b, `,"decision":`...)
	b = appendString(b, decisionOf(ev))
	b = append(b, `,"mode":`...)
	b = appendString(b, mode)

	c := &req.Caller
	b = append(b, `,"caller":{"known":`...)
	b = strconv.AppendBool(b, c.Known)
	b = append(b, `,"uid":`...)
	b = strconv.AppendInt(b, int64(c.UID), 10)
	b = append(b, `,"gid":`...)
	b = strconv.AppendInt(b, int64(c.GID), 10)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(c.PID), 10)
	b = append(b, `,"user":`...)
	b = appendString(b, c.User)
	b = append(b, `,"group":`...)
	b = appendString(b, c.Group)
	b = append(b, `,"groups":`...)
	b = appendStrings(b, c.Groups)
	b = append(b, `,"exe":`...)
	b = appendString(b, exe)
	b = append(b, '}')

	op := &req.Operation
	b = append(b, `,"operation":`...)
	b = appendString(b, op.Name)
	b = append(b, `,"method":`...)
	b = appendString(b, op.Method)
	b = append(b, `,"path":`...)
	b = appendString(b, op.Path)
	b = append(b, `,"api_version":`...)
	b = appendString(b, op.APIVersion)
	b = append(b, `,"reasons":`...)
	b = appendStrings(b, ev.Decision.Reasons)
	b = append(b, `,"warnings":`...)
	b = appendStrings(b, ev.Decision.Warnings)
	b = append(b, `,"policy_revision":`...)
	b = appendString(b, ev.Decision.Revision)
	b = append(b, `,"facts":`...)
	if ev.Decision.Facts == nil {
		b = append(b, "{}"...)
	} else {
		b = appendMap(b, ev.Decision.Facts)
	}
	b = append(b, `,"body_sha256":`...)
	b = appendString(b, ev.BodySHA256)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(ev.Status), 10)
	b = append(b, `,"decision_us":`...)
	b = strconv.AppendInt(b, ev.DecisionTime.Microseconds(), 10)
	b = append(b, `,"total_us":`...)
	b = strconv.AppendInt(b, ev.TotalTime.Microseconds(), 10)
	b = append(b, `,"error":`...)
	b = appendString(b, ev.Error)
	return append(b, "}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. It escapes per character (never
// depending on neighbours), so the escaped form of a substring is a
// substring of the escaped form: the review command relies on that.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript readers.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendMap appends m with its keys sorted, like encoding/json.
func appendMap(b []byte, m map[string]any) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendAny(b, m[k])
	}
	return append(b, '}')
}

// appendAny encodes the value shapes the policy engine produces (JSON-like
// trees of maps, slices, strings, numbers) without reflection, and falls back
// to encoding/json for anything else.
func appendAny(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendString(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case int32:
		return strconv.AppendInt(b, int64(v), 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case float64:
		return appendFloat(b, v)
	case json.Number:
		if _, err := strconv.ParseFloat(string(v), 64); err == nil {
			return append(b, v...)
		}
		return appendString(b, string(v))
	case []string:
		return appendStrings(b, v)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAny(b, e)
		}
		return append(b, ']')
	case map[string]any:
		return appendMap(b, v)
	case map[string]string:
		m := make(map[string]any, len(v))
		for k, s := range v {
			m[k] = s
		}
		return appendMap(b, m)
	}
	enc, err := json.Marshal(v)
	if err != nil {
		// Keep the line valid and say why the fact is missing.
		return appendString(b, "unencodable fact: "+err.Error())
	}
	return append(b, enc...)
}

func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendString(b, strconv.FormatFloat(f, 'g', -1, 64))
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.AppendInt(b, int64(f), 10)
	}
	abs := math.Abs(f)
	if abs < 1e-6 || abs >= 1e21 {
		return strconv.AppendFloat(b, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}
