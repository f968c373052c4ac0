package policy

import (
	"context"
	"reflect"
	"testing"

	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
)

func pingInput(uid int) *input.Input {
	return &input.Input{Operation: "system.ping", Method: "GET", Path: "/_ping",
		Caller: proxy.Caller{Known: true, UID: uid, GID: uid, PID: 7}}
}

func memoSize(r *Revision) int {
	r.memo.mu.Lock()
	defer r.memo.mu.Unlock()
	return len(r.memo.m)
}

// A body-less input is evaluated once per revision; the remembered verdict
// is the one an evaluation gives, per distinct input.
func TestDecisionMemoRemembersBodylessInputs(t *testing.T) {
	dir := writeFiles(t, map[string]string{"site.rego": `package sockproxy

deny contains "uid 2000 may not ping" if {
	input.operation == "system.ping"
	input.caller.uid == 2000
}
`})
	e := newEngine(t, Options{Dirs: []string{dir}})
	rev := e.Revision()
	if rev.memo == nil {
		t.Fatal("deterministic policy has no memo")
	}
	ctx := context.Background()
	first := e.Evaluate(ctx, pingInput(1000), nil)
	second := e.Evaluate(ctx, pingInput(1000), nil)
	if !first.Allow || !reflect.DeepEqual(first, second) {
		t.Fatalf("ping by 1000: first %+v, second %+v", first, second)
	}
	if n := memoSize(rev); n != 1 {
		t.Fatalf("memo holds %d results after the same input twice, want 1", n)
	}
	refused := e.Evaluate(ctx, pingInput(2000), nil)
	again := e.Evaluate(ctx, pingInput(2000), nil)
	if refused.Allow || !reflect.DeepEqual(refused.Deny, []string{"uid 2000 may not ping"}) || !reflect.DeepEqual(refused, again) {
		t.Fatalf("ping by 2000: %+v, then %+v", refused, again)
	}
	if n := memoSize(rev); n != 2 {
		t.Fatalf("memo holds %d results, want 2", n)
	}

	// Inputs with a body are never remembered.
	in, body := openHandsInput(t)
	e.Evaluate(ctx, in, body)
	if n := memoSize(rev); n != 2 {
		t.Fatalf("memo holds %d results after a create, want 2", n)
	}
}

// A module that reads the clock (or any nondeterministic builtin) turns the
// memo off: its verdicts may change for the same input.
func TestDecisionMemoOffForNondeterministicPolicy(t *testing.T) {
	dir := writeFiles(t, map[string]string{"clock.rego": `package sockproxy

deny contains "odd second" if {
	input.operation == "system.ping"
	t := time.now_ns()
	(t / 1000000000) % 2 == 1
}
`})
	e := newEngine(t, Options{Dirs: []string{dir}})
	if e.Revision().memo != nil {
		t.Fatal("a policy calling time.now_ns has a memo")
	}
}
