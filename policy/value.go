package policy

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/sockproxy/sockproxy/policy/input"
)

// inputValue builds the policy input as an AST value directly from the Go
// structs, instead of marshalling them to JSON and parsing that back: the
// conversion is a good part of a decision's cost. It follows the structs'
// json tags (names, omitempty), so it is the document json.Marshal(in)
// gives, except that absent lists and maps are [] and {} (never null), so
// that policies can iterate and count them without guards. body is the
// canonical JSON of in.Body when the caller has it (nil otherwise); want
// names the parts of the body the policy reads (nil: all of it).
func inputValue(in *input.Input, body []byte, want pathTrie) (ast.Value, error) {
	bodyVal, err := bodyValue(in.Body, body, want)
	if err != nil {
		return nil, err
	}
	obj, err := structValue(reflect.ValueOf(in).Elem(), "body")
	if err != nil {
		return nil, fmt.Errorf("policy input: %w", err)
	}
	obj.Insert(keyTerm("body"), ast.NewTerm(bodyVal))
	return obj, nil
}

// bodyValue converts the decoded body. Generic JSON values convert natively;
// typed values (moby structs) go through their canonical JSON.
func bodyValue(body any, canonical []byte, want pathTrie) (ast.Value, error) {
	switch b := body.(type) {
	case nil:
		return ast.Null{}, nil
	case json.RawMessage:
		// input.Build's body is the canonical JSON itself.
		return parseJSONPaths(b, want)
	case map[string]any, []any, string, bool, json.Number:
		return ast.InterfaceToValue(b)
	}
	if canonical == nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("policy input body: %w", err)
		}
		canonical = raw
	}
	return parseJSONPaths(canonical, want)
}

// field is one JSON member of a struct type.
type field struct {
	index     []int
	name      string
	key       *ast.Term
	omitEmpty bool
}

var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf lists a struct's JSON members as encoding/json would (embedded
// structs without a name are flattened).
func fieldsOf(t reflect.Type) []field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	var out []field
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(append([]int(nil), index...), i)
			if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, idx)
				continue
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			out = append(out, field{index: idx, name: name, key: keyTerm(name), omitEmpty: strings.Contains(","+opts+",", ",omitempty,")})
		}
	}
	walk(t, nil)
	fieldCache.Store(t, out)
	return out
}

func structValue(v reflect.Value, skip string) (ast.Object, error) {
	fields := fieldsOf(v.Type())
	obj := ast.NewObjectWithCapacity(len(fields))
	for _, f := range fields {
		if f.name == skip {
			continue
		}
		fv := v.FieldByIndex(f.index)
		if f.omitEmpty && isEmpty(fv) {
			continue
		}
		t, err := termOf(fv)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		obj.Insert(f.key, t)
	}
	return obj, nil
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	jsonNumber    = reflect.TypeFor[json.Number]()
)

// termOf converts one value. Zero values share OPA's interned terms (most
// facts are false, "" or empty).
func termOf(v reflect.Value) (*ast.Term, error) {
	t := v.Type()
	if t == jsonNumber {
		return ast.NumberTerm(json.Number(v.String())), nil
	}
	if t.Kind() != reflect.Interface && (t.Implements(jsonMarshaler) || t.Implements(textMarshaler)) {
		// Not in the schema today; keep whatever encoding/json would say.
		raw, err := json.Marshal(v.Interface())
		if err != nil {
			return nil, err
		}
		val, err := parseJSON(raw)
		if err != nil {
			return nil, err
		}
		return ast.NewTerm(val), nil
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return ast.InternedNullTerm, nil
		}
		return termOf(v.Elem())
	case reflect.String:
		return ast.InternedTerm(v.String()), nil
	case reflect.Bool:
		return ast.InternedTerm(v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return ast.InternedTerm(int(v.Int())), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return ast.NumberTerm(json.Number(strconv.FormatUint(v.Uint(), 10))), nil
	case reflect.Float32, reflect.Float64:
		return ast.NumberTerm(json.Number(strconv.FormatFloat(v.Float(), 'g', -1, t.Bits()))), nil
	case reflect.Struct:
		obj, err := structValue(v, "")
		if err != nil {
			return nil, err
		}
		return ast.NewTerm(obj), nil
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			return ast.InternedEmptyArray, nil
		}
		elems := make([]*ast.Term, v.Len())
		for i := range elems {
			e, err := termOf(v.Index(i))
			if err != nil {
				return nil, err
			}
			elems[i] = e
		}
		return ast.ArrayTerm(elems...), nil
	case reflect.Map:
		if v.Len() == 0 {
			return ast.InternedEmptyObject, nil
		}
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map with %s keys", t.Key())
		}
		obj := ast.NewObjectWithCapacity(v.Len())
		for it := v.MapRange(); it.Next(); {
			e, err := termOf(it.Value())
			if err != nil {
				return nil, err
			}
			obj.Insert(ast.StringTerm(it.Key().String()), e)
		}
		return ast.NewTerm(obj), nil
	}
	return nil, fmt.Errorf("cannot convert %s", t)
}

// isEmpty is encoding/json's omitempty test.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}
