// Package rego holds sockproxy's built-in Rego library and its default data,
// embedded in the binary.
package rego

import (
	"embed"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed *.rego defaults.yaml
var files embed.FS

// FilePrefix names the embedded modules in compile errors and test reports,
// so that a message points at the file in this directory.
const FilePrefix = "rego/"

// Modules returns the library's modules (tests excluded), by file name
// ("rego/create.rego").
func Modules() map[string]string { return read(false) }

// TestModules returns the library's Rego tests (*_test.rego).
func TestModules() map[string]string { return read(true) }

// DefaultData is the library's default configuration (YAML), the document
// at data.sockproxy.config before the user's settings are merged over it.
func DefaultData() []byte {
	b, err := files.ReadFile("defaults.yaml")
	if err != nil {
		panic("rego: defaults.yaml missing from the embedded library: " + err.Error())
	}
	return b
}

// Names lists the module file names in order, tests excluded.
func Names() []string {
	mods := Modules()
	names := make([]string, 0, len(mods))
	for name := range mods {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func read(tests bool) map[string]string {
	entries, err := fs.Glob(files, "*.rego")
	if err != nil {
		panic("rego: " + err.Error())
	}
	out := make(map[string]string, len(entries))
	for _, name := range entries {
		if strings.HasSuffix(name, "_test.rego") != tests {
			continue
		}
		b, err := files.ReadFile(name)
		if err != nil {
			panic("rego: " + err.Error())
		}
		out[path.Join(FilePrefix, name)] = string(b)
	}
	return out
}
