package policy

import (
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// bodyPaths finds which parts of input.body the modules can read, so that
// the engine converts only those parts of a (large) request body. A policy
// reaches input only through references rooted at input, so the analysis
// looks at every reference (imports and `with` targets included):
// input.body.A.B reads the subtree A.B; a reference that stops at
// input.body, that continues with a variable, or that uses input itself as
// a value (x := input, object.get(input, ...), json.marshal(input)) can read
// anything, and then the whole body is given. It returns nil for the whole
// body, or the sorted, minimal list of subtree paths (possibly empty: no
// module reads the body).
func bodyPaths(modules map[string]*ast.Module) [][]string {
	whole := false
	var paths [][]string
	visit := func(r ast.Ref) bool {
		if whole || len(r) == 0 || !r[0].Equal(ast.InputRootDocument) {
			return false
		}
		if len(r) == 1 {
			whole = true
			return true
		}
		key, ok := r[1].Value.(ast.String)
		if !ok {
			whole = true // input[x]
			return true
		}
		if key != "body" {
			return false
		}
		var p []string
		for _, t := range r[2:] {
			s, ok := t.Value.(ast.String)
			if !ok {
				break
			}
			p = append(p, string(s))
		}
		if len(p) == 0 {
			whole = true
			return true
		}
		paths = append(paths, p)
		return false
	}
	// Every reference is judged by visit; a variable named input that is
	// not the head of a reference is input used as a value.
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case ast.Ref:
			visit(x)
			for _, t := range x[1:] {
				vis.Walk(t)
			}
			return true
		case ast.Var:
			if x.Equal(ast.InputRootDocument.Value) {
				whole = true
			}
		}
		return whole
	})
	for _, m := range modules {
		vis.Walk(m)
		if whole {
			return nil
		}
	}
	return minimalPaths(paths)
}

// minimalPaths sorts paths and drops those inside another.
func minimalPaths(paths [][]string) [][]string {
	sort.Slice(paths, func(i, j int) bool { return strings.Join(paths[i], "\x00") < strings.Join(paths[j], "\x00") })
	out := [][]string{}
	for _, p := range paths {
		if len(out) > 0 && hasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func hasPrefix(p, prefix []string) bool {
	if len(prefix) > len(p) {
		return false
	}
	for i := range prefix {
		if p[i] != prefix[i] {
			return false
		}
	}
	return true
}

// pathTrie is a set of body paths: a nil child means "the whole subtree".
type pathTrie map[string]pathTrie

func newPathTrie(paths [][]string) pathTrie {
	t := pathTrie{}
	for _, p := range paths {
		cur := t
		for i, k := range p {
			if i == len(p)-1 {
				cur[k] = nil
				break
			}
			next, ok := cur[k]
			if !ok {
				next = pathTrie{}
				cur[k] = next
			} else if next == nil {
				break // already whole
			}
			cur = next
		}
	}
	return t
}
