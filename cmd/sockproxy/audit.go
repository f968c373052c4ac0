package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sockproxy/sockproxy/policy/audit"
)

func init() {
	register("audit", "review audit logs: filter, follow, summarize", func(args []string) int {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runAudit(ctx, args, os.Stdout, os.Stderr, time.Now())
	})
}

const auditUsage = `usage: sockproxy audit [flags] FILE...

Reads sockproxy audit logs (rotated and .gz files too; oldest first by
modification time) and prints the selected records as a table, as JSON
lines (--json), or as a summary (--summary). With -f it follows one live
file, across rotation and truncation, until interrupted.

Examples:
  sockproxy audit /var/log/sockproxy/audit.log*
  sockproxy audit --decision deny,would-deny --since 1h audit.log
  sockproxy audit --user alice --operation 'container.*' --json audit.log
  sockproxy audit --summary --since 2025-03-04T00:00:00Z audit.log*
  sockproxy audit -f --decision deny audit.log

flags:
`

// runAudit is the audit command; now anchors relative --since/--until.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer, now time.Time) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, auditUsage)
		fs.PrintDefaults()
	}
	var (
		decisions = fs.String("decision", "", "only these decisions, comma-separated: allow, deny, error, would-deny")
		uid       = fs.Int("uid", -1, "only records of this caller uid")
		user      = fs.String("user", "", "only records of this caller user name")
		operation = fs.String("operation", "", "only operations matching this glob, e.g. 'container.*'")
		image     = fs.String("image", "", "only records whose image contains this text")
		reason    = fs.String("reason", "", "only records with a reason (or error) containing this text")
		since     = fs.String("since", "", "only records at or after this time: RFC 3339, or a duration ago (90s, 15m, 1h, 2d)")
		until     = fs.String("until", "", "only records before this time: RFC 3339, or a duration ago")
		asJSON    = fs.Bool("json", false, "print the selected records as JSON lines, as written")
		summary   = fs.Bool("summary", false, "print counts by decision, refusal reason, caller and image, and refusals over time")
		top       = fs.Int("top", 10, "rows per --summary table (0 for all)")
		follow    = fs.Bool("follow", false, "follow one live file for new records (also -f)")
		fromStart = fs.Bool("from-start", false, "with --follow: print the records already in the file first")
		poll      = fs.Duration("poll", 250*time.Millisecond, "with --follow: how often to look for new records")
	)
	fs.BoolVar(follow, "f", false, "short for --follow")

	// Flags may come after file names (sockproxy audit audit.log --summary).
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sockproxy audit: "+format+"\n", a...)
		return 2
	}
	if len(files) == 0 {
		return usageErr("no audit file given; run 'sockproxy audit -h' for usage")
	}
	if *follow && len(files) != 1 {
		return usageErr("--follow takes exactly one file, got %d", len(files))
	}
	if *follow && *summary {
		return usageErr("--follow and --summary do not go together: summarize the files instead")
	}
	q := audit.Query{UID: *uid, User: *user, Operation: *operation, Image: *image, Reason: *reason}
	if *decisions != "" {
		for _, d := range strings.Split(*decisions, ",") {
			q.Decisions = append(q.Decisions, strings.TrimSpace(d))
		}
	}
	var err error
	if q.Since, err = parseWhen(*since, now); err != nil {
		return usageErr("--since: %v", err)
	}
	if q.Until, err = parseWhen(*until, now); err != nil {
		return usageErr("--until: %v", err)
	}
	m, err := q.Compile()
	if err != nil {
		return usageErr("%v", err)
	}

	out := bufio.NewWriterSize(stdout, 256<<10)
	defer out.Flush()
	var sum *audit.Summary
	unparseable := 0
	var emit func(v *audit.View) error
	switch {
	case *summary: // Summarize reads the files itself
	case *asJSON:
		emit = func(v *audit.View) error {
			out.Write(v.Raw)
			return out.WriteByte('\n')
		}
	default:
		fmt.Fprintf(out, tableFormat, "TIME", "CALLER", "OPERATION", "DECISION", "DETAIL")
		emit = func(v *audit.View) error { return writeRow(out, v) }
	}
	var v audit.View
	handle := func(line []byte) error {
		ok, err := m.Match(line, &v)
		if err != nil {
			unparseable++
			return nil
		}
		if !ok {
			return nil
		}
		if err := emit(&v); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
		if *follow {
			return out.Flush()
		}
		return nil
	}
	switch {
	case *summary:
		// Parallel: the order of records does not matter to counts.
		sum, err = audit.Summarize(files, m, runtime.GOMAXPROCS(0))
	case *follow:
		if err := out.Flush(); err != nil {
			fmt.Fprintf(stderr, "sockproxy audit: %v\n", err)
			return 1
		}
		err = audit.Follow(ctx, files[0], *fromStart, *poll, handle)
	default:
		err = audit.ReadFiles(files, handle)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy audit: %v\n", err)
		return 1
	}
	if sum != nil {
		if err := sum.Print(out, *top); err != nil {
			fmt.Fprintf(stderr, "sockproxy audit: %v\n", err)
			return 1
		}
	} else if unparseable > 0 {
		fmt.Fprintf(stderr, "sockproxy audit: skipped %d lines that are not audit records (a torn last line after a crash is one)\n", unparseable)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "sockproxy audit: %v\n", err)
		return 1
	}
	return 0
}

const tableFormat = "%-24s  %-18s  %-22s  %-10s  %s\n"

func writeRow(w io.Writer, v *audit.View) error {
	ts := v.Time()
	when := "-"
	if !ts.IsZero() {
		when = ts.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	detail := ""
	if rs := v.Reasons(); len(rs) > 0 {
		detail = rs[0]
		if len(rs) > 1 {
			detail += fmt.Sprintf(" (+%d more)", len(rs)-1)
		}
	} else if e := v.Error(); e != "" {
		detail = e
	} else {
		detail = v.Method() + " " + v.Path()
		if st := v.Status(); st != 0 {
			detail += " -> " + strconv.Itoa(st)
		}
	}
	op := v.Operation()
	if op == "" {
		op = "-"
	}
	_, err := fmt.Fprintf(w, tableFormat, when, v.CallerLabel(), op, v.Decision(), oneLine(detail))
	return err
}

// oneLine keeps a table row on one line whatever the reason text holds.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// parseWhen reads an RFC 3339 time or a duration before now ("90m", "2d").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseFloat(days, 64); err == nil && n >= 0 {
			return now.Add(-time.Duration(n * float64(24*time.Hour))), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2025-03-04T05:06:07Z) nor a duration ago (90s, 15m, 1h, 2d)", s)
}
