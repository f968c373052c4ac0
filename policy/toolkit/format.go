package toolkit

import (
	"fmt"
	"os"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
)

// FormatChange is a user module that `opa fmt` would change.
type FormatChange struct {
	File      string
	Formatted []byte
	// Diff is a unified diff from the file to its formatted text.
	Diff string
}

// Unformatted lists the user's .rego files (tests included) that are not
// in opa fmt style, in file order.
func (p *Policy) Unformatted() ([]FormatChange, error) {
	var out []FormatChange
	for _, name := range sortedKeys(p.UserFiles) {
		raw := p.UserFiles[name]
		formatted, err := format.SourceWithOpts(name, raw, format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("format %s: %w", name, err)
		}
		if string(formatted) == string(raw) {
			continue
		}
		out = append(out, FormatChange{File: name, Formatted: formatted, Diff: UnifiedDiff(name, string(raw), string(formatted))})
	}
	return out, nil
}

// Write replaces the file with its formatted text, keeping its mode.
func (c FormatChange) Write() error {
	info, err := os.Stat(c.File)
	if err != nil {
		return err
	}
	return os.WriteFile(c.File, c.Formatted, info.Mode().Perm())
}

// UnifiedDiff renders the line difference of a and b as a unified diff with
// three lines of context (no diff library is needed for files this small).
func UnifiedDiff(name, a, b string) string {
	x, y := splitLines(a), splitLines(b)
	// Longest common subsequence table, from the end.
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type edit struct {
		op   byte // ' ', '-', '+'
		line string
		ai   int // line index in a (for ' ' and '-'), else next line of a
		bi   int
	}
	var edits []edit
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			edits = append(edits, edit{' ', x[i], i, j})
			i++
			j++
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			edits = append(edits, edit{'-', x[i], i, j})
			i++
		default:
			edits = append(edits, edit{'+', y[j], i, j})
			j++
		}
	}
	const context = 3
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s (formatted)\n", name, name)
	for k := 0; k < len(edits); {
		if edits[k].op == ' ' {
			k++
			continue
		}
		start := max(0, k-context)
		end := k
		for end < len(edits) {
			if edits[end].op != ' ' {
				end++
				continue
			}
			run := end
			for run < len(edits) && edits[run].op == ' ' {
				run++
			}
			if run == len(edits) || run-end > 2*context {
				end = min(run, end+context)
				break
			}
			end = run
		}
		var na, nb int
		for _, e := range edits[start:end] {
			if e.op != '+' {
				na++
			}
			if e.op != '-' {
				nb++
			}
		}
		fmt.Fprintf(&sb, "@@ -%d,%d +%d,%d @@\n", edits[start].ai+1, na, edits[start].bi+1, nb)
		for _, e := range edits[start:end] {
			sb.WriteByte(e.op)
			sb.WriteString(e.line)
			sb.WriteByte('\n')
		}
		k = end
	}
	return sb.String()
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
