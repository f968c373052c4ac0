package input

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"path"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
)

// Owner labels: containers, networks and volumes created through the proxy
// carry them (Options.OwnerLabels), naming the caller that created them.
const (
	OwnerUIDLabel  = "io.sockproxy.owner.uid"
	OwnerUserLabel = "io.sockproxy.owner.user"
)

// Target is the existing object a request acts on, resolved through the
// daemon before judging: references by name, full ID or ID prefix, and exec
// IDs (resolved to their container), all become the object dockerd will
// act on. A reference the daemon does not know is answered 404 before the
// policy runs (dockerd would answer the same), so a target is always found.
type Target struct {
	// Kind: "container", "network", "volume" or "image".
	Kind string `json:"kind"`
	// Ref is the reference as sent (path variable, query or body).
	Ref string `json:"ref"`
	// ExecID is set when the request named an exec (exec.start,
	// exec.resize): the target is the exec's container.
	ExecID string            `json:"exec_id,omitempty"`
	ID     string            `json:"id"`
	Name   string            `json:"name"` // containers: without the leading "/"; images: ""
	Labels map[string]string `json:"labels"`
	// Owner is read from the owner labels.
	Owner Owner `json:"owner"`

	// Containers.
	Image      string     `json:"image,omitempty"` // Config.Image as created
	User       *UserFacts `json:"user,omitempty"`  // Config.User (Source "container")
	Running    bool       `json:"running,omitempty"`
	Privileged bool       `json:"privileged,omitempty"`
	// NoNewPrivileges: the container runs with no-new-privileges (setuid
	// binaries written into it cannot raise an exec's privileges).
	NoNewPrivileges bool `json:"no_new_privileges,omitempty"`
	// Namespaces are the HostConfig modes: network, pid, ipc, uts, userns,
	// cgroupns ("" = dockerd's default).
	Namespaces map[string]string `json:"namespaces,omitempty"`
	Mounts     []TargetMount     `json:"mounts,omitempty"`
	// HostAccess is what the container reaches of the host, in the shapes
	// of container.create's facts, so that the create rules judge it for
	// exec.create and exec.start (every exec'd process shares it); nil for
	// other operations.
	HostAccess *HostAccess `json:"host_access,omitempty"`

	// Networks and volumes.
	Driver   string            `json:"driver,omitempty"`
	Options  map[string]string `json:"options,omitempty"`
	Scope    string            `json:"scope,omitempty"`
	Internal bool              `json:"internal,omitempty"`

	// Images.
	RepoTags []string `json:"repo_tags,omitempty"`

	// Container is, for network.connect and network.disconnect, the
	// container the body names, resolved the same way.
	Container *Target `json:"container,omitempty"`

	exec *ExecInfo // the exec instance an exec ID named
}

// HostAccess is an existing container's settings that reach the host, as
// the facts of the create that would have made it.
type HostAccess struct {
	// Namespaces from the stored modes: Host and Container as for a create
	// (container: chains followed); Default is always false (inspect does
	// not tell a default from a request), and cgroupns host counts as the
	// host's only on a cgroup v2 host (on v1 it is dockerd's default).
	Namespaces Namespaces `json:"namespaces"`
	// Privileges from Privileged, CapAdd, Devices, DeviceCgroupRules and
	// SecurityOpt; the other fields are left empty.
	Privileges Privileges `json:"privileges"`
	// Mounts from inspect's Mounts, read as VolumesFrom reads another
	// container's (origin "container"): binds resolved on the host, named
	// volumes looked up and their local-driver options classified.
	Mounts []Mount `json:"mounts"`
}

// Owner is the creator an object's owner labels name.
type Owner struct {
	// Known is true when the object carries a numeric owner uid label.
	Known bool   `json:"known"`
	UID   int    `json:"uid"` // -1 when not known
	User  string `json:"user"`
}

// TargetMount is one mount of an existing container (its inspect "Mounts").
type TargetMount struct {
	Type        string `json:"type"`
	Name        string `json:"name,omitempty"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Driver      string `json:"driver,omitempty"`
	ReadOnly    bool   `json:"read_only"`
	// LocalMount classifies a writable local volume by its driver options,
	// as for mounts ("" plain, "bind", "overlay", "network", "tmpfs",
	// "device"); looked up for container.archive.put only, omitted when
	// empty.
	LocalMount string `json:"local_mount,omitempty"`
}

// ExecInfo is what the normalizer needs of an exec instance.
type ExecInfo struct {
	ID          string
	ContainerID string
	// The process as dockerd stored it at exec create: User is the exec's,
	// or its container's when the exec named none ("" is root).
	User       string
	Privileged bool
	Cmd        []string
}

// ExecInspector is implemented by Daemons that can look exec instances up
// (HTTPDaemon does); without it exec IDs cannot be resolved and requests
// naming one are refused.
type ExecInspector interface {
	InspectExec(ctx context.Context, id string) (*ExecInfo, error)
}

// NetworkCreateFacts are the normalized facts of a network.create request.
type NetworkCreateFacts struct {
	Name string `json:"name"`
	// Driver is the effective driver: "bridge" when the request names none.
	Driver     string            `json:"driver"`
	Scope      string            `json:"scope"`
	Internal   bool              `json:"internal"`
	Attachable bool              `json:"attachable"`
	Ingress    bool              `json:"ingress"`
	ConfigOnly bool              `json:"config_only"`
	ConfigFrom string            `json:"config_from"` // network whose configuration is used ("" none)
	Options    map[string]string `json:"options"`
	Labels     map[string]string `json:"labels"`
	// IPAMDriver is "default" when the request names none.
	IPAMDriver  string            `json:"ipam_driver"`
	IPAMOptions map[string]string `json:"ipam_options"`
	// Subnets lists every address range the request asks for: subnets,
	// IP ranges, gateways and auxiliary addresses (gateways and addresses
	// as /32 or /128).
	Subnets []string `json:"subnets"`
}

// VolumeCreateFacts are the normalized facts of a volume.create request.
type VolumeCreateFacts struct {
	Name string `json:"name"`
	// Driver is the effective driver: "local" when the request names none.
	Driver  string            `json:"driver"`
	Options map[string]string `json:"options"`
	Labels  map[string]string `json:"labels"`
	// LocalMount classifies local-driver options as for mounts: "" (plain
	// volume), "bind", "overlay", "network", "tmpfs" or "device".
	LocalMount string `json:"local_mount"`
	// HostPaths are the host paths the local driver's options would mount.
	HostPaths []string `json:"host_paths"`
	// Cluster is true for a swarm cluster volume (ClusterVolumeSpec).
	Cluster bool `json:"cluster"`
}

// UpdateFacts are the normalized facts of a container.update request: the
// fields dockerd applies (0 or null: unchanged) and the names of the other
// fields the request sets, which dockerd does not apply on update.
type UpdateFacts struct {
	Memory            int64         `json:"memory"`
	MemoryReservation int64         `json:"memory_reservation"`
	MemorySwap        int64         `json:"memory_swap"`
	NanoCPUs          int64         `json:"nano_cpus"`
	CPUShares         int64         `json:"cpu_shares"`
	CPUPeriod         int64         `json:"cpu_period"`
	CPUQuota          int64         `json:"cpu_quota"`
	CpusetCpus        string        `json:"cpuset_cpus"`
	CpusetMems        string        `json:"cpuset_mems"`
	BlkioWeight       int           `json:"blkio_weight"`
	PidsLimit         *int64        `json:"pids_limit"` // null: unchanged; 0 or -1: unlimited
	RestartPolicy     RestartPolicy `json:"restart_policy"`
	// Other lists the other Resources fields the request sets (by their
	// JSON name, sorted), e.g. "Devices", "CgroupParent", "KernelMemory".
	Other []string `json:"other"`
}

// ConnectFacts are the endpoint settings of a network.connect request.
type ConnectFacts struct {
	Container    string            `json:"container"` // as sent
	Aliases      []string          `json:"aliases"`
	IPv4         string            `json:"ipv4"` // static addresses asked for ("" none)
	IPv6         string            `json:"ipv6"`
	LinkLocalIPs []string          `json:"link_local_ips"`
	MacAddress   string            `json:"mac_address"`
	DriverOpts   map[string]string `json:"driver_opts"`
	Links        []string          `json:"links"`
}

// CommitFacts are the normalized facts of a container.commit request.
type CommitFacts struct {
	// User is the body's Config.User ("" keeps the container's user).
	User string `json:"user"`
}

// RestartPolicy is the restart policy a container.update asks for.
type RestartPolicy struct {
	Name              string `json:"name"` // "" (unchanged), "no", "always", "on-failure", "unless-stopped"
	MaximumRetryCount int    `json:"maximum_retry_count"`
}

// isFormBody reports whether a request may carry a form-encoded body: its
// Content-Type is application/x-www-form-urlencoded, and the body is not
// known to be empty. Go's ParseForm (which dockerd's handlers call) reads
// such a body on POST, PUT and PATCH, and its values win over the query's.
func isFormBody(req *requestView) bool {
	if req.method != http.MethodPost && req.method != http.MethodPut && req.method != http.MethodPatch {
		return false
	}
	ct := req.header.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		// Go's ParseForm fails on it too, but do not guess: a header that
		// names the form type in any spelling counts.
		return strings.Contains(strings.ToLower(ct), "x-www-form-urlencoded")
	}
	if mt != "application/x-www-form-urlencoded" {
		return false
	}
	return !req.knownEmpty
}

// requestView is what isFormBody reads of a request.
type requestView struct {
	method     string
	header     http.Header
	knownEmpty bool
}

// targetRef says where an operation names the object it acts on.
type targetRef struct {
	kind string // "container", "exec", "network", "volume", "image"
	from string // "var:<name>" or "query:<name>"
}

// targetOps are the operations whose target is resolved before judging:
// every operation that changes, runs in, or reads the files of an existing
// object. Plain reads (inspect, lists, logs of images, ...) are not, to
// keep them cheap: an agent runtime inspects every container.
var targetOps = map[string]targetRef{
	"container.archive.head": {"container", "var:name"},
	"container.export":       {"container", "var:name"},
	"container.changes":      {"container", "var:name"},
	"container.top":          {"container", "var:name"},
	"container.logs":         {"container", "var:name"},
	"container.stats":        {"container", "var:name"},
	"container.attach.ws":    {"container", "var:name"},
	"container.archive.get":  {"container", "var:name"},
	"container.kill":         {"container", "var:name"},
	"container.pause":        {"container", "var:name"},
	"container.unpause":      {"container", "var:name"},
	"container.restart":      {"container", "var:name"},
	"container.start":        {"container", "var:name"},
	"container.stop":         {"container", "var:name"},
	"container.wait":         {"container", "var:name"},
	"container.resize":       {"container", "var:name"},
	"container.attach":       {"container", "var:name"},
	"container.rename":       {"container", "var:name"},
	"container.update":       {"container", "var:name"},
	"container.archive.put":  {"container", "var:name"},
	"container.delete":       {"container", "var:name"},
	"container.commit":       {"container", "query:container"},
	"exec.create":            {"container", "var:name"},
	"exec.start":             {"exec", "var:name"},
	"exec.resize":            {"exec", "var:name"},
	"network.connect":        {"network", "var:id"},
	"network.disconnect":     {"network", "var:id"},
	"network.delete":         {"network", "var:id"},
	"volume.delete":          {"volume", "var:name"},
	"volume.update":          {"volume", "var:name"},
	"image.tag":              {"image", "var:name"},
	"image.push":             {"image", "var:name"},
	"image.delete":           {"image", "var:name"},
}

// TargetOperations lists the operations whose target Build resolves.
func TargetOperations() []string {
	ops := make([]string, 0, len(targetOps))
	for op := range targetOps {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}

// notFound is the answer for a reference the daemon does not know: what
// dockerd would answer, without asking the policy.
func notFound(kind, ref string) error {
	return &RequestError{Status: http.StatusNotFound, Message: fmt.Sprintf("No such %s: %s", kind, ref), DaemonWords: true}
}

// notFoundFor words a missing target's answer as dockerd does for op where
// its handler says more than its inspect would (dockerd 20.10 to 28).
func notFoundFor(op, ref string, err error) error {
	var re *RequestError
	if !errors.As(err, &re) || re.Status != http.StatusNotFound {
		return err
	}
	var msg string
	switch op {
	case "container.kill":
		msg = fmt.Sprintf("Cannot kill container: %s: %s", ref, re.Message)
	case "network.delete":
		msg = fmt.Sprintf("network %s not found", ref)
	case "volume.delete":
		msg = fmt.Sprintf("get %s: no such volume", ref)
	case "image.delete":
		msg = "No such image: " + withDefaultTag(ref)
	default:
		return err
	}
	return &RequestError{Status: http.StatusNotFound, Message: msg, DaemonWords: true}
}

// withDefaultTag is ref as dockerd names a missing image it was asked to
// delete: a name without tag or digest gains ":latest" (a full ID does not).
func withDefaultTag(ref string) string {
	if fullImageID(ref) || strings.Contains(ref, "@") || strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") {
		return ref
	}
	return ref + ":latest"
}

func fullImageID(ref string) bool {
	hex := strings.TrimPrefix(ref, "sha256:")
	if len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if !strings.ContainsRune(hexDigits, c) {
			return false
		}
	}
	return true
}

// resolveTarget fills in.Target for operations that act on an existing
// object. body is the decoded body (network.connect/disconnect name their
// container there), or nil.
func (n *normalizer) resolveTarget(in *Input, body any) error {
	spec, ok := targetOps[in.Operation]
	if !ok || n.opts.Daemon == nil {
		return nil
	}
	var ref string
	if name, ok := strings.CutPrefix(spec.from, "var:"); ok {
		ref = in.Vars[name]
	} else if name, ok := strings.CutPrefix(spec.from, "query:"); ok {
		if v := in.Query[name]; len(v) > 0 {
			ref = v[0]
		}
	}
	if ref == "" {
		// dockerd answers such requests itself (commit without container
		// is refused, an empty name does not route).
		return nil
	}
	var container *Target
	if in.Operation == "network.connect" || in.Operation == "network.disconnect" {
		var cref string
		switch b := body.(type) {
		case *network.ConnectOptions:
			cref = b.Container
		case *network.DisconnectOptions:
			cref = b.Container
		}
		if cref != "" {
			// Before the network, as dockerd does: a missing container is
			// what it reports when both are missing.
			c, err := n.lookupTarget("container", cref)
			if err != nil {
				return err
			}
			container = c
		}
	}
	t, err := n.lookupTarget(spec.kind, ref)
	if err != nil {
		return notFoundFor(in.Operation, ref, err)
	}
	t.Container = container
	if in.Operation == "container.archive.put" {
		if err := n.classifyVolumes(t); err != nil {
			return err
		}
	}
	if in.Operation == "exec.start" && t.exec != nil {
		in.Exec = execStartFacts(t)
	}
	if in.Operation == "exec.create" || in.Operation == "exec.start" {
		cref := ref
		if spec.kind == "exec" {
			cref = t.ID // looked up by the exec's container ID
		}
		if t.HostAccess, err = n.hostAccess(cref); err != nil {
			return err
		}
	}
	in.Target = t
	return nil
}

// classifyVolumes fills LocalMount for the writable local volumes of an
// archive put's container: one whose options bind a host path takes the
// archive's files, written as root, onto the host.
func (n *normalizer) classifyVolumes(t *Target) error {
	for i := range t.Mounts {
		m := &t.Mounts[i]
		if m.Type != "volume" || m.ReadOnly || m.Driver != "local" || m.Name == "" {
			continue
		}
		v, err := n.opts.Daemon.InspectVolume(n.ctx, m.Name)
		if errors.Is(err, ErrNotFound) {
			continue // gone meanwhile: dockerd will not write there either
		}
		if err != nil {
			return lookupError("volume "+m.Name, err)
		}
		m.LocalMount, _ = localMount(v.Options)
	}
	return nil
}

// execStartFacts are the facts of the exec instance an exec.start starts,
// as dockerd stored them at its create: one made directly on dockerd, or by
// another caller, is judged like an exec.create by this caller.
func execStartFacts(t *Target) *ExecFacts {
	x := t.exec
	u := parseUser(x.User)
	u.Raw, u.Source = x.User, "exec"
	return &ExecFacts{Container: t.ID, Privileged: x.Privileged, User: u, Cmd: nonNilSlice(x.Cmd)}
}

// hostAccess reads what the container ref (already looked up) reaches of
// the host, reusing the create normalizer's readings of each setting.
func (n *normalizer) hostAccess(ref string) (*HostAccess, error) {
	c, err := n.container(ref)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, notFound("container", ref) // removed meanwhile
	}
	h := &HostAccess{}
	devices := make([]container.DeviceMapping, 0, len(c.Devices))
	for _, d := range c.Devices {
		devices = append(devices, container.DeviceMapping{PathOnHost: d})
	}
	h.Privileges = n.privileges(&container.HostConfig{Privileged: c.Privileged, CapAdd: c.CapAdd, SecurityOpt: requestedSecurityOpt(c),
		Resources: container.Resources{Devices: devices, DeviceCgroupRules: c.DeviceCgroupRules}})
	if h.Namespaces, err = n.targetNamespaces(c); err != nil {
		return nil, err
	}
	// Read as VolumesFrom reads another container's mounts, from the cache
	// under the container's ID (no second inspect).
	n.containers[c.ID] = c
	if h.Mounts, err = n.volumesFrom(c.ID); err != nil {
		return nil, err
	}
	for i := range h.Mounts {
		h.Mounts[i].Origin, h.Mounts[i].FromContainer = "container", ""
		if h.Mounts[i].DriverOptions == nil {
			h.Mounts[i].DriverOptions = map[string]string{}
		}
	}
	if h.Mounts == nil {
		h.Mounts = []Mount{}
	}
	return h, nil
}

// requestedSecurityOpt is a container's SecurityOpt without the
// "label=disable" dockerd appends itself to a privileged or host pid or ipc
// container's when its create named no label option (generateSecurityOpt):
// that follows from settings judged on their own, and refusing it would
// refuse every exec into a container a profile allowed host pid.
func requestedSecurityOpt(c *ContainerInfo) []string {
	opts := c.SecurityOpt
	last := len(opts) - 1
	if last < 0 || opts[last] != "label=disable" || !(c.Privileged || c.PidMode == "host" || c.IpcMode == "host") {
		return opts
	}
	for _, o := range opts[:last] {
		if strings.Split(o, "=")[0] == "label" {
			return opts // the create named a label option: dockerd added none
		}
	}
	return opts[:last]
}

// targetNamespaces reads a container's stored namespace modes as a
// create's: the host's directly, through container: chains, or (network)
// through a network whose driver is host.
func (n *normalizer) targetNamespaces(c *ContainerInfo) (Namespaces, error) {
	var ns Namespaces
	var err error
	if ns.Network, err = n.shared(Namespace{Mode: c.NetworkMode}, func(c *ContainerInfo) string { return c.NetworkMode }); err != nil {
		return ns, err
	}
	switch m := c.NetworkMode; {
	case m == "" || m == "default" || m == "bridge" || m == "host" || m == "none" || strings.HasPrefix(m, "container:"):
	default:
		nw, err := n.network(m)
		if err != nil {
			return ns, err
		}
		ns.Network.Host = ns.Network.Host || nw.Driver == "host"
	}
	if ns.PID, err = n.shared(Namespace{Mode: c.PidMode}, func(c *ContainerInfo) string { return c.PidMode }); err != nil {
		return ns, err
	}
	if ns.IPC, err = n.shared(Namespace{Mode: c.IpcMode}, func(c *ContainerInfo) string { return c.IpcMode }); err != nil {
		return ns, err
	}
	if ns.UTS, err = n.shared(Namespace{Mode: c.UTSMode}, func(c *ContainerInfo) string { return c.UTSMode }); err != nil {
		return ns, err
	}
	ns.User = Namespace{Mode: c.UsernsMode, Host: c.UsernsMode == "host"}
	ns.Cgroup = Namespace{Mode: c.CgroupnsMode, Host: c.CgroupnsMode == "host" && n.opts.cgroupV2()}
	return ns, nil
}

func (n *normalizer) lookupTarget(kind, ref string) (*Target, error) {
	d := n.opts.Daemon
	switch kind {
	case "exec":
		ei, ok := d.(ExecInspector)
		if !ok {
			return nil, &RequestError{Status: http.StatusBadGateway, Message: "cannot judge the request: the daemon client cannot look up exec instances"}
		}
		x, err := ei.InspectExec(n.ctx, ref)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("exec instance", ref)
		}
		if err != nil {
			return nil, lookupError("exec "+ref, err)
		}
		t, err := n.lookupTarget("container", x.ContainerID)
		if err != nil {
			return nil, err
		}
		t.Ref, t.ExecID, t.exec = ref, x.ID, x
		return t, nil
	case "container":
		c, err := n.container(ref)
		if err != nil {
			return nil, err
		}
		if c == nil {
			return nil, notFound("container", ref)
		}
		return containerTarget(ref, c), nil
	case "network":
		nw, err := d.InspectNetwork(n.ctx, ref)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("network", ref)
		}
		if err != nil {
			return nil, lookupError("network "+ref, err)
		}
		return &Target{Kind: "network", Ref: ref, ID: nw.ID, Name: nw.Name, Labels: nonNilMap(nw.Labels), Owner: ownerOf(nw.Labels),
			Driver: nw.Driver, Options: nonNilMap(nw.Options), Scope: nw.Scope, Internal: nw.Internal}, nil
	case "volume":
		v, err := d.InspectVolume(n.ctx, ref)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("volume", ref)
		}
		if err != nil {
			return nil, lookupError("volume "+ref, err)
		}
		return &Target{Kind: "volume", Ref: ref, ID: v.Name, Name: v.Name, Labels: nonNilMap(v.Labels), Owner: ownerOf(v.Labels),
			Driver: v.Driver, Options: nonNilMap(v.Options), Scope: v.Scope}, nil
	case "image":
		img, err := d.InspectImage(n.ctx, ref)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("image", ref)
		}
		if err != nil {
			return nil, lookupError("image "+ref, err)
		}
		u := parseUser(img.User)
		u.Source = "image"
		return &Target{Kind: "image", Ref: ref, ID: img.ID, Labels: nonNilMap(img.Labels), Owner: ownerOf(img.Labels),
			User: &u, RepoTags: nonNilSlice(img.RepoTags)}, nil
	}
	return nil, fmt.Errorf("input: unknown target kind %q", kind)
}

func containerTarget(ref string, c *ContainerInfo) *Target {
	u := parseUser(c.User)
	u.Raw, u.Source = c.User, "container"
	t := &Target{
		Kind: "container", Ref: ref, ID: c.ID, Name: c.Name,
		Labels: nonNilMap(c.Labels), Owner: ownerOf(c.Labels),
		Image: c.Image, User: &u, Running: c.Running, Privileged: c.Privileged, NoNewPrivileges: c.NoNewPrivileges,
		Namespaces: map[string]string{
			"network": c.NetworkMode, "pid": c.PidMode, "ipc": c.IpcMode,
			"uts": c.UTSMode, "userns": c.UsernsMode, "cgroupns": c.CgroupnsMode,
		},
		Mounts: make([]TargetMount, 0, len(c.Mounts)),
	}
	for _, m := range c.Mounts {
		t.Mounts = append(t.Mounts, TargetMount{Type: m.Type, Name: m.Name, Source: m.Source, Destination: m.Destination, Driver: m.Driver, ReadOnly: !m.RW})
	}
	return t
}

func ownerOf(labels map[string]string) Owner {
	o := Owner{UID: -1, User: labels[OwnerUserLabel]}
	if v, ok := labels[OwnerUIDLabel]; ok {
		if uid, err := strconv.Atoi(v); err == nil && uid >= 0 && strconv.Itoa(uid) == v {
			o.Known, o.UID = true, uid
		}
	}
	return o
}

// ownerLabels sets the owner labels of an object created through the proxy
// in labels (allocating it when nil) and returns it: the caller's uid and
// user name, or empty values for a caller the kernel could not name (so
// that labels inherited from an image, or sent by the client, never make
// anyone the owner).
func ownerLabels(labels map[string]string, in *Input) map[string]string {
	if labels == nil {
		labels = map[string]string{}
	}
	uid, user := "", ""
	if in.Caller.Known {
		uid, user = strconv.Itoa(in.Caller.UID), in.Caller.User
	}
	labels[OwnerUIDLabel] = uid
	labels[OwnerUserLabel] = user
	return labels
}

// injectOwner writes the owner labels into the typed body of a create
// request, before it is canonicalized, so that what is judged is what is
// forwarded. It reports whether the operation creates an owned object.
func injectOwner(op string, typed any, in *Input) bool {
	switch b := typed.(type) {
	case *container.CreateRequest:
		if op != "container.create" || b.Config == nil {
			return false
		}
		b.Config.Labels = ownerLabels(b.Config.Labels, in)
	case *network.CreateRequest:
		b.Labels = ownerLabels(b.Labels, in)
	case *volume.CreateOptions:
		b.Labels = ownerLabels(b.Labels, in)
	default:
		return false
	}
	return true
}

func networkCreateFacts(b *network.CreateRequest) *NetworkCreateFacts {
	f := &NetworkCreateFacts{
		Name: b.Name, Driver: b.Driver, Scope: b.Scope, Internal: b.Internal, Attachable: b.Attachable,
		Ingress: b.Ingress, ConfigOnly: b.ConfigOnly, Options: nonNilMap(b.Options), Labels: nonNilMap(b.Labels),
		IPAMDriver: "default", IPAMOptions: map[string]string{}, Subnets: []string{},
	}
	if f.Driver == "" {
		f.Driver = "bridge" // dockerd's default driver on Linux
	}
	if b.ConfigFrom != nil {
		f.ConfigFrom = b.ConfigFrom.Network
	}
	if b.IPAM != nil {
		if b.IPAM.Driver != "" {
			f.IPAMDriver = b.IPAM.Driver
		}
		f.IPAMOptions = nonNilMap(b.IPAM.Options)
		for _, c := range b.IPAM.Config {
			for _, s := range []string{c.Subnet, c.IPRange} {
				if s != "" {
					f.Subnets = append(f.Subnets, s)
				}
			}
			addrs := []string{c.Gateway}
			for _, a := range c.AuxAddress {
				addrs = append(addrs, a)
			}
			sort.Strings(addrs)
			for _, a := range addrs {
				if a == "" {
					continue
				}
				if strings.Contains(a, ":") {
					f.Subnets = append(f.Subnets, a+"/128")
				} else {
					f.Subnets = append(f.Subnets, a+"/32")
				}
			}
		}
	}
	return f
}

func connectFacts(b *network.ConnectOptions) *ConnectFacts {
	f := &ConnectFacts{Container: b.Container, Aliases: []string{}, LinkLocalIPs: []string{}, DriverOpts: map[string]string{}, Links: []string{}}
	ep := b.EndpointConfig
	if ep == nil {
		return f
	}
	f.Aliases, f.MacAddress, f.DriverOpts, f.Links = nonNilSlice(ep.Aliases), ep.MacAddress, nonNilMap(ep.DriverOpts), nonNilSlice(ep.Links)
	if ep.IPAMConfig != nil {
		f.IPv4, f.IPv6, f.LinkLocalIPs = ep.IPAMConfig.IPv4Address, ep.IPAMConfig.IPv6Address, nonNilSlice(ep.IPAMConfig.LinkLocalIPs)
	}
	return f
}

func volumeCreateFacts(b *volume.CreateOptions) *VolumeCreateFacts {
	f := &VolumeCreateFacts{Name: b.Name, Driver: b.Driver, Options: nonNilMap(b.DriverOpts), Labels: nonNilMap(b.Labels),
		HostPaths: []string{}, Cluster: b.ClusterVolumeSpec != nil}
	if f.Driver == "" {
		f.Driver = "local"
	}
	if f.Driver == "local" {
		kind, parts := localMount(f.Options)
		f.LocalMount = kind
		for _, p := range parts {
			// The kernel resolves ".." in the device path: judge it cleaned.
			f.HostPaths = append(f.HostPaths, path.Clean(p.path))
		}
	}
	return f
}

// updateApplied are the Resources fields dockerd applies on update
// (daemon.UpdateContainer); UpdateFacts reports them by value.
var updateApplied = map[string]bool{
	"Memory": true, "MemoryReservation": true, "MemorySwap": true, "NanoCPUs": true, "CPUShares": true,
	"CPUPeriod": true, "CPUQuota": true, "CpusetCpus": true, "CpusetMems": true, "BlkioWeight": true, "PidsLimit": true,
}

func updateFacts(b *container.UpdateConfig) *UpdateFacts {
	r := b.Resources
	f := &UpdateFacts{
		Memory: r.Memory, MemoryReservation: r.MemoryReservation, MemorySwap: r.MemorySwap,
		NanoCPUs: r.NanoCPUs, CPUShares: r.CPUShares, CPUPeriod: r.CPUPeriod, CPUQuota: r.CPUQuota,
		CpusetCpus: r.CpusetCpus, CpusetMems: r.CpusetMems, BlkioWeight: int(r.BlkioWeight), PidsLimit: r.PidsLimit,
		RestartPolicy: RestartPolicy{Name: string(b.RestartPolicy.Name), MaximumRetryCount: b.RestartPolicy.MaximumRetryCount},
		Other:         []string{},
	}
	v := reflect.ValueOf(r)
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if updateApplied[sf.Name] || v.Field(i).IsZero() {
			continue
		}
		name := sf.Name
		if tag, _, _ := strings.Cut(sf.Tag.Get("json"), ","); tag != "" {
			name = tag
		}
		f.Other = append(f.Other, name)
	}
	sort.Strings(f.Other)
	return f
}
