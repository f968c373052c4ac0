package policy

import (
	"encoding/binary"
	"math"
	"reflect"
	"slices"
	"sync"

	"github.com/sockproxy/sockproxy/policy/input"
)

// memoKey encodes what of in the policy input is made of (the same fields,
// in the same shapes, as inputValue) into b, so that the memo can be
// looked up without building the AST value first: for a remembered ping,
// list or inspect that conversion was most of the decision. Equal keys mean
// equal policy inputs: every value is written with its kind and every
// string and sequence with its length, struct members with their JSON
// names, map entries sorted. ok is false for values it does not encode
// (json or text marshalers, which inputValue converts through JSON, and
// anything termOf would refuse): such inputs are not remembered.
func memoKey(b []byte, in *input.Input) (_ []byte, ok bool) {
	return appendKeyStruct(b, reflect.ValueOf(in).Elem(), "body", 0)
}

// maxKeyDepth bounds the nesting memoKey follows (the input is a tree a few
// levels deep; a cycle would never end).
const maxKeyDepth = 32

func appendKeyStruct(b []byte, v reflect.Value, skip string, depth int) ([]byte, bool) {
	fields := infoOf(v.Type()).fields
	b = append(b, 'o')
	b = binary.AppendUvarint(b, uint64(len(fields)))
	for f, fv := range presentFields(v, skip) {
		b = appendKeyString(b, f.name)
		var ok bool
		if b, ok = appendKeyValue(b, fv, depth+1); !ok {
			return b, false
		}
	}
	return append(b, '.'), true
}

func appendKeyString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendKeyValue(b []byte, v reflect.Value, depth int) ([]byte, bool) {
	if depth > maxKeyDepth {
		return b, false
	}
	t := v.Type()
	if t == jsonNumber {
		return appendKeyString(append(b, 'N'), v.String()), true
	}
	if t.Kind() != reflect.Interface && (t.Implements(jsonMarshaler) || t.Implements(textMarshaler)) {
		return b, false
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return append(b, 'z'), true
		}
		return appendKeyValue(b, v.Elem(), depth+1)
	case reflect.String:
		return appendKeyString(append(b, 's'), v.String()), true
	case reflect.Bool:
		if v.Bool() {
			return append(b, 't'), true
		}
		return append(b, 'f'), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return binary.AppendVarint(append(b, 'i'), v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return binary.AppendUvarint(append(b, 'u'), v.Uint()), true
	case reflect.Float32, reflect.Float64:
		b = append(b, 'd', byte(t.Bits()))
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Float())), true
	case reflect.Struct:
		return appendKeyStruct(b, v, "", depth)
	case reflect.Slice, reflect.Array:
		b = append(b, 'a')
		b = binary.AppendUvarint(b, uint64(v.Len()))
		for i := range v.Len() {
			var ok bool
			if b, ok = appendKeyValue(b, v.Index(i), depth+1); !ok {
				return b, false
			}
		}
		return b, true
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return b, false
		}
		b = append(b, 'm')
		b = binary.AppendUvarint(b, uint64(v.Len()))
		keys := v.MapKeys()
		slices.SortFunc(keys, func(x, y reflect.Value) int {
			switch xs, ys := x.String(), y.String(); {
			case xs < ys:
				return -1
			case xs > ys:
				return 1
			}
			return 0
		})
		for _, k := range keys {
			b = appendKeyString(b, k.String())
			var ok bool
			if b, ok = appendKeyValue(b, v.MapIndex(k), depth+1); !ok {
				return b, false
			}
		}
		return b, true
	}
	return b, false
}

// keyBufs recycles memo key buffers.
var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
