package policy

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/sockproxy/sockproxy/policy/input"
)

// facts are the key facts of a decision for the audit record: what a
// reviewer needs to see at a glance (image, mounts with modes, user, ports,
// networks; the network, connect, volume and update facts the library
// judges), and the policy's warnings. docs/audit.md documents every key;
// replay (policy/toolkit) rebuilds bodies from them. Never a secret: no
// Env, and option values under secret-looking keys are redacted.
func facts(in *input.Input, res Result) map[string]any {
	f := map[string]any{}
	if c := in.Container; c != nil {
		f["image"] = c.Image
		f["user"] = userFact(&c.User)
		if len(c.Mounts) > 0 {
			mounts := make([]string, len(c.Mounts))
			for i := range c.Mounts {
				mounts[i] = mountFact(&c.Mounts[i])
			}
			f["mounts"] = mounts
		}
		if len(c.Ports) > 0 {
			ports := make([]string, len(c.Ports))
			for i, p := range c.Ports {
				host := p.HostIP
				if host == "" {
					host = "*"
				}
				ports[i] = fmt.Sprintf("%s:%s->%s/%s", host, p.HostPort, p.ContainerPort, p.Protocol)
			}
			f["ports"] = ports
		}
		if c.PublishAll {
			f["publish_all"] = true
		}
		if len(c.Networks) > 0 {
			nets := make([]string, len(c.Networks))
			for i, n := range c.Networks {
				nets[i] = networkFact(n)
			}
			f["networks"] = nets
		}
		if c.Privileges.Privileged {
			f["privileged"] = true
		}
	}
	if x := in.Exec; x != nil {
		f["exec_user"] = userFact(&x.User)
		if x.Privileged {
			f["privileged"] = true
		}
	}
	if nc := in.NetworkCreate; nc != nil {
		f["network"] = networkCreateFact(nc)
	}
	if in.Connect != nil {
		f["connect"] = connectFact(in)
	}
	if v := in.VolumeCreate; v != nil {
		f["volume"] = volumeCreateFact(v)
	}
	if u := in.Update; u != nil {
		f["update"] = updateFact(u)
	}
	if len(res.Warn) > 0 {
		f["warnings"] = res.Warn
	}
	return f
}

func userFact(u *input.UserFacts) string {
	v := u.Value
	if v == "" {
		v = "root"
	}
	switch {
	case u.Root:
		v += " (uid 0)"
	case !u.Resolved:
		v += " (unresolved)"
	}
	if u.Source != "" && u.Source != "request" {
		v += " from " + u.Source
	}
	return v
}

// mountFact renders a mount as source:target:mode, with the real host path
// where a symlink leads elsewhere.
func mountFact(m *input.Mount) string {
	mode := "rw"
	if m.ReadOnly {
		mode = "ro"
	}
	src := m.Source
	if m.HostBind {
		src = m.HostPath
		if m.PathDiffers {
			src += "=>" + m.RealPath
		}
	}
	s := fmt.Sprintf("%s %s:%s:%s", m.Type, src, m.Target, mode)
	if m.FromContainer != "" {
		s += " from " + m.FromContainer
	}
	return s
}

func networkFact(n input.Network) string {
	switch {
	case n.Mode == "container":
		return "container:" + n.Container
	case n.Name != "":
		return n.Name
	}
	return n.Ref
}

// networkCreateFact mirrors input.network (the facts network.create is
// judged on), with secret-looking option values redacted.
func networkCreateFact(nc *input.NetworkCreateFacts) map[string]any {
	return map[string]any{
		"name": nc.Name, "driver": nc.Driver, "scope": nc.Scope,
		"internal": nc.Internal, "attachable": nc.Attachable, "ingress": nc.Ingress,
		"config_only": nc.ConfigOnly, "config_from": nc.ConfigFrom,
		"options": RedactOptions(nc.Options), "labels": RedactOptions(nc.Labels),
		"ipam_driver": nc.IPAMDriver, "ipam_options": RedactOptions(nc.IPAMOptions),
		"subnets": nonNil(nc.Subnets),
	}
}

// connectFact mirrors input.connect plus the network: as sent in the path
// and, when the daemon resolved it, its name and ID.
func connectFact(in *input.Input) map[string]any {
	c := in.Connect
	f := map[string]any{
		"network": in.Vars["id"], "container": c.Container,
		"aliases": nonNil(c.Aliases), "ipv4": c.IPv4, "ipv6": c.IPv6,
		"link_local_ips": nonNil(c.LinkLocalIPs), "mac_address": c.MacAddress,
		"driver_opts": RedactOptions(c.DriverOpts), "links": nonNil(c.Links),
	}
	if t := in.Target; t != nil && t.Kind == "network" {
		f["network_name"], f["network_id"] = t.Name, t.ID
	}
	return f
}

func volumeCreateFact(v *input.VolumeCreateFacts) map[string]any {
	return map[string]any{
		"name": v.Name, "driver": v.Driver, "options": RedactOptions(v.Options), "labels": RedactOptions(v.Labels),
		"local_mount": v.LocalMount, "host_paths": nonNil(v.HostPaths), "cluster": v.Cluster,
	}
}

// updateFact lists only what the update sets (0 and "" leave a field
// unchanged; pids_limit is set when present, 0 and -1 meaning unlimited).
func updateFact(u *input.UpdateFacts) map[string]any {
	f := map[string]any{}
	for k, v := range map[string]int64{
		"memory": u.Memory, "memory_reservation": u.MemoryReservation, "memory_swap": u.MemorySwap,
		"nano_cpus": u.NanoCPUs, "cpu_shares": u.CPUShares, "cpu_period": u.CPUPeriod, "cpu_quota": u.CPUQuota,
		"blkio_weight": int64(u.BlkioWeight),
	} {
		if v != 0 {
			f[k] = v
		}
	}
	if u.CpusetCpus != "" {
		f["cpuset_cpus"] = u.CpusetCpus
	}
	if u.CpusetMems != "" {
		f["cpuset_mems"] = u.CpusetMems
	}
	if u.PidsLimit != nil {
		f["pids_limit"] = *u.PidsLimit
	}
	if rp := u.RestartPolicy; rp.Name != "" || rp.MaximumRetryCount != 0 {
		f["restart_policy"] = map[string]any{"name": rp.Name, "maximum_retry_count": rp.MaximumRetryCount}
	}
	if len(u.Other) > 0 {
		f["other"] = u.Other
	}
	return f
}

// Redacted replaces the value of an option whose key looks like a secret.
const Redacted = "<redacted>"

// secretKey matches option keys that hold credentials (a CIFS volume's
// password=, a driver's token or key): their values never reach the log.
var secretKey = regexp.MustCompile(`(?i)pass|secret|token|cred|auth|api[_.-]?key|private[_.-]?key|access[_.-]?key`)

// RedactOptions copies driver options or labels with the values of
// secret-looking keys replaced by Redacted, also inside comma-separated
// mount options (o=addr=srv,username=u,password=p keeps addr and username).
func RedactOptions(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch {
		case secretKey.MatchString(k):
			v = Redacted
		case strings.Contains(v, "="):
			parts := strings.Split(v, ",")
			for i, p := range parts {
				if sk, _, ok := strings.Cut(p, "="); ok && secretKey.MatchString(sk) {
					parts[i] = sk + "=" + Redacted
				}
			}
			v = strings.Join(parts, ",")
		}
		out[k] = v
	}
	return out
}
