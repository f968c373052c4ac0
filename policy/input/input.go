// Package input turns a classified request into the document policies judge:
// it decodes bodies the way dockerd does and normalizes the facts that reach
// the host.
package input

import "github.com/sockproxy/sockproxy/proxy"

// Input is the document a policy sees as `input`. Field names are the
// contract with policy authors (docs/policy-input.md): never rename them.
type Input struct {
	Operation  string              `json:"operation"`   // e.g. "container.create"
	Method     string              `json:"method"`      // HTTP method
	Path       string              `json:"path"`        // request path as sent
	APIVersion string              `json:"api_version"` // effective version: the one named, or the configured default for unversioned paths
	Versioned  bool                `json:"versioned"`   // whether the client named a version in the path
	Query      map[string][]string `json:"query"`
	Vars       map[string]string   `json:"vars"` // path variables (percent-decoded)
	Caller     proxy.Caller        `json:"caller"`
	// Body is the decoded request body as dockerd will read it (canonical
	// field names; unknown nested keys dropped), or null.
	Body any `json:"body"`
	// Container holds normalized facts of a container.create request.
	Container *ContainerFacts `json:"container,omitempty"`
	// Exec holds normalized facts of an exec.create request.
	Exec *ExecFacts `json:"exec,omitempty"`
	// NetworkCreate holds normalized facts of a network.create request.
	NetworkCreate *NetworkCreateFacts `json:"network,omitempty"`
	// VolumeCreate holds normalized facts of a volume.create request.
	VolumeCreate *VolumeCreateFacts `json:"volume,omitempty"`
	// Connect holds the endpoint settings of a network.connect request.
	Connect *ConnectFacts `json:"connect,omitempty"`
	// Commit holds normalized facts of a container.commit request.
	Commit *CommitFacts `json:"commit,omitempty"`
	// Update holds normalized facts of a container.update request.
	Update *UpdateFacts `json:"update,omitempty"`
	// Target is the existing object the request acts on, resolved through
	// the daemon before judging (absent for operations that name none, for
	// reads that are not resolved, and when the input has no daemon).
	Target *Target `json:"target,omitempty"`
	// FormBody is true when the request may carry a form-encoded body
	// (Content-Type application/x-www-form-urlencoded): dockerd's handlers
	// parse it, and its parameters override the query the policy judged.
	FormBody bool `json:"form_body"`
	// BodySize is the length in bytes of the request body as received, for
	// operations whose body is judged (0 for others).
	BodySize int `json:"body_size"`
}

// ContainerFacts are the normalized, security-relevant facts of a create
// request, computed the way dockerd will apply the body at APIVersion.
type ContainerFacts struct {
	Name       string            `json:"name"` // ?name= query value
	Image      string            `json:"image"`
	User       UserFacts         `json:"user"`
	Mounts     []Mount           `json:"mounts"`
	Ports      []Port            `json:"ports"`
	PublishAll bool              `json:"publish_all"`
	Networks   []Network         `json:"networks"`
	Namespaces Namespaces        `json:"namespaces"`
	Privileges Privileges        `json:"privileges"`
	Labels     map[string]string `json:"labels"`
}

// UserFacts describe the user the container's process will run as.
type UserFacts struct {
	Raw string `json:"raw"` // Config.User as sent ("" when absent)
	// Source is "request" when Config.User is set, "image" when it is empty
	// and the image's default user applies.
	Source string `json:"source"`
	Value  string `json:"value"` // the effective user string ("" means root)
	// UID and GID are numeric when they can be told without the image's
	// /etc/passwd: a number, or the name "root". -1 when unknown.
	UID int `json:"uid"`
	GID int `json:"gid"`
	// Root is true when the effective user is uid 0 (empty, "0", "root", "0:x", "root:x").
	Root bool `json:"root"`
	// Resolved is false when the effective user could not be determined
	// (e.g. the image could not be inspected) or is a name other than root.
	Resolved bool `json:"resolved"`
}

// Mount is one mount the container will get, whatever field asked for it.
type Mount struct {
	// Origin: "binds", "mounts", "volumes_from" (copied from another
	// container), "tmpfs" (HostConfig.Tmpfs), "volumes" (Config.Volumes:
	// anonymous volumes) or "image_volume".
	Origin string `json:"origin"`
	// Type: "bind", "volume", "tmpfs", "npipe", "cluster", "image", or
	// "unknown" (a volumes_from container that does not exist yet).
	Type   string `json:"type"`
	Source string `json:"source"` // as dockerd will use it (bind: path.Clean'ed absolute path; volume: name, "" for anonymous)
	Target string `json:"target"`
	// HostBind is true when the mount exposes a host path: a bind, or a
	// local-driver volume whose options bind or overlay a host path.
	HostBind bool `json:"host_bind"`
	// HostPath is the host path a host bind exposes ("" when not a host bind).
	HostPath string `json:"host_path"`
	// RealPath is HostPath with symlinks evaluated on the host by the proxy.
	RealPath string `json:"real_path"`
	// PathStatus: "resolved" (RealPath valid), "missing" (does not exist
	// yet: dockerd would create it as root), "unresolvable" (the proxy cannot
	// see the host's filesystem or the lookup failed), "" when not a host bind.
	PathStatus string `json:"path_status"`
	// PathDiffers is true when RealPath differs from HostPath (a symlink on the way).
	PathDiffers bool `json:"path_differs"`
	ReadOnly    bool `json:"read_only"`
	// ReadOnlyRecursive is true when read-only also applies to submounts
	// (bind mounts on API >= 1.44 unless ReadOnlyNonRecursive).
	ReadOnlyRecursive bool   `json:"read_only_recursive"`
	Propagation       string `json:"propagation"` // "", "private", "rprivate", "shared", "rshared", "slave", "rslave"
	Relabel           string `json:"relabel"`     // "", "z", "Z"
	NoCopy            bool   `json:"nocopy"`
	CreateMountpoint  bool   `json:"create_mountpoint"`
	// NonRecursive: a bind without its submounts (BindOptions.NonRecursive).
	NonRecursive bool `json:"non_recursive"`
	// ReadOnlyForceRecursive: dockerd fails rather than fall back to a
	// non-recursive read-only bind on kernels without recursive read-only.
	ReadOnlyForceRecursive bool   `json:"read_only_force_recursive"`
	Subpath                string `json:"subpath,omitempty"` // volume or image subpath mounted
	// LocalMount classifies a local-driver volume's options: "" (plain
	// volume), "bind" (o=bind: device is a host path), "overlay"
	// (lowerdir/upperdir/workdir are host paths), "network" (nfs, cifs),
	// "tmpfs", "device" (another filesystem type on a host device).
	LocalMount string `json:"local_mount,omitempty"`
	// HostPathOption names the volume option HostPath came from ("device",
	// "lowerdir", "upperdir", "workdir"); a volume exposing several host
	// paths gives one entry per path.
	HostPathOption string `json:"host_path_option,omitempty"`
	// Volume facts (Type "volume"): driver and its options, from the request
	// or looked up through the daemon for an existing named volume.
	Driver        string            `json:"driver"`
	DriverOptions map[string]string `json:"driver_options"`
	// VolumeFound is true when a named volume was found on the daemon.
	VolumeFound bool `json:"volume_found"`
	// FromContainer names the container a volumes_from mount was copied from.
	FromContainer string `json:"from_container,omitempty"`
}

// Port is one published port binding.
type Port struct {
	ContainerPort string `json:"container_port"` // "30412"
	Protocol      string `json:"protocol"`       // "tcp", "udp", "sctp"
	HostIP        string `json:"host_ip"`        // as sent ("" means all interfaces)
	HostPort      string `json:"host_port"`
	// AllInterfaces is true for an empty host IP, 0.0.0.0 or :: (any spelling).
	AllInterfaces bool `json:"all_interfaces"`
	// Loopback is true for an address in 127.0.0.0/8 or ::1.
	Loopback bool `json:"loopback"`
}

// Network is one network the container joins at create.
type Network struct {
	// Ref is the reference as sent (NetworkMode or an EndpointsConfig key).
	Ref string `json:"ref"`
	// Mode: "default", "bridge", "host", "none", "container", "named".
	Mode string `json:"mode"`
	Name string `json:"name"` // resolved through the daemon ("" when not found)
	ID   string `json:"id"`
	// Found is true when the daemon knows the network (IDs, prefixes and
	// names count); "default", "host", "none" and "container:" are built in.
	Found bool `json:"found"`
	// Driver of the resolved network ("bridge", "host", "macvlan", ...).
	Driver string `json:"driver,omitempty"`
	// Options of the resolved network (e.g. macvlan "parent").
	Options map[string]string `json:"options,omitempty"`
	// Labels of the resolved network, and the owner its owner labels name
	// (as target.owner): set for every network the daemon resolved, so that
	// a create may name a network the caller owns, as a connect may join it.
	Labels map[string]string `json:"labels,omitempty"`
	Owner  *Owner            `json:"owner,omitempty"`
	// Container is the referenced container for Mode "container".
	Container  string            `json:"container,omitempty"`
	Aliases    []string          `json:"aliases,omitempty"`
	IPv4       string            `json:"ipv4,omitempty"`
	IPv6       string            `json:"ipv6,omitempty"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
}

// Namespaces are the container's namespace modes.
type Namespaces struct {
	Network Namespace `json:"network"`
	PID     Namespace `json:"pid"`
	IPC     Namespace `json:"ipc"`
	UTS     Namespace `json:"uts"`
	User    Namespace `json:"userns"`
	Cgroup  Namespace `json:"cgroupns"`
}

// Namespace is one namespace mode, as dockerd will apply it.
type Namespace struct {
	Mode string `json:"mode"` // effective value ("" = private default)
	// Host is true when the request asks for the host's namespace: "host",
	// a container that is itself on the host's, or (network) a network
	// whose driver is "host". A daemon default that is the host's (cgroupns
	// on cgroup v1) is shown by Mode and Default, not by Host.
	Host      bool   `json:"host"`
	Container string `json:"container"` // "container:<ref>" target, else ""
	// Default is true when the request left the mode empty and Mode is
	// dockerd's default for the API version (and host cgroup version).
	Default bool `json:"default"`
}

// Privileges are the fields that widen what the container may do on the host.
type Privileges struct {
	Privileged        bool             `json:"privileged"`
	CapAdd            []string         `json:"cap_add"` // normalized: upper case, "CAP_" prefix stripped
	CapDrop           []string         `json:"cap_drop"`
	Devices           []string         `json:"devices"` // host paths
	DeviceCgroupRules []string         `json:"device_cgroup_rules"`
	DeviceRequests    []map[string]any `json:"device_requests"`
	SecurityOpt       []string         `json:"security_opt"`
	// Seccomp is the seccomp profile asked for: "" (default), "unconfined",
	// "builtin" or "custom" (a JSON profile). AppArmor is the AppArmor
	// profile name ("" default). Label lists the SELinux label options.
	Seccomp  string   `json:"seccomp"`
	AppArmor string   `json:"apparmor"`
	Label    []string `json:"label"`
	// NoNewPrivileges is set when SecurityOpt names no-new-privileges (null: daemon default).
	NoNewPrivileges *bool `json:"no_new_privileges"`
	// Unconfined lists what a security option switches off: "seccomp",
	// "apparmor", "label", "systempaths", "no-new-privileges=false",
	// "writable-cgroups" (sorted).
	Unconfined            []string          `json:"unconfined"`
	MaskedPathsOverride   bool              `json:"masked_paths_override"` // MaskedPaths set (an empty list removes the defaults)
	ReadonlyPathsOverride bool              `json:"readonly_paths_override"`
	Runtime               string            `json:"runtime"`
	CgroupParent          string            `json:"cgroup_parent"`
	Cgroup                string            `json:"cgroup"`    // HostConfig.Cgroup ("container:<ref>" shares its cgroup)
	GroupAdd              []string          `json:"group_add"` // supplementary groups of the process
	Sysctls               map[string]string `json:"sysctls"`
	LogDriver             string            `json:"log_driver"`
	LogOptions            map[string]string `json:"log_options"`
	VolumeDriver          string            `json:"volume_driver"`
	Links                 []string          `json:"links"`
	ExtraHosts            []string          `json:"extra_hosts"`
	Annotations           map[string]string `json:"annotations"`
	OomKillDisable        bool              `json:"oom_kill_disable"`
	Init                  bool              `json:"init"`
}

// ExecFacts are the normalized facts of an exec.create request.
type ExecFacts struct {
	Container  string    `json:"container"` // reference as sent
	Privileged bool      `json:"privileged"`
	User       UserFacts `json:"user"` // Source "container" when User is empty
	Cmd        []string  `json:"cmd"`
}
