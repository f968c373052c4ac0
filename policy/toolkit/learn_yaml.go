package toolkit

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// YAML renders the proposal as a configuration snippet (policy: data: ...)
// with comments saying what each setting lets through and what is left for
// review. Settings the records did not need are left out: the file's
// current values (or the library's defaults) stay in force for them.
func (p *Proposal) YAML(sources []string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Proposed by `sockproxy policy learn` from %d audit records (%d judged, %d would-deny)\n", p.Records, p.Used, p.WouldDeny)
	if len(sources) > 0 {
		w("# in %s.\n", strings.Join(sources, ", "))
	}
	w("# REVIEW EVERY LINE before use: this allows what was observed, which is not\n")
	w("# necessarily what should be allowed. Merge it into the configuration's\n")
	w("# policy.data (lists replace the current ones), check it with\n")
	w("# `sockproxy policy check`, then run in dry-run again before enforcing.\n")
	w("policy:\n  data:\n")
	empty := true
	if p.MountRoots != nil {
		empty = false
		w("    # Host paths the containers bound (real paths, symlinks resolved), with\n")
		w("    # the modes used. The deepest root containing a bind decides its modes.\n")
		w("    mount_roots:\n")
		for _, r := range p.MountRoots {
			var seen []string
			for _, m := range r.Modes {
				if n := p.Seen["mount "+r.Path+" "+m]; n > 0 {
					seen = append(seen, fmt.Sprintf("%s %d×", m, n))
				}
			}
			comment := "already configured"
			if len(seen) > 0 {
				comment = "observed " + strings.Join(seen, ", ")
			}
			w("      - path: %s  # %s\n", quote(r.Path), comment)
			w("        modes: [%s]\n", joinQuoted(r.Modes))
		}
	}
	list := func(key, what string, items []string, seenKey string, render func(string) string) {
		if items == nil {
			return
		}
		empty = false
		w("    # %s\n", what)
		if len(items) == 0 {
			// "key:" alone would be null, which the library data refuses.
			w("    %s: []\n", key)
			return
		}
		w("    %s:\n", key)
		for _, it := range items {
			if n := p.Seen[seenKey+" "+it]; n > 0 {
				w("      - %s  # %d×\n", render(it), n)
			} else {
				w("      - %s  # already configured\n", render(it))
			}
		}
	}
	ints := func(xs []int) []string {
		if xs == nil {
			return nil // nothing learned: the key stays out
		}
		out := make([]string, len(xs))
		for i, x := range xs {
			out[i] = strconv.Itoa(x)
		}
		return out
	}
	plain := func(s string) string { return s }
	list("allowed_uids", "Non-root uids the containers and execs ran as (an empty list allows any non-root uid).", ints(p.AllowedUIDs), "uid", plain)
	list("allowed_gids", "Their gids.", ints(p.AllowedGIDs), "gid", plain)
	list("allowed_images", "Images created from or pulled (globs: * matches anything, / included).", p.AllowedImages, "image", quote)
	list("allowed_host_ips", "Host addresses ports were published on.", p.AllowedHostIPs, "host ip", quote)
	list("allowed_networks", "Networks joined at create, connected to, or created (containers join them).", p.AllowedNetworks, "network", quote)
	list("network_drivers", "Drivers networks were created with.", p.NetworkDrivers, "network driver", quote)
	list("volume_drivers", "Volume drivers besides local that volumes were created with.", p.VolumeDrivers, "volume driver", quote)
	list("allowed_local_volume_kinds", "Kinds of local-driver volumes created (bind and overlay paths must still lie under mount_roots).", p.AllowedLocalVolumeKinds, "volume kind", quote)
	if len(p.Operations) > 0 {
		empty = false
		w("    # Operations the policy refused that the client called.\n")
		w("    operations:\n")
		ops := sortedKeys(p.Operations)
		for _, op := range ops {
			w("      %s: %s  # %d×\n", op, p.Operations[op], p.Seen["operation "+op])
		}
	}
	if empty {
		w("    {}  # nothing to widen: the observed traffic is allowed already\n")
	}
	if len(p.Remaining) > 0 || len(p.Notes) > 0 {
		w("#\n# NOT LIFTED: refusals this proposal leaves in place. Learn never widens\n")
		w("# privilege, host namespaces, root users, ports on every interface,\n")
		w("# sensitive host paths or operations that bypass the policy. Fix the client,\n")
		w("# or, after review, change the setting by hand.\n")
		sort.SliceStable(p.Remaining, func(i, j int) bool { return p.Remaining[i].Count > p.Remaining[j].Count })
		for _, r := range p.Remaining {
			w("#   %4d× %s  (e.g. %s)\n", r.Count, oneLine(r.Reason), strings.Join(r.Requests, ", "))
		}
		for _, n := range p.Notes {
			w("#   note: %s\n", oneLine(n))
		}
	}
	return b.String()
}

func quote(s string) string { return strconv.Quote(s) }

func joinQuoted(xs []string) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = quote(x)
	}
	return strings.Join(out, ", ")
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
