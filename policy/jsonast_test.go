package policy

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// parseJSON must give the value OPA's own JSON reading gives.
func checkParseJSON(t *testing.T, doc []byte) {
	t.Helper()
	want, werr := ast.ValueFromReader(bytes.NewReader(doc))
	got, gerr := parseJSON(doc)
	if werr != nil || !json.Valid(doc) {
		if gerr == nil && !json.Valid(doc) {
			t.Fatalf("parseJSON accepted invalid JSON %q", doc)
		}
		return
	}
	if gerr != nil {
		t.Fatalf("parseJSON(%q): %v", doc, gerr)
	}
	if got.Compare(want) != 0 {
		t.Fatalf("parseJSON(%q) = %v, want %v", doc, got, want)
	}
}

var jsonSeeds = []string{
	openHandsBody,
	`null`, `true`, `false`, `0`, `-1`, `1.5e3`, `12345678901234567890`, `""`, `"a\"b\\c\u00e9\n"`, `"ſ"`,
	`{}`, `[]`, `{"a": {"b": [1, {"c": null}]}}`, ` { "x" : [ ] } `,
	`{"a": 1} x`, `{"a" 1}`, `[1,]`, `{"a":}`, `"unterminated`, `tru`, `01`, `1.`, "\"\x01\"", "\"\xff\"",
}

func TestParseJSON(t *testing.T) {
	for _, doc := range jsonSeeds {
		checkParseJSON(t, []byte(doc))
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, doc := range jsonSeeds {
		f.Add([]byte(doc))
	}
	f.Fuzz(checkParseJSON)
}

func jsonReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
