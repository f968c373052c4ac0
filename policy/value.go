package policy

import (
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
)

// inputValue builds the policy input as an AST value directly from the Go
// structs, instead of marshalling them to JSON and parsing that back: the
// conversion is most of a decision's cost. It yields the document
// json.Marshal(in) would, except that absent lists and maps are [] and {}
// (never null), so that policies can iterate and count them without guards.
// body is the canonical JSON of in.Body when the caller has it (nil
// otherwise); it is parsed instead of re-encoding in.Body.
// want names the parts of the body the policy reads (nil: all of it).
func inputValue(in *input.Input, body []byte, want pathTrie) (ast.Value, error) {
	bodyVal, err := bodyValue(in.Body, body, want)
	if err != nil {
		return nil, err
	}
	obj := ast.NewObjectWithCapacity(13)
	putS(obj, "operation", in.Operation)
	putS(obj, "method", in.Method)
	putS(obj, "path", in.Path)
	putS(obj, "api_version", in.APIVersion)
	putB(obj, "versioned", in.Versioned)
	put(obj, "query", multiMap(in.Query))
	put(obj, "vars", stringMap(in.Vars))
	put(obj, "caller", callerValue(&in.Caller))
	put(obj, "body", bodyVal)
	if in.Container != nil {
		put(obj, "container", containerValue(in.Container))
	}
	if in.Exec != nil {
		put(obj, "exec", execValue(in.Exec))
	}
	if in.Target != nil {
		v, err := ast.InterfaceToValue(in.Target)
		if err != nil {
			return nil, fmt.Errorf("policy input target: %w", err)
		}
		put(obj, "target", v)
	}
	return obj, nil
}

// bodyValue converts the decoded body. Generic JSON values convert natively;
// typed values (moby structs) go through their canonical JSON.
func bodyValue(body any, canonical []byte, want pathTrie) (ast.Value, error) {
	switch b := body.(type) {
	case nil:
		return ast.Null{}, nil
	case json.RawMessage:
		// input.Build's body is the canonical JSON itself.
		return parseJSONPaths(b, want)
	case map[string]any, []any, string, bool, json.Number:
		return ast.InterfaceToValue(b)
	}
	if canonical == nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("policy input body: %w", err)
		}
		canonical = raw
	}
	return parseJSONPaths(canonical, want)
}

func put(obj ast.Object, key string, v ast.Value) {
	switch v {
	case ast.InternedEmptyArrayValue:
		obj.Insert(keyTerm(key), ast.InternedEmptyArray)
	case ast.InternedEmptyObjectValue:
		obj.Insert(keyTerm(key), ast.InternedEmptyObject)
	default:
		obj.Insert(keyTerm(key), ast.NewTerm(v))
	}
}

// putT, putS and putB share the interned terms of common values (false,
// true, "", small numbers): most facts are zero values.
func putT(obj ast.Object, key string, t *ast.Term) { obj.Insert(keyTerm(key), t) }

func putS(obj ast.Object, key, s string) { obj.Insert(keyTerm(key), ast.InternedTerm(s)) }

func putB(obj ast.Object, key string, b bool) { obj.Insert(keyTerm(key), ast.InternedTerm(b)) }

func str(s string) *ast.Term { return ast.StringTerm(s) }

func strArray(xs []string) ast.Value {
	if len(xs) == 0 {
		return ast.InternedEmptyArrayValue
	}
	terms := make([]*ast.Term, len(xs))
	for i, x := range xs {
		terms[i] = str(x)
	}
	return ast.NewArray(terms...)
}

func stringMap(m map[string]string) ast.Value {
	if len(m) == 0 {
		return ast.InternedEmptyObjectValue
	}
	obj := ast.NewObjectWithCapacity(len(m))
	for k, v := range m {
		obj.Insert(str(k), str(v))
	}
	return obj
}

func multiMap(m map[string][]string) ast.Value {
	obj := ast.NewObjectWithCapacity(len(m))
	for k, v := range m {
		obj.Insert(str(k), ast.NewTerm(strArray(v)))
	}
	return obj
}

func callerValue(c *proxy.Caller) ast.Value {
	obj := ast.NewObjectWithCapacity(8)
	putB(obj, "known", c.Known)
	putT(obj, "uid", ast.InternedTerm(c.UID))
	putT(obj, "gid", ast.InternedTerm(c.GID))
	putT(obj, "pid", ast.InternedTerm(c.PID))
	// omitempty in the JSON schema: absent rather than "".
	if c.User != "" {
		putS(obj, "user", c.User)
	}
	if c.Group != "" {
		putS(obj, "group", c.Group)
	}
	if len(c.Groups) > 0 {
		put(obj, "groups", strArray(c.Groups))
	}
	return obj
}

func userValue(u *input.UserFacts) ast.Value {
	obj := ast.NewObjectWithCapacity(8)
	putS(obj, "raw", u.Raw)
	putS(obj, "source", u.Source)
	putS(obj, "value", u.Value)
	putT(obj, "uid", ast.InternedTerm(u.UID))
	putT(obj, "gid", ast.InternedTerm(u.GID))
	putB(obj, "root", u.Root)
	putB(obj, "resolved", u.Resolved)
	return obj
}

func containerValue(c *input.ContainerFacts) ast.Value {
	obj := ast.NewObjectWithCapacity(10)
	putS(obj, "name", c.Name)
	putS(obj, "image", c.Image)
	put(obj, "user", userValue(&c.User))
	mounts := make([]*ast.Term, len(c.Mounts))
	for i := range c.Mounts {
		mounts[i] = ast.NewTerm(mountValue(&c.Mounts[i]))
	}
	put(obj, "mounts", ast.NewArray(mounts...))
	ports := make([]*ast.Term, len(c.Ports))
	for i := range c.Ports {
		ports[i] = ast.NewTerm(portValue(&c.Ports[i]))
	}
	put(obj, "ports", ast.NewArray(ports...))
	putB(obj, "publish_all", c.PublishAll)
	nets := make([]*ast.Term, len(c.Networks))
	for i := range c.Networks {
		nets[i] = ast.NewTerm(networkValue(&c.Networks[i]))
	}
	put(obj, "networks", ast.NewArray(nets...))
	put(obj, "namespaces", namespacesValue(&c.Namespaces))
	put(obj, "privileges", privilegesValue(&c.Privileges))
	put(obj, "labels", stringMap(c.Labels))
	return obj
}

func mountValue(m *input.Mount) ast.Value {
	obj := ast.NewObjectWithCapacity(22)
	putS(obj, "origin", m.Origin)
	putS(obj, "type", m.Type)
	putS(obj, "source", m.Source)
	putS(obj, "target", m.Target)
	putB(obj, "host_bind", m.HostBind)
	putS(obj, "host_path", m.HostPath)
	putS(obj, "real_path", m.RealPath)
	putS(obj, "path_status", m.PathStatus)
	putB(obj, "path_differs", m.PathDiffers)
	putB(obj, "read_only", m.ReadOnly)
	putB(obj, "read_only_recursive", m.ReadOnlyRecursive)
	putS(obj, "propagation", m.Propagation)
	putS(obj, "relabel", m.Relabel)
	putB(obj, "nocopy", m.NoCopy)
	putB(obj, "create_mountpoint", m.CreateMountpoint)
	putS(obj, "driver", m.Driver)
	put(obj, "driver_options", stringMap(m.DriverOptions))
	putB(obj, "volume_found", m.VolumeFound)
	if m.FromContainer != "" {
		putS(obj, "from_container", m.FromContainer)
	}
	return obj
}

func portValue(p *input.Port) ast.Value {
	obj := ast.NewObjectWithCapacity(6)
	putS(obj, "container_port", p.ContainerPort)
	putS(obj, "protocol", p.Protocol)
	putS(obj, "host_ip", p.HostIP)
	putS(obj, "host_port", p.HostPort)
	putB(obj, "all_interfaces", p.AllInterfaces)
	putB(obj, "loopback", p.Loopback)
	return obj
}

func networkValue(n *input.Network) ast.Value {
	obj := ast.NewObjectWithCapacity(10)
	putS(obj, "ref", n.Ref)
	putS(obj, "mode", n.Mode)
	putS(obj, "name", n.Name)
	putS(obj, "id", n.ID)
	putB(obj, "found", n.Found)
	if n.Container != "" {
		putS(obj, "container", n.Container)
	}
	if len(n.Aliases) > 0 {
		put(obj, "aliases", strArray(n.Aliases))
	}
	if n.IPv4 != "" {
		put(obj, "ipv4", ast.String(n.IPv4))
	}
	if n.IPv6 != "" {
		put(obj, "ipv6", ast.String(n.IPv6))
	}
	if len(n.DriverOpts) > 0 {
		put(obj, "driver_opts", stringMap(n.DriverOpts))
	}
	return obj
}

func namespacesValue(ns *input.Namespaces) ast.Value {
	obj := ast.NewObjectWithCapacity(6)
	put(obj, "network", namespaceValue(&ns.Network))
	put(obj, "pid", namespaceValue(&ns.PID))
	put(obj, "ipc", namespaceValue(&ns.IPC))
	put(obj, "uts", namespaceValue(&ns.UTS))
	put(obj, "userns", namespaceValue(&ns.User))
	put(obj, "cgroupns", namespaceValue(&ns.Cgroup))
	return obj
}

func namespaceValue(n *input.Namespace) ast.Value {
	obj := ast.NewObjectWithCapacity(3)
	putS(obj, "mode", n.Mode)
	putB(obj, "host", n.Host)
	putS(obj, "container", n.Container)
	return obj
}

func privilegesValue(p *input.Privileges) ast.Value {
	obj := ast.NewObjectWithCapacity(22)
	putB(obj, "privileged", p.Privileged)
	put(obj, "cap_add", strArray(p.CapAdd))
	put(obj, "cap_drop", strArray(p.CapDrop))
	put(obj, "devices", strArray(p.Devices))
	put(obj, "device_cgroup_rules", strArray(p.DeviceCgroupRules))
	reqs := make([]*ast.Term, 0, len(p.DeviceRequests))
	for _, r := range p.DeviceRequests {
		v, err := ast.InterfaceToValue(r)
		if err != nil {
			// Not JSON: keep the entry visible as a request the policy must see.
			v = ast.NewObject()
		}
		reqs = append(reqs, ast.NewTerm(v))
	}
	put(obj, "device_requests", ast.NewArray(reqs...))
	put(obj, "security_opt", strArray(p.SecurityOpt))
	put(obj, "unconfined", strArray(p.Unconfined))
	putB(obj, "masked_paths_override", p.MaskedPathsOverride)
	putB(obj, "readonly_paths_override", p.ReadonlyPathsOverride)
	putS(obj, "runtime", p.Runtime)
	putS(obj, "cgroup_parent", p.CgroupParent)
	put(obj, "sysctls", stringMap(p.Sysctls))
	putS(obj, "log_driver", p.LogDriver)
	put(obj, "log_options", stringMap(p.LogOptions))
	putS(obj, "volume_driver", p.VolumeDriver)
	put(obj, "links", strArray(p.Links))
	put(obj, "extra_hosts", strArray(p.ExtraHosts))
	put(obj, "annotations", stringMap(p.Annotations))
	putB(obj, "oom_kill_disable", p.OomKillDisable)
	putB(obj, "init", p.Init)
	return obj
}

func execValue(e *input.ExecFacts) ast.Value {
	obj := ast.NewObjectWithCapacity(4)
	putS(obj, "container", e.Container)
	putB(obj, "privileged", e.Privileged)
	put(obj, "user", userValue(&e.User))
	put(obj, "cmd", strArray(e.Cmd))
	return obj
}
