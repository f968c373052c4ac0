package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

// WriteText writes the report as an aligned table, then the errors and notes.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "sockproxy bench: direct %s vs proxied %s (API %s, %d rounds, %s, load %s -> %s)\n\n",
		r.Direct, r.Proxied, r.APIVersion, r.Rounds, r.Elapsed.Round(time.Second), r.LoadBefore, r.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tunit\tdirect\tproxied\tproxied/direct\ttarget\tverdict\t")
	for _, m := range r.Metrics {
		direct, ratio := "-", "-"
		if m.Direct > 0 {
			direct = number(m.Direct)
			ratio = fmt.Sprintf("%.2fx", m.Ratio)
		}
		proxied := number(m.Proxied)
		if m.Verdict == Error {
			direct, proxied, ratio = "-", "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", m.Name, m.Unit, direct, proxied, ratio, m.Target, m.Verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range r.Metrics {
		if m.Error != "" {
			fmt.Fprintf(w, "\n%s: %s", m.Name, m.Error)
		} else if m.Note != "" {
			fmt.Fprintf(w, "\n%s: %s", m.Name, m.Note)
		}
	}
	verdict := "every target met"
	if !r.Passed() {
		verdict = "some targets missed or not measured"
	}
	_, err := fmt.Fprintf(w, "\n\n%s\n", verdict)
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func number(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}
