package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/sockproxy/sockproxy/policy/input"
)

// keyTerms are shared, never modified terms for the object keys every input
// repeats: the JSON field names of the policy input and of the moby request
// types. Built once from the types, so the set is bounded (keys that come
// from clients, such as label names, are never cached).
var keyTerms = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			switch {
			case name == "-":
				continue
			case f.Anonymous && name == "":
				walk(f.Type)
				continue
			case name == "":
				name = f.Name
			}
			if f.IsExported() {
				m[name] = ast.StringTerm(name)
				walk(f.Type)
			}
		}
	}
	for _, v := range []any{input.Input{}, container.CreateRequest{}, container.ExecOptions{}, container.UpdateConfig{},
		network.CreateRequest{}, network.ConnectOptions{}, network.DisconnectOptions{}, volume.CreateOptions{}} {
		walk(reflect.TypeOf(v))
	}
	return m
}()

func keyTerm(k string) *ast.Term {
	if t, ok := keyTerms[k]; ok {
		return t
	}
	return ast.StringTerm(k)
}

// maxJSONDepth bounds nesting; canonical bodies of moby types are shallow.
const maxJSONDepth = 200

// parseJSONPaths is parseJSON keeping only the members of the top-level
// object the trie names (values elsewhere are checked and skipped without
// being built). A nil trie keeps everything.
func parseJSONPaths(raw []byte, want pathTrie) (ast.Value, error) {
	if want == nil {
		return parseJSON(raw)
	}
	p := jsonParser{buf: raw, stack: make([][2]*ast.Term, 0, 16)}
	p.space()
	t, err := p.project(want, 0)
	if err != nil {
		return nil, fmt.Errorf("policy input body: %w", err)
	}
	p.space()
	if p.pos != len(p.buf) {
		return nil, fmt.Errorf("policy input body: data after the JSON value at offset %d", p.pos)
	}
	return t.Value, nil
}

// project reads a value keeping only the wanted members of objects.
func (p *jsonParser) project(want pathTrie, depth int) (*ast.Term, error) {
	if p.pos >= len(p.buf) || p.buf[p.pos] != '{' {
		// Not an object: paths below it read nothing; the value is small.
		return p.value(depth)
	}
	p.pos++
	base := len(p.stack)
	p.space()
	if p.pos < len(p.buf) && p.buf[p.pos] == '}' {
		p.pos++
		return ast.NewTerm(ast.NewObject()), nil
	}
	for {
		p.space()
		if p.pos >= len(p.buf) || p.buf[p.pos] != '"' {
			return nil, p.errorf("object key expected")
		}
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.buf) || p.buf[p.pos] != ':' {
			return nil, p.errorf("':' expected")
		}
		p.pos++
		p.space()
		sub, wanted := want[string(k)] // no copy of the key for the lookup
		switch {
		case wanted && sub == nil:
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			p.stack = append(p.stack, [2]*ast.Term{keyTerm(string(k)), v})
		case wanted:
			v, err := p.project(sub, depth+1)
			if err != nil {
				return nil, err
			}
			p.stack = append(p.stack, [2]*ast.Term{keyTerm(string(k)), v})
		default:
			if err := p.skip(depth + 1); err != nil {
				return nil, err
			}
		}
		p.space()
		if p.pos >= len(p.buf) {
			return nil, p.errorf("unexpected end in object")
		}
		if p.buf[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.buf[p.pos] != '}' {
			return nil, p.errorf("',' or '}' expected")
		}
		p.pos++
		break
	}
	members := p.stack[base:]
	obj := ast.NewObjectWithCapacity(len(members))
	for _, kv := range members {
		obj.Insert(kv[0], kv[1])
	}
	p.stack = p.stack[:base]
	return ast.NewTerm(obj), nil
}

// skip passes over one value, checking its syntax, building nothing.
func (p *jsonParser) skip(depth int) error {
	if depth > maxJSONDepth {
		return p.errorf("nested deeper than %d", maxJSONDepth)
	}
	if p.pos >= len(p.buf) {
		return p.errorf("unexpected end")
	}
	switch c := p.buf[p.pos]; {
	case c == '{' || c == '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		p.pos++
		p.space()
		if p.pos < len(p.buf) && p.buf[p.pos] == closing {
			p.pos++
			return nil
		}
		for {
			p.space()
			if c == '{' {
				if p.pos >= len(p.buf) || p.buf[p.pos] != '"' {
					return p.errorf("object key expected")
				}
				if err := p.skipString(); err != nil {
					return err
				}
				p.space()
				if p.pos >= len(p.buf) || p.buf[p.pos] != ':' {
					return p.errorf("':' expected")
				}
				p.pos++
				p.space()
			}
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			p.space()
			if p.pos >= len(p.buf) {
				return p.errorf("unexpected end")
			}
			if p.buf[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.buf[p.pos] != closing {
				return p.errorf("',' or %q expected", closing)
			}
			p.pos++
			return nil
		}
	case c == '"':
		return p.skipString()
	default:
		_, err := p.value(depth) // literals and numbers allocate nothing or little
		return err
	}
}

func (p *jsonParser) skipString() error {
	p.pos++
	for p.pos < len(p.buf) {
		switch c := p.buf[p.pos]; {
		case c == '\\':
			p.pos += 2
		case c == '"':
			p.pos++
			return nil
		case c < 0x20:
			return p.errorf("control character in string")
		default:
			p.pos++
		}
	}
	return p.errorf("unterminated string")
}

// parseJSON turns a JSON document into an AST value in one pass, without
// the intermediate Go values of encoding/json: null, booleans, zero and
// empty strings (most of a canonical body) are shared interned terms.
func parseJSON(raw []byte) (ast.Value, error) {
	p := jsonParser{buf: raw, stack: make([][2]*ast.Term, 0, 64)}
	p.space()
	t, err := p.value(0)
	if err != nil {
		return nil, fmt.Errorf("policy input body: %w", err)
	}
	p.space()
	if p.pos != len(p.buf) {
		return nil, fmt.Errorf("policy input body: data after the JSON value at offset %d", p.pos)
	}
	return t.Value, nil
}

type jsonParser struct {
	buf []byte
	pos int
	// stack holds the members of the objects and arrays being read, so
	// that each is allocated once at its final size.
	stack [][2]*ast.Term
}

func (p *jsonParser) space() {
	for p.pos < len(p.buf) {
		switch p.buf[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) literal(word string, t *ast.Term) (*ast.Term, error) {
	if !bytes.HasPrefix(p.buf[p.pos:], []byte(word)) {
		return nil, p.errorf("invalid literal")
	}
	p.pos += len(word)
	return t, nil
}

func (p *jsonParser) value(depth int) (*ast.Term, error) {
	if depth > maxJSONDepth {
		return nil, p.errorf("nested deeper than %d", maxJSONDepth)
	}
	if p.pos >= len(p.buf) {
		return nil, p.errorf("unexpected end")
	}
	switch c := p.buf[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		if s == "" {
			return ast.InternedTerm(""), nil
		}
		return ast.StringTerm(s), nil
	case c == 't':
		return p.literal("true", ast.InternedTerm(true))
	case c == 'f':
		return p.literal("false", ast.InternedTerm(false))
	case c == 'n':
		return p.literal("null", ast.InternedNullTerm)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return nil, p.errorf("unexpected character %q", c)
	}
}

func (p *jsonParser) object(depth int) (*ast.Term, error) {
	p.pos++ // {
	base := len(p.stack)
	p.space()
	if p.pos < len(p.buf) && p.buf[p.pos] == '}' {
		p.pos++
		return ast.NewTerm(ast.NewObject()), nil
	}
	for {
		p.space()
		if p.pos >= len(p.buf) || p.buf[p.pos] != '"' {
			return nil, p.errorf("object key expected")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.buf) || p.buf[p.pos] != ':' {
			return nil, p.errorf("':' expected")
		}
		p.pos++
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.stack = append(p.stack, [2]*ast.Term{keyTerm(k), v})
		p.space()
		if p.pos >= len(p.buf) {
			return nil, p.errorf("unexpected end in object")
		}
		switch p.buf[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			members := p.stack[base:]
			obj := ast.NewObjectWithCapacity(len(members))
			for _, kv := range members {
				obj.Insert(kv[0], kv[1]) // a repeated key: the last wins, as in encoding/json
			}
			p.stack = p.stack[:base]
			return ast.NewTerm(obj), nil
		default:
			return nil, p.errorf("',' or '}' expected")
		}
	}
}

func (p *jsonParser) array(depth int) (*ast.Term, error) {
	p.pos++ // [
	base := len(p.stack)
	p.space()
	if p.pos < len(p.buf) && p.buf[p.pos] == ']' {
		p.pos++
		return ast.ArrayTerm(), nil
	}
	for {
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.stack = append(p.stack, [2]*ast.Term{v})
		p.space()
		if p.pos >= len(p.buf) {
			return nil, p.errorf("unexpected end in array")
		}
		switch p.buf[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			members := p.stack[base:]
			elems := make([]*ast.Term, len(members))
			for i, m := range members {
				elems[i] = m[0]
			}
			p.stack = p.stack[:base]
			return ast.ArrayTerm(elems...), nil
		default:
			return nil, p.errorf("',' or ']' expected")
		}
	}
}

// key reads an object key for a lookup: the bytes of the buffer when it has
// no escapes and is valid UTF-8 (as keys of canonical bodies are), else the
// decoded string; only keys that are kept are copied.
func (p *jsonParser) key() ([]byte, error) {
	end := p.pos + 1
	for end < len(p.buf) && p.buf[end] != '"' && p.buf[end] != '\\' && p.buf[end] >= 0x20 {
		end++
	}
	if end < len(p.buf) && p.buf[end] == '"' {
		if k := p.buf[p.pos+1 : end]; utf8.Valid(k) {
			p.pos = end + 1
			return k, nil
		}
	}
	s, err := p.str() // escapes and invalid UTF-8 decoded, or the error
	return []byte(s), err
}

// str reads a string; escapes (rare in bodies) are decoded by encoding/json.
func (p *jsonParser) str() (string, error) {
	start := p.pos
	p.pos++ // opening quote
	escaped := false
	for p.pos < len(p.buf) {
		switch c := p.buf[p.pos]; {
		case c == '\\':
			escaped = true
			p.pos += 2
		case c == '"':
			p.pos++
			if s := p.buf[start+1 : p.pos-1]; !escaped && utf8.Valid(s) {
				return string(s), nil
			}
			// Escapes and invalid UTF-8 (replaced by U+FFFD) as encoding/json reads them.
			var s string
			if err := json.Unmarshal(p.buf[start:p.pos], &s); err != nil {
				return "", p.errorf("invalid string: %v", err)
			}
			return s, nil
		case c < 0x20:
			return "", p.errorf("control character in string")
		default:
			p.pos++
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *jsonParser) number() (*ast.Term, error) {
	start := p.pos
	for p.pos < len(p.buf) {
		c := p.buf[p.pos]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			p.pos++
			continue
		}
		break
	}
	text := p.buf[start:p.pos]
	if t := ast.InternedIntNumberTermFromString(string(text)); t != nil {
		return t, nil
	}
	if !json.Valid(text) {
		return nil, p.errorf("invalid number %q", text)
	}
	return ast.NumberTerm(json.Number(text)), nil
}
