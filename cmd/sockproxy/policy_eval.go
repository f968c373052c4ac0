package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/sockproxy/sockproxy/config"
	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/policy/toolkit"
	"github.com/sockproxy/sockproxy/proxy"
)

const evalUsage = `usage: sockproxy policy eval [--config FILE] REQUEST | --replay FILE | --input FILE

Shows the policy input the proxy builds for a request and its decision, with
every reason and the rules (file:line) that produced it.
Exit 0 allowed, 1 refused, 2 error.

  REQUEST: --method POST --path '/v1.41/containers/create?name=web' --body create.json
  daemon facts (image default user, networks, volumes, containers):
           --socket /var/run/docker.sock  looked up in a running dockerd
           --facts facts.yaml             supplied offline
           (neither: reported unresolved, as a proxy without a daemon would)
  --replay FILE   judge the requests of audit records again (- for stdin);
                  --request-id ID picks one. The audit log keeps no bodies,
                  only a forwarded body's SHA-256: the body of a container,
                  exec, network or volume create, a network connect or a
                  container update is rebuilt from the record's facts
                  unless --body gives the original (checked against the
                  digest). A record replay
                  cannot reproduce (another body-judged request without
                  --body; a target, image or network gone from the daemon)
                  is reported "not reproduced" with the reason, never as a
                  refusal: exit 2 for one record; with many it is listed
                  and counted and the exit status is the verdicts'.

Flags:
`

type evalFlags struct {
	method, path, body, contentType string
	uid, gid, pid                   int
	anonymous                       bool
	socket, facts                   string
	replay, requestID               string
	inputDoc                        string
	jsonOut, noInput                bool
}

func policyEvalCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := newPolicyFlags("eval", stderr)
	var e evalFlags
	s := f.set
	s.Usage = func() { fmt.Fprint(stderr, evalUsage); s.PrintDefaults() }
	s.StringVar(&e.method, "method", "", "HTTP method (default GET, POST with --body)")
	s.StringVar(&e.path, "path", "", "request path with its query, as the client sends it")
	s.StringVar(&e.body, "body", "", "request body file; - for standard input")
	s.StringVar(&e.contentType, "content-type", "", "Content-Type of the body (default application/json with --body)")
	s.IntVar(&e.uid, "caller-uid", os.Getuid(), "caller's uid (default: yours)")
	s.IntVar(&e.gid, "caller-gid", os.Getgid(), "caller's gid (default: yours)")
	s.IntVar(&e.pid, "caller-pid", os.Getpid(), "caller's pid")
	s.BoolVar(&e.anonymous, "anonymous", false, "a caller the kernel cannot identify (a TCP client)")
	s.StringVar(&e.socket, "socket", "", "dockerd to look daemon facts up in (a Unix socket path or unix:// / tcp:// URL)")
	s.StringVar(&e.facts, "facts", "", "daemon facts file (YAML/JSON: images, containers, networks, volumes) for offline evaluation")
	s.StringVar(&e.replay, "replay", "", "audit log file whose records to judge again (- for stdin)")
	s.StringVar(&e.requestID, "request-id", "", "with --replay: only this record")
	s.StringVar(&e.inputDoc, "input", "", "judge this policy input document (JSON, docs/policy-input.md) instead of a request; - for stdin")
	s.BoolVar(&e.jsonOut, "json", false, "print the judgement as JSON")
	s.BoolVar(&e.noInput, "no-input", false, "do not print the policy input")
	pos, code := f.parse(args)
	if code >= 0 {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "sockproxy policy eval: unexpected arguments %q\n", pos)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "sockproxy policy eval: %v\n", err)
		return 2
	}
	cfg, err := f.loadConfig(nil)
	if err != nil {
		return fail(err)
	}
	p, err := toolkit.Load(ctx, policySource(cfg))
	if err != nil {
		return fail(err)
	}
	switch {
	case e.replay == "" && e.path == "":
		// A policy input document (the first form of eval).
		path := e.inputDoc
		if path == "" {
			path = "-"
		}
		return evalInputDocument(ctx, p, path, stdin, stdout, stderr)
	case e.replay != "" && e.path != "":
		return fail(errors.New("give either a request (--path) or --replay, not both"))
	case e.inputDoc != "":
		return fail(errors.New("--input judges a policy input document: it does not go with --path or --replay"))
	}
	opts, daemonNote, err := evalInputOptions(ctx, cfg, e)
	if err != nil {
		return fail(err)
	}
	var body []byte
	if e.body != "" {
		if body, err = readFileOrStdin(e.body, stdin); err != nil {
			return fail(err)
		}
	}
	if e.replay != "" {
		return evalReplay(ctx, p, opts, daemonNote, e, body, stdin, stdout, stderr)
	}
	spec := toolkit.RequestSpec{Method: e.method, Target: e.path, Body: body, ContentType: e.contentType}
	if spec.Method == "" {
		spec.Method = "GET"
		if body != nil {
			spec.Method = "POST"
		}
	}
	if body != nil && spec.ContentType == "" {
		spec.ContentType = "application/json"
	}
	if !e.anonymous {
		spec.Caller = toolkit.LocalCaller(e.uid, e.gid, e.pid)
	}
	return judgeAndPrint(ctx, p, opts, spec, daemonNote, nil, e, stdout, stderr)
}

// evalInputOptions are the input builder's settings: the configuration's,
// with daemon facts from a dockerd, a facts file, or none.
func evalInputOptions(ctx context.Context, cfg *config.Config, e evalFlags) (input.Options, string, error) {
	opts := policyOptions(cfg, nil).Input
	switch {
	case e.socket != "" && e.facts != "":
		return opts, "", errors.New("give either --socket or --facts, not both")
	case e.socket != "":
		addr := e.socket
		if !strings.Contains(addr, "://") {
			addr = "unix://" + addr
		}
		rt, err := proxy.Upstream{Address: addr}.RoundTripper()
		if err != nil {
			return opts, "", err
		}
		opts.Daemon = input.NewHTTPDaemon(rt, "")
		if opts.DefaultAPIVersion == "" {
			// As serve: unversioned paths get the daemon's own version.
			v, err := newAPIVersionSource(rt, discardLogger()).get(ctx)
			if err != nil {
				return opts, "", err
			}
			opts.DefaultAPIVersion = v
		}
		return opts, "daemon facts looked up through " + addr, nil
	case e.facts != "":
		d, err := toolkit.LoadFacts(e.facts)
		if err != nil {
			return opts, "", err
		}
		opts.Daemon = d
		return opts, "daemon facts from " + e.facts, nil
	}
	return opts, "daemon facts not looked up (no --socket or --facts): image users, networks, volumes and containers are unresolved", nil
}

func readFileOrStdin(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}

func evalReplay(ctx context.Context, p *toolkit.Policy, opts input.Options, daemonNote string, e evalFlags, body []byte, stdin io.Reader, stdout, stderr io.Writer) int {
	var records []audit.Record
	collect := func(line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("not an audit record: %w", err)
		}
		if e.requestID == "" || r.RequestID == e.requestID {
			records = append(records, r)
		}
		return nil
	}
	var err error
	if e.replay == "-" {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() && err == nil {
			err = collect(sc.Bytes())
		}
		if err == nil {
			err = sc.Err()
		}
	} else {
		err = audit.ReadFiles([]string{e.replay}, collect)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy eval: --replay %s: %v\n", e.replay, err)
		return 2
	}
	if len(records) == 0 {
		fmt.Fprintf(stderr, "sockproxy policy eval: --replay %s: no records%s\n", e.replay, map[bool]string{true: " with request id " + e.requestID}[e.requestID != ""])
		return 2
	}
	if body != nil && len(records) > 1 {
		fmt.Fprintln(stderr, "sockproxy policy eval: --body with --replay needs --request-id (one record)")
		return 2
	}
	if len(records) == 1 {
		rp, err := p.Replay(ctx, &records[0], body, opts)
		if err != nil {
			fmt.Fprintf(stderr, "sockproxy policy eval: %v\n", err)
			return 2
		}
		return printJudgement(p, rp.Spec, rp.Judgement, rp.NotReproduced, daemonNote, rp.Notes, e, stdout, stderr)
	}
	// Many records: one line each.
	worst := 0
	counts := map[string]int{}
	for i := range records {
		r := &records[i]
		if r.Operation == "" {
			counts["skipped"]++
			continue
		}
		rp, err := p.Replay(ctx, r, nil, opts)
		if err != nil {
			fmt.Fprintf(stdout, "%s %s %s: error: %v\n", r.RequestID, r.Method, r.Path, err)
			worst = 2
			counts["error"]++
			continue
		}
		var verdict string
		switch j := rp.Judgement; {
		case rp.NotReproduced != "":
			// Neither allowed nor refused: listed and counted, and the
			// exit status stays the verdicts'.
			verdict = "not reproduced: " + rp.NotReproduced
		case j.Allow:
			verdict = "allowed"
		default:
			verdict = "refused: " + strings.Join(j.Reasons, "; ")
			worst = max(worst, 1)
		}
		counts[strings.SplitN(verdict, ":", 2)[0]]++
		fmt.Fprintf(stdout, "%s %s %s (%s, recorded %s): %s\n", r.RequestID, r.Method, r.Path, r.Operation, r.Decision, verdict)
	}
	fmt.Fprintf(stdout, "%d records: %d allowed, %d refused, %d not reproduced, %d errors, %d skipped (not classified when recorded) (revision %s; bodies rebuilt from facts where the record has them; %s)\n",
		len(records), counts["allowed"], counts["refused"], counts["not reproduced"], counts["error"], counts["skipped"], p.Revision.ID, daemonNote)
	return worst
}

func judgeAndPrint(ctx context.Context, p *toolkit.Policy, opts input.Options, spec toolkit.RequestSpec, daemonNote string, notes []string, e evalFlags, stdout, stderr io.Writer) int {
	j, err := p.JudgeSpec(ctx, spec, opts)
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy eval: %v\n", err)
		return 2
	}
	return printJudgement(p, spec, j, "", daemonNote, notes, e, stdout, stderr)
}

// printJudgement prints j (nil when the request was not judged) and returns
// the exit status. notReproduced, from a replay, says why j is no verdict
// on the recorded request: exit 2, as for a request that cannot be judged.
func printJudgement(p *toolkit.Policy, spec toolkit.RequestSpec, j *toolkit.Judgement, notReproduced, daemonNote string, notes []string, e evalFlags, stdout, stderr io.Writer) int {
	if notReproduced != "" {
		return printNotReproduced(p, spec, j, notReproduced, daemonNote, notes, e, stdout, stderr)
	}
	code := 0
	if !j.Allow {
		code = 1
	}
	if e.jsonOut {
		out := map[string]any{
			"allow": j.Allow, "status": j.Status, "reasons": nonNil(j.Reasons), "revision": p.Revision.ID,
			"daemon": daemonNote, "notes": nonNil(notes),
		}
		if j.Input != nil {
			out["input"] = j.Input
		}
		if j.InputError != nil {
			out["input_error"] = j.InputError.Error()
		}
		if j.Explanation != nil {
			out["deny"], out["warn"] = j.Explanation.Deny, j.Explanation.Warn
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "sockproxy policy eval: %v\n", err)
			return 2
		}
		return code
	}

	w := func(format string, args ...any) { fmt.Fprintf(stdout, format, args...) }
	op := "unclassified"
	if j.Request != nil {
		op = j.Request.Operation.Name
	}
	w("request: %s %s (%s)\n", spec.Method, spec.Target, op)
	w("caller: %s\n", callerText(spec.Caller))
	w("policy revision %s; %s\n", p.Revision.ID, daemonNote)
	for _, n := range notes {
		w("note: %s\n", n)
	}
	if j.Input != nil && !e.noInput {
		doc, err := toolkit.InputJSON(j.Input)
		if err != nil {
			fmt.Fprintf(stderr, "sockproxy policy eval: %v\n", err)
			return 2
		}
		w("\npolicy input:\n%s", doc)
	}
	w("\n")
	switch {
	case j.Allow:
		w("decision: allowed\n")
	case j.InputError != nil:
		w("decision: refused (%d) before the policy ran: the request cannot be judged\n", j.Status)
		for _, r := range j.Reasons {
			w("  - %s\n", r)
		}
	default:
		w("decision: refused (%d): %s\n", j.Status, policy.Message(j.Reasons))
	}
	if j.Explanation != nil {
		for _, fnd := range j.Explanation.Deny {
			w("  deny: %s\n", fnd.Message)
			printRules(stdout, fnd.Rules)
		}
		if j.Explanation.Result.Failure != "" {
			w("  failure: %s\n", j.Explanation.Result.Failure)
		}
		for _, fnd := range j.Explanation.Warn {
			w("  warn: %s\n", fnd.Message)
			printRules(stdout, fnd.Rules)
		}
	}
	return code
}

func printNotReproduced(p *toolkit.Policy, spec toolkit.RequestSpec, j *toolkit.Judgement, why, daemonNote string, notes []string, e evalFlags, stdout, stderr io.Writer) int {
	if e.jsonOut {
		out := map[string]any{
			"reproduced": false, "not_reproduced": why, "revision": p.Revision.ID,
			"daemon": daemonNote, "notes": nonNil(notes),
		}
		if j != nil && j.Input != nil {
			out["input"] = j.Input
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "sockproxy policy eval: %v\n", err)
		}
		return 2
	}
	fmt.Fprintf(stdout, "request: %s %s\n", spec.Method, spec.Target)
	fmt.Fprintf(stdout, "caller: %s\n", callerText(spec.Caller))
	fmt.Fprintf(stdout, "policy revision %s; %s\n", p.Revision.ID, daemonNote)
	for _, n := range notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	fmt.Fprintf(stdout, "\ndecision: not reproduced (no verdict): %s\n", why)
	return 2
}

func printRules(w io.Writer, rules []toolkit.RuleRef) {
	if len(rules) == 0 {
		fmt.Fprintln(w, "      (the trace did not attribute this message to a rule)")
		return
	}
	fmt.Fprintf(w, "      from %s\n", rules[0])
	for _, r := range rules[1:] {
		fmt.Fprintf(w, "      via  %s\n", r)
	}
}

func callerText(c proxy.Caller) string {
	if !c.Known {
		return "anonymous (the kernel cannot identify it: TCP)"
	}
	s := fmt.Sprintf("uid %d gid %d pid %d", c.UID, c.GID, c.PID)
	if c.User != "" {
		s += " user " + c.User
	}
	if c.Group != "" {
		s += " group " + c.Group
	}
	if len(c.Groups) > 0 {
		s += " groups " + strings.Join(c.Groups, ",")
	}
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// evalInputDocument judges a policy input document: the first form of eval.
func evalInputDocument(ctx context.Context, p *toolkit.Policy, path string, stdin io.Reader, stdout, stderr io.Writer) int {
	raw, err := readFileOrStdin(path, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy eval: %v\n", err)
		return 2
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var in input.Input
	if err := dec.Decode(&in); err != nil {
		fmt.Fprintf(stderr, "sockproxy policy eval: the input is not a policy input document: %v\n", err)
		return 2
	}
	ex, err := p.Explain(ctx, &in, nil)
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy eval: %v\n", err)
		return 2
	}
	res := ex.Result
	for _, fnd := range ex.Warn {
		fmt.Fprintf(stdout, "warn: %s\n", fnd.Message)
		printRules(stdout, fnd.Rules)
	}
	if res.Allow {
		fmt.Fprintf(stdout, "allowed (revision %s)\n", res.Revision)
		return 0
	}
	fmt.Fprintf(stdout, "refused (revision %s): %s\n", res.Revision, policy.Message(res.Reasons()))
	for _, fnd := range ex.Deny {
		fmt.Fprintf(stdout, "  deny: %s\n", fnd.Message)
		printRules(stdout, fnd.Rules)
	}
	return 1
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
