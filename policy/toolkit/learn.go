package toolkit

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/proxy/route"
)

// Proposal is what learn proposes: library settings that would allow the
// observed traffic, and the refusals it leaves for a person to decide.
type Proposal struct {
	// Records is the number of audit records read; Used those learned from
	// (allow, would-deny and deny records with an operation).
	Records, Used, WouldDeny int

	MountRoots      []policy.MountRoot // nil: unchanged
	AllowedUIDs     []int
	AllowedGIDs     []int
	AllowedHostIPs  []string
	AllowedNetworks []string
	AllowedImages   []string
	// NetworkDrivers, VolumeDrivers and AllowedLocalVolumeKinds: the
	// drivers network.create and volume.create used, and the local-driver
	// option kinds of the volumes (nil: unchanged).
	NetworkDrivers          []string
	VolumeDrivers           []string
	AllowedLocalVolumeKinds []string
	// Operations maps operations to "allow" (only the changed ones).
	Operations map[string]string

	// Seen counts, per proposed item ("mount /x rw", "uid 1000", "operation
	// x"), the records that needed it; for the comments.
	Seen map[string]int
	// Remaining are the refusals the proposal does not lift, by reason,
	// most frequent first.
	Remaining []Remaining
	// Notes explain items learn saw and deliberately did not widen.
	Notes []string
}

// Remaining is one refusal learn leaves for review.
type Remaining struct {
	Reason string
	Count  int
	// Requests are up to three request ids that got it.
	Requests []string
}

// Operations learn never allows by itself: each one can undo the create
// policy (BuildKit sessions and builds run containers the proxy never sees,
// plugins and swarm services get their own privileges, local volumes and
// networks reach host paths and interfaces, tags re-point allowed images).
var reviewOperations = []string{
	"session", "grpc", "image.build", "image.load", "image.tag", "image.push", "container.commit",
	"volume.create", "network.create", "plugin.*", "swarm.*", "service.*", "node.*", "task.*",
	"secret.*", "config.*", "debug.*", "checkpoint.create", "checkpoint.delete",
}

// Host paths learn never proposes as mount roots: binding them gives the
// container the host (or the Docker daemon).
var sensitiveExact = []string{"/", "/home", "/usr", "/var", "/opt", "/srv", "/mnt", "/media", "/tmp"}
var sensitiveTree = []string{"/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/run", "/var/run", "/var/lib/docker",
	"/var/lib/containerd", "/bin", "/sbin", "/lib", "/lib64", "/usr/bin", "/usr/sbin", "/usr/lib"}

func sensitivePath(p string) bool {
	if slices.Contains(sensitiveExact, p) || strings.HasSuffix(p, ".sock") {
		return true
	}
	for _, t := range sensitiveTree {
		if p == t || strings.HasPrefix(p, t+"/") {
			return true
		}
	}
	return false
}

func reviewOperation(op string) bool {
	for _, pat := range reviewOperations {
		if op == pat || (strings.HasSuffix(pat, ".*") && strings.HasPrefix(op, strings.TrimSuffix(pat, "*"))) {
			return true
		}
	}
	return false
}

// learner accumulates observations.
type learner struct {
	base *policy.LibraryConfig
	p    *Proposal

	roots    map[string]map[string]bool // real host path -> modes
	uids     map[int]bool
	gids     map[int]bool
	gidsOK   bool // every non-root user seen had a numeric gid
	hostIPs  map[string]bool
	networks map[string]bool
	images   map[string]bool
	netDrv   map[string]bool
	volDrv   map[string]bool
	volKinds map[string]bool
	ops      map[string]bool
	notes    map[string]bool
}

// Learn proposes library settings over base (the settings the records were
// judged with) that would allow the traffic in records. Records whose
// decision is error are skipped: they were not judged.
func Learn(base *policy.LibraryConfig, records []audit.Record) *Proposal {
	l := &learner{
		base: base, p: &Proposal{Records: len(records), Seen: map[string]int{}},
		roots: map[string]map[string]bool{}, uids: map[int]bool{}, gids: map[int]bool{}, gidsOK: true,
		hostIPs: map[string]bool{}, networks: map[string]bool{}, images: map[string]bool{}, ops: map[string]bool{},
		netDrv: map[string]bool{}, volDrv: map[string]bool{}, volKinds: map[string]bool{},
		notes: map[string]bool{},
	}
	for i := range records {
		l.observe(&records[i])
	}
	l.propose()
	remaining := map[string]*Remaining{}
	for i := range records {
		r := &records[i]
		if r.Decision != audit.DecisionWouldDeny && r.Decision != audit.DecisionDeny {
			continue
		}
		for _, reason := range r.Reasons {
			if l.lifts(r, reason) {
				continue
			}
			rem := remaining[reason]
			if rem == nil {
				rem = &Remaining{Reason: reason}
				remaining[reason] = rem
			}
			rem.Count++
			if len(rem.Requests) < 3 {
				rem.Requests = append(rem.Requests, r.RequestID)
			}
		}
	}
	for _, rem := range remaining {
		l.p.Remaining = append(l.p.Remaining, *rem)
	}
	sort.Slice(l.p.Remaining, func(i, j int) bool {
		a, b := l.p.Remaining[i], l.p.Remaining[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Reason < b.Reason
	})
	for n := range l.notes {
		l.p.Notes = append(l.p.Notes, n)
	}
	sort.Strings(l.p.Notes)
	return l.p
}

func (l *learner) note(format string, args ...any) { l.notes[fmt.Sprintf(format, args...)] = true }

func (l *learner) observe(r *audit.Record) {
	if r.Decision == audit.DecisionError || r.Operation == "" {
		return
	}
	l.p.Used++
	if r.Decision == audit.DecisionWouldDeny {
		l.p.WouldDeny++
	}
	op := r.Operation
	if action := l.base.Operations[op]; action != "allow" && action != "judge" {
		if reviewOperation(op) {
			l.note("operation %s was called but is not allowed automatically: it can undo the container policy", op)
		} else {
			l.ops[op] = true
			l.p.Seen["operation "+op]++
		}
	}
	f := r.Facts
	if img, ok := f["image"].(string); ok && img != "" {
		l.images[img] = true
		l.p.Seen["image "+img]++
	}
	if op == "image.create" {
		if ref := pullReference(r.Path); ref != "" {
			l.images[ref] = true
			l.p.Seen["image "+ref]++
		}
	}
	if op == "network.connect" {
		// The network's name as the daemon resolved it (the library judges
		// that), else the reference in the path.
		c := factMap(f["connect"])
		if n := factString(c, "network_name"); n != "" {
			l.network(n)
		} else if id := pathVar(r.Method, r.Path, "id"); id != "" {
			l.network(id)
		}
	}
	if nc := factMap(f["network"]); op == "network.create" && nc != nil {
		l.networkCreate(nc)
	}
	if v := factMap(f["volume"]); op == "volume.create" && v != nil {
		l.volumeCreate(v)
	}
	for _, key := range []string{"user", "exec_user"} {
		if u, ok := f[key].(string); ok {
			l.user(u)
		}
	}
	for _, m := range stringList(f["mounts"]) {
		l.mount(m)
	}
	for _, p := range stringList(f["ports"]) {
		l.port(p)
	}
	for _, n := range stringList(f["networks"]) {
		l.network(n)
	}
	if f["privileged"] == true {
		l.note("privileged containers or execs were requested: learn never allows privilege")
	}
	if f["publish_all"] == true {
		l.note("publish_all (-P) was requested: it publishes on every interface; learn never allows it")
	}
}

func stringList(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// userFact parses the audit fact of a user: "1000:1000", "root (uid 0)",
// "alice (unresolved)", each maybe followed by " from image".
var userFact = regexp.MustCompile(`^(.*?)( \(uid 0\)| \(unresolved\))?( from \S+)?$`)

func (l *learner) user(fact string) {
	m := userFact.FindStringSubmatch(fact)
	if m == nil {
		return
	}
	value, flag := m[1], m[2]
	switch {
	case flag == " (uid 0)":
		l.note("containers or execs ran as root (%s): learn never lifts require_non_root; set a non-root User in the client", fact)
		return
	case flag == " (unresolved)":
		l.note("user %q could not be resolved to a uid: give the client a numeric User (uid:gid)", fact)
		return
	}
	uidText, gidText, hasGID := strings.Cut(value, ":")
	uid, err := strconv.Atoi(uidText)
	if err != nil {
		l.note("user %q is a name: give the client a numeric User (uid:gid)", fact)
		return
	}
	l.uids[uid] = true
	l.p.Seen["uid "+uidText]++
	if !hasGID {
		l.gidsOK = false
		return
	}
	gid, err := strconv.Atoi(gidText)
	if err != nil {
		l.gidsOK = false
		return
	}
	l.gids[gid] = true
	l.p.Seen["gid "+gidText]++
}

// mountFact parses "TYPE SOURCE:TARGET:MODE[ from CONTAINER]" where SOURCE
// of a host bind is HOSTPATH or HOSTPATH=>REALPATH.
func (l *learner) mount(fact string) {
	fact, _, _ = strings.Cut(fact, " from ")
	typ, rest, ok := strings.Cut(fact, " ")
	if !ok {
		return
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return
	}
	mode := rest[i+1:]
	rest = rest[:i]
	j := strings.LastIndex(rest, ":")
	if j < 0 {
		return
	}
	src := rest[:j]
	if !strings.HasPrefix(src, "/") {
		return // a named or anonymous volume, tmpfs: no host path
	}
	real := src
	if _, after, ok := strings.Cut(src, "=>"); ok {
		real = after
	}
	real = path.Clean(real)
	if sensitivePath(real) {
		l.note("%s mount of host path %s (%s) is not proposed: it exposes the host or the Docker daemon", typ, real, mode)
		return
	}
	if l.roots[real] == nil {
		l.roots[real] = map[string]bool{}
	}
	l.roots[real][mode] = true
	l.p.Seen["mount "+real+" "+mode]++
}

// port parses "HOSTIP:HOSTPORT->CPORT/PROTO" ("*" for every interface).
func (l *learner) port(fact string) {
	left, _, _ := strings.Cut(fact, "->")
	i := strings.LastIndex(left, ":")
	if i < 0 {
		return
	}
	ip := left[:i]
	parsed := net.ParseIP(ip)
	if ip == "*" || ip == "" || (parsed != nil && parsed.IsUnspecified()) {
		l.note("a port was published on every interface (%s): learn never allows that; bind it to 127.0.0.1 in the client", fact)
		return
	}
	if parsed == nil {
		return
	}
	l.hostIPs[parsed.String()] = true
	l.p.Seen["host ip "+parsed.String()]++
}

func (l *learner) network(n string) {
	switch {
	case n == "host":
		l.note("the host network was requested: learn never allows host namespaces")
		return
	case strings.HasPrefix(n, "container:"):
		l.note("%s (another container's network namespace) was requested: review it; allowed_networks can name it", n)
		return
	}
	l.networks[n] = true
	l.p.Seen["network "+n]++
}

// networkCreate learns the driver of a created network, and its name:
// containers created on it, or connected to it, need it in allowed_networks.
func (l *learner) networkCreate(nc map[string]any) {
	switch d := factString(nc, "driver"); d {
	case "":
	case "host", "null":
		l.note("network.create with driver %s was requested: learn never proposes it (host namespace or none)", d)
	default:
		if d == "macvlan" || d == "ipvlan" {
			l.note("network driver %s is proposed because it was used: it puts containers directly on a host interface's network; review it", d)
		}
		l.netDrv[d] = true
		l.p.Seen["network driver "+d]++
	}
	if n := factString(nc, "name"); n != "" {
		l.network(n)
	}
}

// volumeCreate learns a volume's driver and local option kind. A local
// volume on a host device is never proposed: it mounts the host's disks.
func (l *learner) volumeCreate(v map[string]any) {
	d := factString(v, "driver")
	if d != "" && d != "local" {
		l.volDrv[d] = true
		l.p.Seen["volume driver "+d]++
		return
	}
	switch kind := factString(v, "local_mount"); kind {
	case "":
	case "device":
		l.note("a local volume mounting a host device was requested (volume %s): learn never proposes the device kind", factString(v, "name"))
	default:
		l.volKinds[kind] = true
		l.p.Seen["volume kind "+kind]++
	}
}

// pullReference is the reference an image.create path pulls (as the
// library's image rules build it), "" for imports.
func pullReference(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		return ""
	}
	q := u.Query()
	img, tag := q.Get("fromImage"), q.Get("tag")
	switch {
	case img == "":
		return ""
	case tag == "":
		return img
	case strings.HasPrefix(tag, "sha256:"):
		return img + "@" + tag
	}
	return img + ":" + tag
}

func pathVar(method, target, name string) string {
	hr, err := http.NewRequest(method, "http://docker"+target, nil)
	if err != nil {
		return ""
	}
	op, err := route.New(route.Config{}).Classify(hr)
	if err != nil {
		return ""
	}
	return op.Vars[name]
}

func (l *learner) propose() {
	p, base := l.p, l.base
	// Mount roots: the configured ones, plus every observed path (with its
	// modes) that the configured roots do not already allow.
	roots := slices.Clone(base.MountRoots)
	changed := false
	for _, real := range sortedKeys(l.roots) {
		for _, mode := range sortedKeys(l.roots[real]) {
			if root := deepestRoot(roots, real); root >= 0 && slices.Contains(roots[root].Modes, mode) {
				continue
			}
			changed = true
			k := slices.IndexFunc(roots, func(r policy.MountRoot) bool { return r.Path == real })
			if k < 0 {
				roots = append(roots, policy.MountRoot{Path: real})
				k = len(roots) - 1
			}
			roots[k].Modes = append(roots[k].Modes, mode)
			sort.Strings(roots[k].Modes)
		}
	}
	if changed {
		p.MountRoots = roots
	}

	// Users: narrowed to the uids seen (an empty list allows every
	// non-root uid), or widened to them.
	if len(l.uids) > 0 {
		p.AllowedUIDs = union(base.AllowedUIDs, sortedInts(l.uids))
	}
	if len(l.gids) > 0 && l.gidsOK {
		p.AllowedGIDs = union(base.AllowedGIDs, sortedInts(l.gids))
	}
	if len(l.images) > 0 {
		p.AllowedImages = union(base.AllowedImages, sortedKeys(l.images))
	}
	if ips := sortedKeys(l.hostIPs); len(ips) > 0 && !subset(ips, base.AllowedHostIPs) {
		p.AllowedHostIPs = union(base.AllowedHostIPs, ips)
	}
	if nets := sortedKeys(l.networks); len(nets) > 0 && !subset(nets, withDefaultBridge(base.AllowedNetworks)) {
		p.AllowedNetworks = union(base.AllowedNetworks, nets)
	}
	widen := func(observed map[string]bool, base []string) []string {
		if xs := sortedKeys(observed); len(xs) > 0 && !subset(xs, base) {
			return union(base, xs)
		}
		return nil
	}
	p.NetworkDrivers = widen(l.netDrv, base.NetworkDrivers)
	p.VolumeDrivers = widen(l.volDrv, base.VolumeDrivers)
	p.AllowedLocalVolumeKinds = widen(l.volKinds, base.AllowedLocalVolumeKinds)
	if len(l.ops) > 0 {
		p.Operations = map[string]string{}
		for op := range l.ops {
			p.Operations[op] = "allow"
		}
	}
}

// withDefaultBridge: "default" and "bridge" name the same network.
func withDefaultBridge(nets []string) []string {
	if slices.Contains(nets, "default") || slices.Contains(nets, "bridge") {
		return append(slices.Clone(nets), "default", "bridge")
	}
	return nets
}

func deepestRoot(roots []policy.MountRoot, p string) int {
	best := -1
	for i, r := range roots {
		if p == r.Path || strings.HasPrefix(p, strings.TrimSuffix(r.Path, "/")+"/") {
			if best < 0 || len(r.Path) > len(roots[best].Path) {
				best = i
			}
		}
	}
	return best
}

func sortedInts(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func union[T interface{ ~int | ~string }](a, b []T) []T {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

func subset(xs, of []string) bool {
	for _, x := range xs {
		if !slices.Contains(of, x) {
			return false
		}
	}
	return true
}

// Reason shapes of the library settings learn widens. A reason that matches
// none (or names something learn did not widen) stays for review: a
// message learn does not know is never assumed lifted.
var (
	reOperation = regexp.MustCompile(`^operation (\S+) (is refused by the policy|is not allowed by the default policy|is set to judge but)`)
	reImage     = regexp.MustCompile(`^image (\S+) is not allowed: allowed_images`)
	reUID       = regexp.MustCompile(`\(uid (\d+)\) is not in allowed_uids`)
	reGID       = regexp.MustCompile(`\(gid (-?\d+)\) is not in allowed_gids`)
	rePort      = regexp.MustCompile(`^port \S+ binds (.+): only `)
	reNetwork   = regexp.MustCompile(`^network (\S+)(?: \((\S+)\))? is not allowed: only`)
	reNetDriver = regexp.MustCompile(`^network driver (\S+) is not allowed: network_drivers`)
	reVolDriver = regexp.MustCompile(`^volume driver (\S+) is not allowed: only local and volume_drivers`)
	reVolKind   = regexp.MustCompile(`^volume .*: (local driver options .*: allowed_local_volume_kinds|local driver option o=.* names a network server)`)
	reMount     = regexp.MustCompile(`^mount (.+?) (is not under an allowed root|is (ro|rw).* but .* allows only)`)
)

// lifts reports whether the proposal lifts reason for record r.
func (l *learner) lifts(r *audit.Record, reason string) bool {
	p := l.p
	if m := reOperation.FindStringSubmatch(reason); m != nil {
		return p.Operations[m[1]] == "allow"
	}
	if m := reImage.FindStringSubmatch(reason); m != nil {
		return slices.Contains(p.AllowedImages, m[1])
	}
	if m := reUID.FindStringSubmatch(reason); m != nil {
		uid, _ := strconv.Atoi(m[1])
		return slices.Contains(p.AllowedUIDs, uid)
	}
	if m := reGID.FindStringSubmatch(reason); m != nil {
		gid, _ := strconv.Atoi(m[1])
		return slices.Contains(p.AllowedGIDs, gid)
	}
	if m := rePort.FindStringSubmatch(reason); m != nil {
		ip := net.ParseIP(m[1])
		return ip != nil && !ip.IsUnspecified() && slices.Contains(p.AllowedHostIPs, ip.String())
	}
	if m := reNetwork.FindStringSubmatch(reason); m != nil {
		name := m[1]
		if m[2] != "" {
			name = m[2]
		}
		return slices.Contains(p.AllowedNetworks, name) || slices.Contains(p.AllowedNetworks, m[1])
	}
	if m := reNetDriver.FindStringSubmatch(reason); m != nil {
		return slices.Contains(p.NetworkDrivers, m[1])
	}
	if m := reVolDriver.FindStringSubmatch(reason); m != nil {
		return slices.Contains(p.VolumeDrivers, m[1])
	}
	if m := reVolKind.FindStringSubmatch(reason); m != nil {
		kind := factString(factMap(r.Facts["volume"]), "local_mount")
		if strings.Contains(m[1], "names a network server") {
			kind = "network"
		}
		return kind != "" && slices.Contains(p.AllowedLocalVolumeKinds, kind)
	}
	if m := reMount.FindStringSubmatch(reason); m != nil {
		// The label starts with the host path; the real path follows
		// "resolves to" when a symlink leads elsewhere.
		for _, root := range p.MountRoots {
			for _, fact := range stringList(r.Facts["mounts"]) {
				if strings.Contains(fact, " "+root.Path+":") || strings.Contains(fact, "=>"+root.Path+":") {
					if strings.Contains(m[1], root.Path) || strings.Contains(reason, "resolves to "+root.Path+")") {
						return true
					}
				}
			}
		}
	}
	return false
}
