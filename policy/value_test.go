package policy

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/sockproxy/sockproxy/policy/input"
)

// fill sets every field reachable from v to a non-zero value, so that a
// field added to the input schema is covered by the comparison below.
func fill(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Pointer:
		if depth > 6 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.String:
		v.SetString("s-" + v.Type().Name())
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(7)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		k.SetString("k")
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Interface:
		v.Set(reflect.ValueOf(map[string]any{"x": []any{"y", true}}))
	}
}

// The input handed to OPA is the input's JSON document, field for field,
// whatever fields the schema gains.
func TestInputValueIsTheJSONDocument(t *testing.T) {
	var in input.Input
	fill(reflect.ValueOf(&in).Elem(), 0)
	in.Body = map[string]any{"Image": "x", "HostConfig": map[string]any{"Privileged": true}}
	raw, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ast.ValueFromReader(jsonReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	got, err := inputValue(&in, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Compare(want) != 0 {
		t.Fatalf("inputValue differs from the JSON document:\n got %v\nwant %v", got, want)
	}
}

// Absent lists and maps are [] and {}, not null.
func TestInputValueEmptyCollections(t *testing.T) {
	in := &input.Input{Operation: "container.create", Container: &input.ContainerFacts{}}
	got, err := inputValue(in, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj := got.(ast.Object)
	mounts, _ := obj.Find(ast.Ref{ast.StringTerm("container"), ast.StringTerm("mounts")})
	caps, _ := obj.Find(ast.Ref{ast.StringTerm("container"), ast.StringTerm("privileges"), ast.StringTerm("cap_add")})
	query, _ := obj.Find(ast.Ref{ast.StringTerm("query")})
	if mounts.Compare(ast.NewArray()) != 0 || caps.Compare(ast.NewArray()) != 0 || query.Compare(ast.NewObject()) != 0 {
		t.Fatalf("mounts %v cap_add %v query %v", mounts, caps, query)
	}
	if _, err := obj.Find(ast.Ref{ast.StringTerm("exec")}); err == nil {
		t.Error("exec is omitempty: absent when nil")
	}
}

// An empty struct converts to one value shared per type; a struct with any
// field set is converted on its own. Checked field by field for every
// struct of the input schema, so that a field added to it is covered.
func TestInputValueEmptyStructsShared(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(rt reflect.Type)
	walk = func(rt reflect.Type) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || seen[rt] {
			return
		}
		seen[rt] = true
		zero := reflect.New(rt).Elem()
		if !convertsEmpty(zero) {
			t.Errorf("%s: zero value not taken as empty", rt)
		}
		want, err := structValue(zero, "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := termOf(zero)
		if err != nil {
			t.Fatal(err)
		}
		if got.Value.Compare(want) != 0 {
			t.Errorf("%s: shared empty value %v, want %v", rt, got, want)
		}
		for _, f := range infoOf(rt).fields {
			v := reflect.New(rt).Elem()
			fill(v.FieldByIndex(f.index), 0)
			if convertsEmpty(v) {
				t.Errorf("%s.%s set, but the struct is taken as empty", rt, f.name)
			}
			walk(v.FieldByIndex(f.index).Type())
		}
	}
	walk(reflect.TypeFor[input.Input]())
	if len(seen) < 5 {
		t.Fatalf("walked only %d struct types", len(seen))
	}

	// Empty but not nil collections are empty too, and share the value.
	p := input.Privileges{CapAdd: []string{}, Sysctls: map[string]string{}}
	got, err := termOf(reflect.ValueOf(p))
	if err != nil {
		t.Fatal(err)
	}
	shared, _ := infoOf(reflect.TypeFor[input.Privileges]()).emptyTerm(reflect.TypeFor[input.Privileges]())
	if got != shared {
		t.Error("privileges with empty lists are not the shared empty value")
	}
}
