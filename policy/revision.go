package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	sprego "github.com/sockproxy/sockproxy/rego"
)

// Query is what every decision evaluates: the deny and warn sets of
// package sockproxy (built-in library and user modules together), and, for
// the operations whose answers can be filtered, its response filter as a
// list of none or one.
const Query = "deny = data.sockproxy.deny; warn = data.sockproxy.warn; filter = [f | input.operation in " + filterOperations + "; f := data.sockproxy.filter]"

// Source is what a policy revision is compiled from.
type Source struct {
	// Dirs are directories of user Rego modules (*.rego, tests excluded) and
	// data files (*.json, *.yaml, *.yml; a file in dir/a/b/ is merged at
	// data.a.b, as `opa eval -d dir` does).
	Dirs []string
	// Data is the library's configuration, merged over its defaults (and
	// over data files) at data.sockproxy.config.
	Data map[string]any
	// Modules are further modules, Rego v1 text by file name (a bundle's):
	// they compile with the library and the modules of Dirs.
	Modules map[string]string
	// Documents is further data merged at the root of the data document, as
	// data files are (a bundle's data).
	Documents map[string]any
}

// Revision is one compiled, immutable policy: the prepared query, and the
// content hash of every module and the data it was compiled from. Engines
// swap whole revisions, so a decision never sees half of a reload.
type Revision struct {
	// ID is the short form of Hash (12 hex digits), reported with decisions.
	ID string
	// Hash is the SHA-256 of the module file names and texts and of the data.
	Hash string
	// Modules are the file names of the compiled modules: the library's
	// ("rego/create.rego"), then the user's (as found in Source.Dirs).
	Modules []string
	// Library is the effective, validated data.sockproxy.config.
	Library *LibraryConfig
	// Data is the whole data document the policy sees.
	Data     map[string]any
	Compiled time.Time
	// BodyPaths are the parts of input.body the modules read (nil: all of
	// it); only those are converted for evaluation.
	BodyPaths [][]string

	query    rego.PreparedEvalQuery
	bodyWant pathTrie
	// memo remembers results of body-less inputs; nil when a module calls
	// a nondeterministic builtin.
	memo *decisionMemo
}

// Compile loads the built-in library and the user's modules and data,
// validates the library's configuration and prepares the decision query.
// A module that does not parse or compile is an error naming file:line.
func Compile(ctx context.Context, src Source) (*Revision, error) {
	modules := map[string]*ast.Module{}
	texts := map[string]string{}
	for name, text := range sprego.Modules() {
		m, err := ast.ParseModuleWithOpts(name, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("built-in policy library: %w", err)
		}
		modules[name] = m
		texts[name] = text
	}

	data := map[string]any{}
	if len(src.Dirs) > 0 {
		loaded, err := loadDirs(src.Dirs)
		if err != nil {
			return nil, err
		}
		for _, f := range loaded.Modules {
			name := f.Name // the path as found (the map key drops its leading /)
			if _, dup := modules[name]; dup {
				return nil, fmt.Errorf("policy module %s: loaded twice", name)
			}
			modules[name] = f.Parsed
			texts[name] = string(f.Raw)
		}
		mergeInto(data, loaded.Documents)
	}
	for name, text := range src.Modules {
		if _, dup := modules[name]; dup {
			return nil, fmt.Errorf("policy module %s: loaded twice", name)
		}
		m, err := ast.ParseModuleWithOpts(name, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, err
		}
		modules[name] = m
		texts[name] = text
	}
	if src.Documents != nil {
		doc, err := jsonDoc(src.Documents)
		if err != nil {
			return nil, fmt.Errorf("policy data: %w", err)
		}
		docMap, ok := doc.(map[string]any)
		if !ok {
			return nil, errors.New("policy data: the document must be an object")
		}
		mergeInto(data, docMap)
	}

	// The library's settings: defaults < data files < Source.Data.
	lib := DefaultLibraryData()
	if fromFiles, ok := lookupObject(data, "sockproxy", "config"); ok {
		mergeInto(lib, fromFiles)
	}
	if src.Data != nil {
		user, err := jsonDoc(src.Data)
		if err != nil {
			return nil, fmt.Errorf("policy data: %w", err)
		}
		userMap, ok := user.(map[string]any)
		if !ok {
			return nil, errors.New("policy data: must be a mapping of library settings")
		}
		mergeInto(lib, userMap)
	}
	libCfg, err := validateLibraryData(lib)
	if err != nil {
		return nil, fmt.Errorf("policy data: %w", err)
	}
	sp, _ := data["sockproxy"].(map[string]any)
	if sp == nil {
		sp = map[string]any{}
		data["sockproxy"] = sp
	}
	sp["config"] = lib

	store := inmem.NewFromObjectWithOpts(data, inmem.OptReturnASTValuesOnRead(true))
	opts := []func(*rego.Rego){
		rego.Query(Query),
		rego.Store(store),
		rego.SetRegoVersion(ast.RegoV1),
	}
	names := make([]string, 0, len(modules))
	for name := range modules {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		li, lj := strings.HasPrefix(names[i], sprego.FilePrefix), strings.HasPrefix(names[j], sprego.FilePrefix)
		if li != lj {
			return li
		}
		return names[i] < names[j]
	})
	for _, name := range names {
		opts = append(opts, rego.ParsedModule(modules[name]))
	}
	query, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy does not compile: %w", err)
	}

	hash, err := contentHash(names, texts, data)
	if err != nil {
		return nil, err
	}
	paths := bodyPaths(modules)
	var want pathTrie
	if paths != nil {
		want = newPathTrie(paths)
	}
	var memo *decisionMemo
	if deterministic(modules) {
		memo = newDecisionMemo()
	}
	return &Revision{
		memo:      memo,
		BodyPaths: paths,
		bodyWant:  want,
		ID:        hash[:12],
		Hash:      hash,
		Modules:   names,
		Library:   libCfg,
		Data:      data,
		Compiled:  time.Now(),
		query:     query,
	}, nil
}

// loadDirs reads the user's modules and data files. Tests (*_test.rego) and
// hidden files are left out: they are not policy.
func loadDirs(dirs []string) (*loader.Result, error) {
	for _, d := range dirs {
		info, err := os.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("policy directory %s: %w", d, err)
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("policy directory %s: not a directory", d)
		}
	}
	skip := func(abspath string, info fs.FileInfo, depth int) bool {
		name := info.Name()
		if depth > 0 && strings.HasPrefix(name, ".") {
			return true
		}
		if info.IsDir() {
			return false
		}
		if strings.HasSuffix(name, "_test.rego") {
			return true
		}
		switch filepath.Ext(name) {
		case ".rego", ".json", ".yaml", ".yml":
			return false
		}
		return true
	}
	loaded, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).Filtered(dirs, skip)
	if err != nil {
		return nil, fmt.Errorf("policy directories: %w", err)
	}
	return loaded, nil
}

func lookupObject(doc map[string]any, keys ...string) (map[string]any, bool) {
	cur := doc
	for _, k := range keys {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

func contentHash(names []string, texts map[string]string, data map[string]any) (string, error) {
	h := sha256.New()
	for _, name := range names {
		fmt.Fprintf(h, "module %q %d\n", name, len(texts[name]))
		h.Write([]byte(texts[name]))
	}
	raw, err := json.Marshal(data) // map keys are sorted: the encoding is canonical
	if err != nil {
		return "", fmt.Errorf("policy data: %w", err)
	}
	fmt.Fprintf(h, "data %d\n", len(raw))
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)), nil
}
