package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// Every key a configuration file may set is documented in
// docs/configuration.md as `section.key`, so the page cannot fall behind.
func TestDocListsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := yamlKeys(reflect.TypeOf(Config{}), "")
	if len(keys) < 30 {
		t.Fatalf("walked only %d keys: %v", len(keys), keys)
	}
	for _, k := range keys {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("%s is not in docs/configuration.md: document it as `%s`", k, k)
		}
	}
}

// yamlKeys lists the dotted yaml keys of a struct type; maps and other
// values are leaves (their keys are free-form: library settings, OPA's).
func yamlKeys(typ reflect.Type, prefix string) []string {
	var keys []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == typ.PkgPath() {
			keys = append(keys, yamlKeys(f.Type, key+".")...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}
