package toolkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/input"
)

// RuleRef is one rule that produced a message.
type RuleRef struct {
	// Rule is the rule's full name, e.g. data.sockproxy.lib.mounts.deny.
	Rule string `json:"rule"`
	File string `json:"file"`
	Line int    `json:"line"`
}

func (r RuleRef) String() string { return fmt.Sprintf("%s:%d (%s)", r.File, r.Line, r.Rule) }

// Finding is one deny or warn message with the rules that produced it: the
// rule that made it first (the origin), then the rules that passed it on up
// to data.sockproxy.deny or warn.
type Finding struct {
	Message string    `json:"message"`
	Rules   []RuleRef `json:"rules"`
}

// Explanation is a decision with every message attributed to rules.
type Explanation struct {
	// Result is the engine's verdict: its reasons are what the proxy answers.
	Result policy.Result `json:"-"`
	Deny   []Finding     `json:"deny"`
	Warn   []Finding     `json:"warn"`
}

// Explain evaluates in with the policy's revision (the engine's prepared
// query: its verdict is the proxy's) and again with a tracer over the same
// modules and data to find, for every deny and warn message, the rules that
// produced it. A message the trace cannot attribute is listed with no rules.
func (p *Policy) Explain(ctx context.Context, in *input.Input, body []byte) (*Explanation, error) {
	ex := &Explanation{Result: p.Revision.Evaluate(ctx, in, body, policy.DefaultEvalTimeout)}

	doc, err := inputDocument(in)
	if err != nil {
		return nil, err
	}
	tr := &ruleTracer{origin: map[string][]RuleRef{}}
	r := rego.New(append([]func(*rego.Rego){
		rego.Query(policy.Query),
		rego.Store(inmem.NewFromObject(p.Revision.Data)),
		rego.SetRegoVersion(ast.RegoV1),
		rego.ParsedInput(doc),
		rego.QueryTracer(tr),
	}, p.parsedModules()...)...)
	if _, err := r.Eval(ctx); err != nil {
		return nil, fmt.Errorf("tracing the evaluation: %w", err)
	}
	for _, msg := range ex.Result.Deny {
		ex.Deny = append(ex.Deny, Finding{Message: msg, Rules: tr.rules("deny", msg)})
	}
	for _, msg := range ex.Result.Warn {
		ex.Warn = append(ex.Warn, Finding{Message: msg, Rules: tr.rules("warn", msg)})
	}
	return ex, nil
}

func (p *Policy) parsedModules() []func(*rego.Rego) {
	var opts []func(*rego.Rego)
	for _, name := range sortedKeys(p.Modules) {
		opts = append(opts, rego.ParsedModule(p.Modules[name]))
	}
	return opts
}

// inputDocument is the policy input as an AST value: the JSON document of
// in, which the engine's own conversion is tested to equal.
func inputDocument(in *input.Input) (ast.Value, error) {
	raw, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("policy input: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	return ast.InterfaceToValue(doc)
}

// ruleTracer records, for every partial set rule that exits with a string
// key (deny, warn, and sets that feed them such as util.user_deny), which
// rule made which message. Keys are
// plugged when the event is emitted: bindings change afterwards.
type ruleTracer struct {
	origin map[string][]RuleRef // message -> rules in exit order
}

func (t *ruleTracer) Enabled() bool { return true }

func (t *ruleTracer) Config() topdown.TraceConfig { return topdown.TraceConfig{} }

func (t *ruleTracer) TraceEvent(evt topdown.Event) {
	if evt.Op != topdown.ExitOp {
		return
	}
	rule, ok := evt.Node.(*ast.Rule)
	if !ok || rule.Module == nil || rule.Head.Key == nil || rule.Head.Value != nil {
		return // not a partial set rule (deny contains msg if ...)
	}
	key := evt.Plug(rule.Head.Key)
	msg, ok := key.Value.(ast.String)
	if !ok {
		return
	}
	rr := RuleRef{Rule: rule.Ref().String()}
	if rule.Location != nil {
		rr.File, rr.Line = rule.Location.File, rule.Location.Row
	}
	k := string(msg)
	if !slices.Contains(t.origin[k], rr) {
		t.origin[k] = append(t.origin[k], rr)
	}
}

// rules orders the rules of a message from its origin (the deepest package)
// to data.sockproxy.<kind>.
func (t *ruleTracer) rules(kind, msg string) []RuleRef {
	var rs []RuleRef
	for _, r := range t.origin[msg] {
		// A set of another name (util.user_deny) may feed deny; the
		// top-level set of the other kind may not.
		if !strings.HasSuffix(r.Rule, "."+otherKind(kind)) {
			rs = append(rs, r)
		}
	}
	sort.SliceStable(rs, func(i, j int) bool {
		return strings.Count(rs[i].Rule, ".") > strings.Count(rs[j].Rule, ".")
	})
	return rs
}

func otherKind(kind string) string {
	if kind == "deny" {
		return "warn"
	}
	return "deny"
}
