package input

import (
	"context"
	"errors"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

// normalizer computes the facts of one request.
type normalizer struct {
	ctx     context.Context
	opts    Options
	version string
	// containers caches lookups of other containers within one request.
	containers map[string]*ContainerInfo
}

func (n *normalizer) containerFacts(cr *container.CreateRequest, name string) (*ContainerFacts, error) {
	cfg := cr.Config
	hc := cr.HostConfig
	if hc == nil {
		hc = &container.HostConfig{} // what dockerd uses when HostConfig is absent or null
	}
	f := &ContainerFacts{Name: name, Image: cfg.Image, Labels: nonNilMap(cfg.Labels)}
	var err error
	if f.User, err = n.createUser(cfg); err != nil {
		return nil, err
	}
	if f.Mounts, err = n.mounts(cfg, hc); err != nil {
		return nil, err
	}
	f.Ports, f.PublishAll = ports(hc)
	if f.Networks, err = n.networks(hc, cr.NetworkingConfig); err != nil {
		return nil, err
	}
	if f.Namespaces, err = n.namespaces(hc, f.Networks); err != nil {
		return nil, err
	}
	f.Privileges = n.privileges(hc)
	return f, nil
}

// createUser: Config.User, or the image's default user when it is empty
// (dockerd merges the image's config into the container's).
func (n *normalizer) createUser(cfg *container.Config) (UserFacts, error) {
	if cfg.User != "" {
		u := parseUser(cfg.User)
		u.Raw, u.Source = cfg.User, "request"
		return u, nil
	}
	u := UserFacts{Source: "image", UID: -1, GID: -1}
	if n.opts.Daemon == nil || cfg.Image == "" {
		return u, nil
	}
	img, err := n.opts.Daemon.InspectImage(n.ctx, cfg.Image)
	if errors.Is(err, ErrNotFound) {
		return u, nil // dockerd will refuse or pull: the user cannot be told
	}
	if err != nil {
		return u, lookupError("image "+cfg.Image, err)
	}
	pu := parseUser(img.User)
	pu.Source = "image"
	return pu, nil
}

// parseUser reads a user string the way the runtime will (moby/sys/user):
// "user[:group]", where a user that parses as an integer is a uid whatever
// /etc/passwd says, and an empty user is uid 0.
func parseUser(s string) UserFacts {
	u := UserFacts{Value: s, UID: -1, GID: -1}
	user, group, hasGroup := strings.Cut(s, ":")
	group, _, _ = strings.Cut(group, ":") // fields after the second are ignored
	switch {
	case user == "" || user == "root":
		u.UID, u.Root, u.Resolved = 0, true, true
	default:
		if id, err := strconv.Atoi(user); err == nil {
			u.UID, u.Root, u.Resolved = id, id == 0, true
		}
	}
	if hasGroup {
		if id, err := strconv.Atoi(group); err == nil {
			u.GID = id
		} else if group == "root" {
			u.GID = 0
		}
	} else if u.Root {
		u.GID = 0
	}
	return u
}

func (n *normalizer) execFacts(eo *container.ExecOptions, ref string) (*ExecFacts, error) {
	f := &ExecFacts{Container: ref, Privileged: eo.Privileged, Cmd: nonNilSlice(eo.Cmd)}
	if eo.User != "" {
		f.User = parseUser(eo.User)
		f.User.Raw, f.User.Source = eo.User, "request"
		return f, nil
	}
	// dockerd runs the exec as the container's configured user.
	f.User = UserFacts{Source: "container", UID: -1, GID: -1}
	c, err := n.container(ref)
	if err != nil {
		return nil, err
	}
	if c != nil {
		f.User = parseUser(c.User)
		f.User.Source = "container"
	}
	return f, nil
}

// container looks a container up once per request; nil when not found.
func (n *normalizer) container(ref string) (*ContainerInfo, error) {
	if c, ok := n.containers[ref]; ok {
		return c, nil
	}
	if n.opts.Daemon == nil {
		return nil, nil
	}
	c, err := n.opts.Daemon.InspectContainer(n.ctx, ref)
	if errors.Is(err, ErrNotFound) {
		c, err = nil, nil
	}
	if err != nil {
		return nil, lookupError("container "+ref, err)
	}
	if n.containers == nil {
		n.containers = map[string]*ContainerInfo{}
	}
	n.containers[ref] = c
	return c, nil
}

func ports(hc *container.HostConfig) ([]Port, bool) {
	out := []Port{}
	keys := make([]string, 0, len(hc.PortBindings))
	for k := range hc.PortBindings {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := nat.Port(k)
		for _, b := range hc.PortBindings[p] {
			all, loop := classifyHostIP(b.HostIP)
			out = append(out, Port{
				ContainerPort: p.Port(),
				Protocol:      p.Proto(),
				HostIP:        b.HostIP,
				HostPort:      b.HostPort,
				AllInterfaces: all,
				Loopback:      loop,
			})
		}
	}
	return out, hc.PublishAllPorts
}

// classifyHostIP: dockerd parses HostIp with net.ParseIP, and an address
// that does not parse ("localhost", "0", a zone) binds every interface.
func classifyHostIP(s string) (all, loopback bool) {
	ip := net.ParseIP(s)
	if ip == nil {
		return true, false
	}
	return ip.IsUnspecified(), ip.IsLoopback()
}

func (n *normalizer) networks(hc *container.HostConfig, nc *network.NetworkingConfig) ([]Network, error) {
	var eps map[string]*network.EndpointSettings
	if nc != nil {
		eps = nc.EndpointsConfig
	}
	mode := string(hc.NetworkMode)
	primaryRef := mode
	if mode == "" {
		primaryRef = "default"
	}
	out := []Network{}
	primary, err := n.network(primaryRef)
	if err != nil {
		return nil, err
	}
	// The endpoint settings of the primary network are keyed by its
	// reference ("default" maps to the default bridge).
	if ep, ok := eps[primaryRef]; ok {
		primary.endpoint(ep)
	} else if primary.Mode == "default" {
		primary.endpoint(eps["bridge"])
	}
	out = append(out, primary)
	keys := make([]string, 0, len(eps))
	for k := range eps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == primaryRef || (primary.Mode == "default" && k == "bridge") {
			continue
		}
		nw, err := n.network(k)
		if err != nil {
			return nil, err
		}
		nw.endpoint(eps[k])
		if nw.Found && nw.ID == primary.ID {
			out[0].mergeEndpoint(nw)
			continue
		}
		out = append(out, nw)
	}
	return out, nil
}

func (nw *Network) endpoint(ep *network.EndpointSettings) {
	if ep == nil {
		return
	}
	nw.Aliases = ep.Aliases
	if ep.IPAMConfig != nil {
		nw.IPv4, nw.IPv6 = ep.IPAMConfig.IPv4Address, ep.IPAMConfig.IPv6Address
	}
	nw.DriverOpts = ep.DriverOpts
}

func (nw *Network) mergeEndpoint(o Network) {
	nw.Aliases = append(nw.Aliases, o.Aliases...)
	if nw.IPv4 == "" {
		nw.IPv4 = o.IPv4
	}
	if nw.IPv6 == "" {
		nw.IPv6 = o.IPv6
	}
	if len(o.DriverOpts) > 0 {
		if nw.DriverOpts == nil {
			nw.DriverOpts = map[string]string{}
		}
		for k, v := range o.DriverOpts {
			nw.DriverOpts[k] = v
		}
	}
}

// network resolves one network reference: a built-in mode, or a network
// name, full ID or ID prefix looked up through the daemon.
func (n *normalizer) network(ref string) (Network, error) {
	nw := Network{Ref: ref}
	lookup := ref
	switch {
	case ref == "default":
		nw.Mode, lookup = "default", "bridge" // the default network on Linux
	case ref == "bridge", ref == "host", ref == "none":
		nw.Mode = ref
	case strings.HasPrefix(ref, "container:"):
		nw.Mode, nw.Container, nw.Found = "container", strings.TrimPrefix(ref, "container:"), true
		return nw, nil
	default:
		nw.Mode = "named"
	}
	if n.opts.Daemon == nil {
		nw.Found = nw.Mode != "named"
		return nw, nil
	}
	info, err := n.opts.Daemon.InspectNetwork(n.ctx, lookup)
	if errors.Is(err, ErrNotFound) {
		nw.Found = nw.Mode != "named"
		return nw, nil
	}
	if err != nil {
		return nw, lookupError("network "+ref, err)
	}
	nw.Found, nw.Name, nw.ID, nw.Driver = true, info.Name, info.ID, info.Driver
	nw.Options = info.Options
	nw.Labels = info.Labels
	owner := ownerOf(info.Labels)
	nw.Owner = &owner
	return nw, nil
}

func (n *normalizer) namespaces(hc *container.HostConfig, nets []Network) (Namespaces, error) {
	var ns Namespaces
	var err error
	// Network: "host", or a network that is the host's (named by name, ID
	// or prefix), or another container's.
	netMode := string(hc.NetworkMode)
	if netMode == "" {
		netMode = "default"
	}
	ns.Network = Namespace{Mode: netMode, Default: netMode == "default"}
	if len(nets) > 0 && (nets[0].Mode == "host" || nets[0].Driver == "host") {
		ns.Network.Host = true
	}
	if ns.Network, err = n.shared(ns.Network, func(c *ContainerInfo) string { return c.NetworkMode }); err != nil {
		return ns, err
	}
	for _, nw := range nets[min(1, len(nets)):] {
		if nw.Driver == "host" {
			ns.Network.Host = true // joining the host network is the host's namespace
		}
	}

	ns.PID = Namespace{Mode: string(hc.PidMode), Default: hc.PidMode == ""}
	if ns.PID, err = n.shared(ns.PID, func(c *ContainerInfo) string { return c.PidMode }); err != nil {
		return ns, err
	}

	ipc := string(hc.IpcMode)
	ns.IPC = Namespace{Mode: ipc, Default: ipc == ""}
	if ipc == "" {
		// Below 1.40 dockerd makes the default shareable; above, the
		// daemon's default-ipc-mode applies (private unless configured).
		ns.IPC.Mode = "private"
		if versionBelow(n.version, "1.40") {
			ns.IPC.Mode = "shareable"
		}
	}
	if ns.IPC, err = n.shared(ns.IPC, func(c *ContainerInfo) string { return c.IpcMode }); err != nil {
		return ns, err
	}

	ns.UTS = Namespace{Mode: string(hc.UTSMode), Default: hc.UTSMode == ""}
	if ns.UTS, err = n.shared(ns.UTS, func(c *ContainerInfo) string { return c.UTSMode }); err != nil {
		return ns, err
	}
	ns.User = Namespace{Mode: string(hc.UsernsMode), Default: hc.UsernsMode == ""}
	ns.User.Host = ns.User.Mode == "host"

	cg := string(hc.CgroupnsMode)
	ns.Cgroup = Namespace{Mode: cg, Default: cg == "", Host: cg == "host"}
	if cg == "" {
		// Below 1.41 on cgroup v1 dockerd makes it host; otherwise the
		// daemon's default: private on cgroup v2, host on v1. Host stays
		// false: it flags what the request asks for, and the daemon's own
		// default is its administrator's choice (Mode shows it).
		ns.Cgroup.Mode = "host"
		if n.opts.cgroupV2() {
			ns.Cgroup.Mode = "private"
		}
	}
	return ns, nil
}

// shared fills Host and Container for a "host" or "container:<ref>" mode;
// a container's namespace is the host's when that container itself uses
// the host's (followed a few levels).
func (n *normalizer) shared(ns Namespace, modeOf func(*ContainerInfo) string) (Namespace, error) {
	mode := ns.Mode
	for depth := 0; depth < 5; depth++ {
		if mode == "host" {
			ns.Host = true
			return ns, nil
		}
		ref, ok := strings.CutPrefix(mode, "container:")
		if !ok {
			return ns, nil
		}
		if depth == 0 {
			ns.Container = ref
		}
		c, err := n.container(ref)
		if err != nil || c == nil {
			return ns, err
		}
		mode = modeOf(c)
	}
	return ns, nil
}

func (n *normalizer) privileges(hc *container.HostConfig) Privileges {
	p := Privileges{
		Privileged:            hc.Privileged,
		CapAdd:                normalizeCaps(hc.CapAdd),
		CapDrop:               normalizeCaps(hc.CapDrop),
		Devices:               []string{},
		DeviceCgroupRules:     nonNilSlice(hc.DeviceCgroupRules),
		DeviceRequests:        []map[string]any{},
		SecurityOpt:           nonNilSlice(hc.SecurityOpt),
		Unconfined:            []string{},
		MaskedPathsOverride:   hc.MaskedPaths != nil,
		ReadonlyPathsOverride: hc.ReadonlyPaths != nil,
		Runtime:               hc.Runtime,
		CgroupParent:          hc.CgroupParent,
		Cgroup:                string(hc.Cgroup),
		Sysctls:               nonNilMap(hc.Sysctls),
		LogDriver:             hc.LogConfig.Type,
		LogOptions:            nonNilMap(hc.LogConfig.Config),
		VolumeDriver:          hc.VolumeDriver,
		Links:                 nonNilSlice(hc.Links),
		ExtraHosts:            nonNilSlice(hc.ExtraHosts),
		GroupAdd:              nonNilSlice(hc.GroupAdd),
		Annotations:           nonNilMap(hc.Annotations),
		OomKillDisable:        hc.OomKillDisable != nil && *hc.OomKillDisable,
		Init:                  hc.Init != nil && *hc.Init,
		Label:                 []string{},
	}
	if versionBelow(n.version, "1.43") {
		p.Annotations = map[string]string{} // dockerd ignores them below 1.43
	}
	for _, d := range hc.Devices {
		p.Devices = append(p.Devices, d.PathOnHost)
	}
	for _, r := range hc.DeviceRequests {
		p.DeviceRequests = append(p.DeviceRequests, map[string]any{
			"driver":       r.Driver,
			"count":        r.Count,
			"device_ids":   nonNilSlice(r.DeviceIDs),
			"capabilities": r.Capabilities,
			"options":      nonNilMap(r.Options),
		})
	}
	p.readSecurityOpt(hc.SecurityOpt)
	return p
}

// readSecurityOpt reads SecurityOpt like dockerd's parseSecurityOpt: bare
// "no-new-privileges", "writable-cgroups" and "disable"; otherwise split at
// the first "=" or, when there is none, the first ":".
func (p *Privileges) readSecurityOpt(opts []string) {
	unconfined := map[string]bool{}
	for _, opt := range opts {
		switch opt {
		case "no-new-privileges":
			t := true
			p.NoNewPrivileges = &t
			continue
		case "writable-cgroups":
			unconfined["writable-cgroups"] = true
			continue
		case "disable":
			p.Label = append(p.Label, "disable")
			unconfined["label"] = true
			continue
		}
		var k, v string
		var ok bool
		if strings.Contains(opt, "=") {
			k, v, ok = strings.Cut(opt, "=")
		} else {
			k, v, ok = strings.Cut(opt, ":")
		}
		if !ok {
			continue // dockerd refuses it
		}
		switch k {
		case "label":
			p.Label = append(p.Label, v)
			if v == "disable" {
				unconfined["label"] = true
			}
		case "apparmor":
			p.AppArmor = v
			if v == "unconfined" {
				unconfined["apparmor"] = true
			}
		case "seccomp":
			p.Seccomp = v
			if v == "unconfined" {
				unconfined["seccomp"] = true
			}
		case "no-new-privileges":
			b, err := strconv.ParseBool(v)
			if err == nil {
				p.NoNewPrivileges = &b
				if !b {
					unconfined["no-new-privileges=false"] = true
				}
			}
		case "writable-cgroups":
			if b, err := strconv.ParseBool(v); err == nil && b {
				unconfined["writable-cgroups"] = true
			}
		case "systempaths":
			// Understood by the docker CLI (it clears MaskedPaths and
			// ReadonlyPaths), refused by dockerd; flagged all the same.
			if v == "unconfined" {
				unconfined["systempaths"] = true
			}
		}
	}
	for k := range unconfined {
		p.Unconfined = append(p.Unconfined, k)
	}
	sort.Strings(p.Unconfined)
	if p.Seccomp != "" && p.Seccomp != "unconfined" && p.Seccomp != "builtin" {
		p.Seccomp = "custom" // a JSON profile; its content is in security_opt
	}
}

// normalizeCaps spells capabilities like dockerd after
// NormalizeLegacyCapabilities, without the "CAP_" prefix; "ALL" is kept.
func normalizeCaps(caps []string) []string {
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		u := strings.ToUpper(c)
		out = append(out, strings.TrimPrefix(u, "CAP_"))
	}
	return out
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
