package input

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Strict decoding. dockerd reads bodies with encoding/json, which matches
// keys case-insensitively (Unicode simple folding), lets the last of
// duplicate keys win, merges duplicate objects and ignores unknown keys. A
// proxy that reads the same bytes any other way can be walked around, so the
// body is first walked token by token against the shape of the moby type and
// refused when any of those rules could make a difference; what is left
// decodes the same under any reading.

// maxDepth bounds nesting like encoding/json does (it refuses beyond 10000).
const maxDepth = 10000

type shapeKind int

const (
	shapeFree   shapeKind = iota // any JSON: interface{}, json.Unmarshaler, encoding.TextUnmarshaler
	shapeScalar                  // string, number, bool
	shapeStruct
	shapeMap // free-form keys, typed values
	shapeList
)

// shape is the JSON shape of a Go type as encoding/json decodes into it.
type shape struct {
	kind   shapeKind
	fields map[string]*shapeField // exact JSON names (structs)
	folded map[string]string      // folded name -> exact name, to spot near misses
	order  []*shapeField          // encoding order
	elem   *shape                 // map values, list elements
	typ    reflect.Type
	// marshaler: encoded by its own MarshalJSON/MarshalText (the canonical
	// encoder defers to encoding/json for it).
	marshaler bool
}

type shapeField struct {
	name      string
	key       []byte // `"name":`, pre-encoded for the canonical encoder
	index     []int
	omitEmpty bool
	shape     *shape
}

var (
	shapeMu    sync.Mutex
	shapeCache = map[reflect.Type]*shape{} // under shapeMu, while building
	shapeDone  sync.Map                    // reflect.Type -> *shape, complete

	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	jsonMarshalerType   = reflect.TypeFor[json.Marshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
)

// shapeOf returns the cached shape of t.
func shapeOf(t reflect.Type) *shape {
	if s, ok := shapeDone.Load(t); ok {
		return s.(*shape)
	}
	shapeMu.Lock()
	defer shapeMu.Unlock()
	s := buildShape(t)
	for typ, sh := range shapeCache {
		shapeDone.Store(typ, sh)
	}
	return s
}

func buildShape(t reflect.Type) *shape {
	if s, ok := shapeCache[t]; ok {
		return s
	}
	s := &shape{typ: t}
	shapeCache[t] = s // before recursing: types may refer to themselves
	s.marshaler = t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface &&
		(t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType) ||
			reflect.PointerTo(t).Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType))
	if t.Kind() != reflect.Pointer && (reflect.PointerTo(t).Implements(jsonUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType)) {
		s.kind = shapeFree
		return s
	}
	switch t.Kind() {
	case reflect.Pointer:
		*s = *buildShape(t.Elem())
		s.typ, s.marshaler = t, false
	case reflect.Interface:
		s.kind = shapeFree
	case reflect.Struct:
		s.kind = shapeStruct
		s.fields = map[string]*shapeField{}
		s.folded = map[string]string{}
		for _, f := range structFields(t) {
			f.shape = buildShape(t.FieldByIndex(f.index).Type)
			f.key = append(appendString(nil, f.name), ':')
			s.fields[f.name] = f
			s.order = append(s.order, f)
			s.folded[foldKey(f.name)] = f.name
		}
	case reflect.Map:
		s.kind = shapeMap
		s.elem = buildShape(t.Elem())
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			s.kind = shapeScalar // []byte is a base64 string
			break
		}
		s.kind = shapeList
		s.elem = buildShape(t.Elem())
	default:
		s.kind = shapeScalar
	}
	return s
}

// foldKey is how near misses are recognised: any key equal to a field name
// under Unicode case folding, ignoring '-' and '_' (which json/v2's
// case-insensitive matching also ignores), counts as that field.
func foldKey(k string) string {
	var b strings.Builder
	for _, r := range k {
		if r == '-' || r == '_' {
			continue
		}
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// foldRune maps r to the smallest rune of its simple case-folding orbit, so
// that 'K', 'k' and KELVIN SIGN, or 'S', 's' and LONG S, fold alike.
func foldRune(r rune) rune {
	min := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < min {
			min = f
		}
	}
	return min
}

// structFields lists the JSON fields of struct type t the way encoding/json
// does: exported fields, json tags, embedded structs flattened, and among
// fields of one name the shallowest wins (a tagged one breaks a tie; a tie
// that cannot be broken hides the name).
func structFields(t reflect.Type) []*shapeField {
	type candidate struct {
		shapeField
		tagged bool
	}
	var all []candidate
	type level struct {
		typ   reflect.Type
		index []int
	}
	current, visited := []level{{typ: t}}, map[reflect.Type]bool{}
	for len(current) > 0 {
		var next []level
		var found []candidate
		for _, lv := range current {
			if visited[lv.typ] {
				continue
			}
			visited[lv.typ] = true
			for i := 0; i < lv.typ.NumField(); i++ {
				sf := lv.typ.Field(i)
				ft := sf.Type
				if sf.Anonymous {
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				index := append(append([]int(nil), lv.index...), i)
				if sf.Anonymous && name == "" && ft.Kind() == reflect.Struct {
					next = append(next, level{typ: ft, index: index})
					continue
				}
				if strings.Contains(opts, "string") {
					// No moby body type uses ",string"; refuse to guess its encoding.
					panic(fmt.Sprintf("input: field %s.%s uses the json ,string option", t, sf.Name))
				}
				tagged := name != ""
				if name == "" {
					name = sf.Name
				}
				found = append(found, candidate{shapeField: shapeField{name: name, index: index, omitEmpty: strings.Contains(","+opts+",", ",omitempty,")}, tagged: tagged})
			}
		}
		all = append(all, found...)
		current = next
	}
	// Dominance: fields are ordered by depth (breadth-first), so the first
	// occurrences of a name are the shallowest.
	byName := map[string][]candidate{}
	var names []string
	for _, c := range all {
		if _, ok := byName[c.name]; !ok {
			names = append(names, c.name)
		}
		byName[c.name] = append(byName[c.name], c)
	}
	var out []*shapeField
	for _, n := range names {
		cs := byName[n]
		depth := len(cs[0].index)
		var top []candidate
		for _, c := range cs {
			if len(c.index) == depth {
				top = append(top, c)
			}
		}
		if len(top) > 1 {
			var tagged []candidate
			for _, c := range top {
				if c.tagged {
					tagged = append(tagged, c)
				}
			}
			if len(tagged) != 1 {
				continue // ambiguous: encoding/json ignores the name
			}
			top = tagged
		}
		f := top[0].shapeField
		out = append(out, &f)
	}
	// encoding/json encodes in index order.
	sort.SliceStable(out, func(i, j int) bool { return indexLess(out[i].index, out[j].index) })
	return out
}

func indexLess(a, b []int) bool {
	for k := range a {
		if k >= len(b) {
			return false
		}
		if a[k] != b[k] {
			return a[k] < b[k]
		}
	}
	return len(a) < len(b)
}

// checkBody walks body against the shape of t and refuses what dockerd
// could read differently from a strict reader. With strictTop, unknown keys
// of the top-level object are refused too (they are not merely ignored by
// every dockerd version: 20.10 reads HostConfig fields there). The scanner
// only follows structure and keys: encoding/json, which decodes the body
// next, checks the syntax in full.
func checkBody(body []byte, t reflect.Type, strictTop bool) error {
	sc := scanner{buf: body, strictTop: strictTop}
	sc.skipSpace()
	if err := sc.value(shapeOf(t), 0, true); err != nil {
		return err
	}
	sc.skipSpace()
	// Only whitespace may follow the value (dockerd 20.10 ignores the rest;
	// newer versions refuse some of it but not a trailing '}' or ']').
	if sc.pos < len(body) {
		return fmt.Errorf("unexpected data after the JSON value at offset %d", sc.pos)
	}
	return nil
}

type scanner struct {
	buf       []byte
	pos       int
	strictTop bool
	keys      []string // keys leading to the current value, for messages
}

// path is where the scanner is, e.g. "HostConfig.Mounts" (lazily: only
// error messages use it).
type lazyPath struct{ keys []string }

func (p lazyPath) String() string { return strings.Join(p.keys, ".") }

func (s *scanner) path() lazyPath { return lazyPath{keys: s.keys} }

var errTruncated = errors.New("unexpected end of JSON")

func (s *scanner) skipSpace() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) syntax(what string) error {
	if s.pos >= len(s.buf) {
		return errTruncated
	}
	return fmt.Errorf("invalid JSON at offset %d: %s expected", s.pos, what)
}

func (s *scanner) value(sh *shape, depth int, top bool) error {
	if depth > maxDepth {
		return errors.New("JSON nested too deeply")
	}
	if s.pos >= len(s.buf) {
		return errTruncated
	}
	switch c := s.buf[s.pos]; c {
	case '{':
		s.pos++
		return s.object(sh, depth, top)
	case '[':
		s.pos++
		elem := freeShape
		if sh.kind == shapeList {
			elem = sh.elem
		}
		s.skipSpace()
		if s.pos < len(s.buf) && s.buf[s.pos] == ']' {
			s.pos++
			return nil
		}
		for i := 0; ; i++ {
			s.skipSpace()
			if err := s.value(elem, depth+1, false); err != nil {
				return err
			}
			s.skipSpace()
			if s.pos >= len(s.buf) {
				return errTruncated
			}
			switch s.buf[s.pos] {
			case ',':
				s.pos++
			case ']':
				s.pos++
				return nil
			default:
				return s.syntax("',' or ']'")
			}
		}
	case '"':
		_, err := s.str(false)
		return err
	default:
		// A literal or number: skip to the next delimiter.
		start := s.pos
		for s.pos < len(s.buf) {
			switch s.buf[s.pos] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				if s.pos == start {
					return s.syntax("a value")
				}
				return nil
			case '{', '[', '"':
				return s.syntax("a delimiter")
			}
			s.pos++
		}
		return nil
	}
}

// str scans a string at s.pos and returns its value as encoding/json
// decodes it (escapes resolved, invalid UTF-8 replaced).
func (s *scanner) str(decode bool) (string, error) {
	start := s.pos
	s.pos++
	simple := true
	for s.pos < len(s.buf) {
		c := s.buf[s.pos]
		switch {
		case c == '"':
			s.pos++
			raw := s.buf[start:s.pos]
			if !decode {
				return "", nil
			}
			if simple {
				return string(raw[1 : len(raw)-1]), nil
			}
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return "", fmt.Errorf("invalid JSON string at offset %d: %v", start, err)
			}
			return v, nil
		case c == '\\':
			simple = false
			s.pos += 2
			continue
		case c < 0x20:
			return "", fmt.Errorf("invalid JSON string at offset %d: control character", start)
		case c >= utf8.RuneSelf:
			simple = false
		}
		s.pos++
	}
	return "", errTruncated
}

var freeShape = &shape{kind: shapeFree}

func (s *scanner) object(sh *shape, depth int, top bool) error {
	path := s.path()
	var seen []string
	var seenSet map[string]bool
	s.skipSpace()
	if s.pos < len(s.buf) && s.buf[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.buf) || s.buf[s.pos] != '"' {
			return s.syntax("an object key")
		}
		key, err := s.str(true)
		if err != nil {
			return err
		}
		// Duplicate keys: the last wins and duplicate objects merge, so
		// readers can disagree; no real client sends them.
		if seenSet != nil {
			if seenSet[key] {
				return fmt.Errorf("duplicate key %q in %s", key, displayPath(path))
			}
			seenSet[key] = true
		} else {
			for _, k := range seen {
				if k == key {
					return fmt.Errorf("duplicate key %q in %s", key, displayPath(path))
				}
			}
			seen = append(seen, key)
			if len(seen) > 16 {
				seenSet = make(map[string]bool, 32)
				for _, k := range seen {
					seenSet[k] = true
				}
			}
		}
		next := freeShape
		switch sh.kind {
		case shapeStruct:
			if f, ok := sh.fields[key]; ok {
				next = f.shape
				break
			}
			if exact, ok := sh.folded[foldKey(key)]; ok {
				return fmt.Errorf("key %q in %s must be spelled %q: dockerd matches keys ignoring case, so any other spelling is refused", key, displayPath(path), exact)
			}
			if top && s.strictTop {
				return fmt.Errorf("unknown top-level key %q: refused because some dockerd versions read it (on dockerd < 27 HostConfig fields are accepted at the top level); put HostConfig fields inside \"HostConfig\"", key)
			}
			// Unknown deeper down: ignored by dockerd and dropped from the
			// canonical body; still scanned for duplicates and syntax.
		case shapeMap:
			next = sh.elem
		}
		s.skipSpace()
		if s.pos >= len(s.buf) || s.buf[s.pos] != ':' {
			return s.syntax("':'")
		}
		s.pos++
		s.skipSpace()
		s.keys = append(s.keys, key)
		if err := s.value(next, depth+1, false); err != nil {
			return err
		}
		s.keys = s.keys[:len(s.keys)-1]
		s.skipSpace()
		if s.pos >= len(s.buf) {
			return errTruncated
		}
		switch s.buf[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.syntax("',' or '}'")
		}
	}
}

func displayPath(p lazyPath) string {
	path := p.String()
	if path == "" {
		return "the top-level object"
	}
	return "\"" + path + "\""
}
