package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/policy/toolkit"
)

func policyLearn(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newPolicyFlags("learn", stderr)
	outPath := f.set.String("o", "", "write the proposal to this file instead of standard output")
	f.set.Usage = func() {
		fmt.Fprint(stderr, `usage: sockproxy policy learn [--config FILE] [-o FILE] AUDIT_LOG...

Reads audit logs recorded with policy.mode: dry-run and proposes the library
settings (mount_roots with modes, allowed_uids/gids, allowed_images,
allowed_host_ips, allowed_networks, network_drivers, volume_drivers,
allowed_local_volume_kinds, operations) that would allow the observed
traffic, as a commented YAML snippet (policy: data: ...) for review. --config
is the configuration the log was recorded with: the proposal widens it.
Refusals it will not lift by itself (privilege, host namespaces, root,
ports on every interface, sensitive host paths, operations that bypass the
policy) are listed at the end for a person to decide.

Flags:
`)
		f.set.PrintDefaults()
	}
	files, code := f.parse(args)
	if code >= 0 {
		return code
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "sockproxy policy learn: give the audit log files to learn from")
		return 2
	}
	cfg, err := f.loadConfig(nil)
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy learn: %v\n", err)
		return 2
	}
	rev, err := policy.Compile(ctx, policySource(cfg))
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy learn: %v\n", err)
		return 2
	}
	var records []audit.Record
	bad := 0
	err = audit.ReadFiles(files, func(line []byte) error {
		var r audit.Record
		if json.Unmarshal(line, &r) != nil {
			bad++ // a torn last line after a crash: skipped, counted
			return nil
		}
		records = append(records, r)
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "sockproxy policy learn: %v\n", err)
		return 2
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "sockproxy policy learn: skipped %d line(s) that are not audit records\n", bad)
	}
	prop := toolkit.Learn(rev.Library, records)
	if prop.Used == 0 {
		fmt.Fprintln(stderr, "sockproxy policy learn: no judged requests in the logs (only errors or nothing): nothing to learn")
		return 1
	}
	text := prop.YAML(files)
	if *outPath != "" {
		if err := os.WriteFile(*outPath, []byte(text), 0o644); err != nil {
			fmt.Fprintf(stderr, "sockproxy policy learn: %v\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "sockproxy policy learn: proposal written to %s (%d refusal kinds left for review)\n", *outPath, len(prop.Remaining))
		return 0
	}
	fmt.Fprint(stdout, text)
	return 0
}
