package policy

import (
	"encoding"
	"encoding/json"
	"fmt"
	"iter"
	"math"
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

// typeInfo is what the conversion needs to know of a type, worked out once
// per type instead of by reflection on every value.
type typeInfo struct {
	// marshals: the type has its own JSON or text encoding.
	marshals bool
	// fields are a struct's JSON members.
	fields []field
	// empty is the value of a struct whose fields are all empty, built once
	// and shared by every input: most fact structs of a request are (no
	// privileges, namespaces left alone). Terms of the input are never
	// modified (OPA copies the input before a `with` changes it).
	emptyOnce sync.Once
	empty     *ast.Term
	emptyErr  error
}

var typeCache sync.Map // reflect.Type -> *typeInfo

func infoOf(t reflect.Type) *typeInfo {
	if ti, ok := typeCache.Load(t); ok {
		return ti.(*typeInfo)
	}
	ti := &typeInfo{marshals: t.Kind() != reflect.Interface && (t.Implements(jsonMarshaler) || t.Implements(textMarshaler))}
	if t.Kind() == reflect.Struct {
		ti.fields = fieldsOf(t)
	}
	actual, _ := typeCache.LoadOrStore(t, ti)
	return actual.(*typeInfo)
}

// emptyTerm is the shared value of t's empty struct.
func (ti *typeInfo) emptyTerm(t reflect.Type) (*ast.Term, error) {
	ti.emptyOnce.Do(func() {
		obj, err := structValue(reflect.Zero(t), "")
		if err != nil {
			ti.emptyErr = err
			return
		}
		ti.empty = ast.NewTerm(obj)
	})
	return ti.empty, ti.emptyErr
}

// fieldsOf lists a struct's JSON members as encoding/json would (embedded
// structs without a name are flattened). It builds the list: callers use
// infoOf(t).fields, worked out once per type.
func fieldsOf(t reflect.Type) []field {
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
	return out
}

// presentFields yields the fields of struct v that are converted (all but
// skip and the omitempty ones that are empty), with their values: the
// conversion and the memo key (memokey.go) walk the same ones.
func presentFields(v reflect.Value, skip string) iter.Seq2[*field, reflect.Value] {
	return func(yield func(*field, reflect.Value) bool) {
		fields := infoOf(v.Type()).fields
		for i := range fields {
			f := &fields[i]
			if f.name == skip {
				continue
			}
			fv := v.FieldByIndex(f.index)
			if f.omitEmpty && isEmpty(fv) {
				continue
			}
			if !yield(f, fv) {
				return
			}
		}
	}
}

func structValue(v reflect.Value, skip string) (ast.Object, error) {
	obj := ast.NewObjectWithCapacity(len(infoOf(v.Type()).fields))
	for f, fv := range presentFields(v, skip) {
		t, err := termOf(fv)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		obj.Insert(f.key, t)
	}
	return obj, nil
}

// convertsEmpty reports whether v converts to what its type's zero value
// converts to: empty strings and collections (absent ones are [] and {}
// too), false, zero, nil pointers, and structs of such fields. Types with
// their own encoding are never taken as empty.
func convertsEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		return v.Len() == 0 && !infoOf(v.Type()).marshals
	case reflect.Bool:
		return !v.Bool() && !infoOf(v.Type()).marshals
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0 && !infoOf(v.Type()).marshals
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint() == 0 && !infoOf(v.Type()).marshals
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(v.Float()) == 0 && !infoOf(v.Type()).marshals // not -0
	case reflect.Slice, reflect.Map:
		return v.Len() == 0 && !infoOf(v.Type()).marshals
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	case reflect.Struct:
		ti := infoOf(v.Type())
		if ti.marshals {
			return false
		}
		for _, f := range ti.fields {
			if !convertsEmpty(v.FieldByIndex(f.index)) {
				return false
			}
		}
		return true
	}
	return false
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	jsonNumber    = reflect.TypeFor[json.Number]()
)

// termOf converts one value. Zero values share OPA's interned terms (most
// facts are false, "" or empty), and empty structs a term per type.
func termOf(v reflect.Value) (*ast.Term, error) {
	t := v.Type()
	if t == jsonNumber {
		return ast.NumberTerm(json.Number(v.String())), nil
	}
	if infoOf(t).marshals {
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
		if convertsEmpty(v) {
			return infoOf(t).emptyTerm(t)
		}
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
