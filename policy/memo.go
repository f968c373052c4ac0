package policy

import (
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// memoLimit bounds the decisions a revision remembers; when it is reached the
// memo starts over (cheap, and a burst of distinct inputs cannot grow it).
const memoLimit = 512

// decisionMemo remembers the results of a revision for inputs without a
// body (ping, lists, inspects, logs, starts, ...): a client repeats those
// with the very same input, and one evaluation of the library costs tens of
// microseconds even for operations it simply allows. A result is a function
// of the input and the revision's data unless a module calls a
// nondeterministic builtin, in which case the revision has no memo.
// Inputs with a body (create, exec, ...) are all different in practice and
// large, so they are never remembered.
type decisionMemo struct {
	mu sync.Mutex
	m  map[string]Result // by memoKey of the input
}

func newDecisionMemo() *decisionMemo {
	return &decisionMemo{m: make(map[string]Result)}
}

func (c *decisionMemo) get(key []byte) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	res, ok := c.m[string(key)]
	return res, ok
}

// put remembers res for the input of key. Only complete verdicts are
// remembered: a failure (timeout, error) may not happen again.
func (c *decisionMemo) put(key []byte, res Result) {
	if res.Failure != "" {
		return
	}
	// Callers may append to the messages; make them copy.
	res.Deny, res.Warn = slices.Clip(res.Deny), slices.Clip(res.Warn)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= memoLimit {
		clear(c.m)
	}
	c.m[string(key)] = res
}

// nondeterministic are builtins whose result depends on something other
// than their arguments (OPA's Nondeterministic flag, and the ones that read
// the clock without being flagged).
var nondeterministic = func() map[string]bool {
	m := map[string]bool{
		"io.jwt.decode_verify":                                   true,
		"crypto.x509.parse_and_verify_certificates":              true,
		"crypto.x509.parse_and_verify_certificates_with_options": true,
	}
	for name, b := range ast.BuiltinMap {
		if b.Nondeterministic {
			m[name] = true
		}
	}
	return m
}()

// deterministic tells whether the modules' decisions depend only on input
// and data: no call to a nondeterministic builtin (time, randomness, HTTP,
// DNS, the runtime).
func deterministic(modules map[string]*ast.Module) bool {
	ok := true
	for _, m := range modules {
		ast.WalkTerms(m, func(t *ast.Term) bool {
			if !ok {
				return true
			}
			call, isCall := t.Value.(ast.Call)
			if isCall && len(call) > 0 && nondeterministic[call[0].Value.String()] {
				ok = false
			}
			return !ok
		})
		ast.WalkExprs(m, func(x *ast.Expr) bool {
			if ok && x.IsCall() && nondeterministic[x.Operator().String()] {
				ok = false
			}
			return !ok
		})
		if !ok {
			return false
		}
	}
	return true
}
