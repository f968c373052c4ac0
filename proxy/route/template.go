package route

import (
	"fmt"
	"strings"
)

// template is a route path template ("/containers/{name:.*}/json") compiled
// into literals and variables, matched with string comparisons that give
// exactly what the regular expression gorilla/mux builds from it gives:
// "^" + literal + "(pattern)" + literal ... + "$", matched against the
// percent-decoded path. Only the variable patterns dockerd's templates use
// are supported, in shapes whose match is unique (see compileTemplate), so
// no backtracking is needed; TestTemplateMatchesMuxRegexp holds every table
// template to its mux expression.
type template struct {
	// lits[0] var[0] lits[1] var[1] ... lits[len(vars)]: len(lits) is
	// len(vars)+1.
	lits []string
	vars []tplVar
}

// maxVars is the most variables a bare template has
// (/containers/{name}/checkpoints/{checkpoint}); matches return them in an
// array so that matching does not allocate.
const maxVars = 2

type tplVar struct {
	name  string
	class varClass
}

// varClass is a variable's pattern.
type varClass uint8

const (
	// segment is mux's default pattern, [^/]+: one or more bytes, none a
	// "/" (a newline is fine: Go compiles [^/] with ClassNL).
	segment varClass = iota
	// anyText is .*: any bytes but a newline ("." does not match "\n"; any
	// other byte, invalid UTF-8 included, decodes to a rune "." matches).
	anyText
	// someText is .+: like anyText, but not empty.
	someText
)

// fits reports whether s is what the class's expression matches whole.
func (c varClass) fits(s string) bool {
	switch c {
	case segment:
		return s != "" && strings.IndexByte(s, '/') < 0
	case anyText:
		return strings.IndexByte(s, '\n') < 0
	default: // someText
		return s != "" && strings.IndexByte(s, '\n') < 0
	}
}

// compileTemplate parses tpl as mux does (braces, "name:pattern") and checks
// it has a shape whose match is unique without backtracking:
//   - no variable: the path is the literal;
//   - one variable, any pattern: anchored at both ends between two
//     literals, the variable is what lies between them;
//   - several variables, all [^/]+, each followed by a literal that starts
//     with "/" (or by the end): each variable ends at the next "/".
func compileTemplate(tpl string) (template, error) {
	var t template
	rest := tpl
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return t, fmt.Errorf("unbalanced braces")
			}
			t.lits = append(t.lits, rest)
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return t, fmt.Errorf("unbalanced braces")
		}
		end += open
		if strings.IndexByte(rest[:open], '}') >= 0 || strings.IndexByte(rest[open+1:end], '{') >= 0 {
			return t, fmt.Errorf("nested or unbalanced braces are not supported")
		}
		name, pattern, hasPattern := strings.Cut(rest[open+1:end], ":")
		if name == "" || (hasPattern && pattern == "") {
			return t, fmt.Errorf("variable with an empty name or pattern")
		}
		v := tplVar{name: name}
		switch {
		case !hasPattern:
			v.class = segment
		case pattern == ".*":
			v.class = anyText
		case pattern == ".+":
			v.class = someText
		default:
			return t, fmt.Errorf("variable pattern %q is not one of .* .+ or the default", pattern)
		}
		t.lits = append(t.lits, rest[:open])
		t.vars = append(t.vars, v)
		rest = rest[end+1:]
	}
	if len(t.vars) > maxVars {
		return t, fmt.Errorf("more than %d variables", maxVars)
	}
	if len(t.vars) > 1 {
		for i, v := range t.vars {
			next := t.lits[i+1]
			if v.class != segment {
				return t, fmt.Errorf("variable %s: only [^/]+ variables may share a template", v.name)
			}
			if !strings.HasPrefix(next, "/") && (next != "" || i+1 != len(t.vars)) {
				return t, fmt.Errorf("variable %s is not followed by \"/\" or the end", v.name)
			}
		}
	}
	return t, nil
}

// match reports whether p is a path the template matches and returns its
// variables' values, in the order of t.vars.
func (t *template) match(p string) (vals [maxVars]string, ok bool) {
	switch len(t.vars) {
	case 0:
		return vals, p == t.lits[0]
	case 1:
		pre, suf := t.lits[0], t.lits[1]
		if len(p) < len(pre)+len(suf) || !strings.HasPrefix(p, pre) || !strings.HasSuffix(p, suf) {
			return vals, false
		}
		v := p[len(pre) : len(p)-len(suf)]
		if !t.vars[0].class.fits(v) {
			return vals, false
		}
		vals[0] = v
		return vals, true
	}
	if !strings.HasPrefix(p, t.lits[0]) {
		return vals, false
	}
	p = p[len(t.lits[0]):]
	for i := range t.vars {
		n := strings.IndexByte(p, '/')
		if n < 0 {
			n = len(p)
		}
		if n == 0 {
			return vals, false
		}
		vals[i] = p[:n]
		p = p[n:]
		if i+1 == len(t.vars) {
			return vals, p == t.lits[i+1]
		}
		if !strings.HasPrefix(p, t.lits[i+1]) {
			return vals, false
		}
		p = p[len(t.lits[i+1]):]
	}
	return vals, false // unreachable: len(t.vars) >= 2
}
