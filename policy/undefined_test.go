package policy

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
)

// undefinedRevision is rev with a query for a document nothing defines.
func undefinedRevision(t *testing.T, rev *Revision) *Revision {
	t.Helper()
	q, err := rego.New(rego.Query("deny = data.nothing.deny; warn = data.nothing.warn")).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cp := *rev
	cp.query = q
	return &cp
}
