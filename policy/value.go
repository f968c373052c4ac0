package policy

import (
	"bytes"
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
func inputValue(in *input.Input, body []byte) (ast.Value, error) {
	bodyVal, err := bodyValue(in.Body, body)
	if err != nil {
		return nil, err
	}
	obj := ast.NewObjectWithCapacity(13)
	put(obj, "operation", ast.String(in.Operation))
	put(obj, "method", ast.String(in.Method))
	put(obj, "path", ast.String(in.Path))
	put(obj, "api_version", ast.String(in.APIVersion))
	put(obj, "versioned", ast.Boolean(in.Versioned))
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
func bodyValue(body any, canonical []byte) (ast.Value, error) {
	switch b := body.(type) {
	case nil:
		return ast.Null{}, nil
	case json.RawMessage:
		// input.Build's body is the canonical JSON itself.
		return parseJSON(b)
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
	return parseJSON(canonical)
}

func parseJSON(raw []byte) (ast.Value, error) {
	v, err := ast.ValueFromReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("policy input body: %w", err)
	}
	return v, nil
}

func put(obj ast.Object, key string, v ast.Value) {
	obj.Insert(ast.InternedTerm(key), ast.NewTerm(v))
}

func str(s string) *ast.Term { return ast.StringTerm(s) }

func strArray(xs []string) ast.Value {
	terms := make([]*ast.Term, len(xs))
	for i, x := range xs {
		terms[i] = str(x)
	}
	return ast.NewArray(terms...)
}

func stringMap(m map[string]string) ast.Value {
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
	put(obj, "known", ast.Boolean(c.Known))
	put(obj, "uid", ast.InternedTerm(c.UID).Value)
	put(obj, "gid", ast.InternedTerm(c.GID).Value)
	put(obj, "pid", ast.InternedTerm(c.PID).Value)
	// omitempty in the JSON schema: absent rather than "".
	if c.User != "" {
		put(obj, "user", ast.String(c.User))
	}
	if c.Group != "" {
		put(obj, "group", ast.String(c.Group))
	}
	if len(c.Groups) > 0 {
		put(obj, "groups", strArray(c.Groups))
	}
	return obj
}

func userValue(u *input.UserFacts) ast.Value {
	obj := ast.NewObjectWithCapacity(8)
	put(obj, "raw", ast.String(u.Raw))
	put(obj, "source", ast.String(u.Source))
	put(obj, "value", ast.String(u.Value))
	put(obj, "uid", ast.InternedTerm(u.UID).Value)
	put(obj, "gid", ast.InternedTerm(u.GID).Value)
	put(obj, "root", ast.Boolean(u.Root))
	put(obj, "resolved", ast.Boolean(u.Resolved))
	return obj
}

func containerValue(c *input.ContainerFacts) ast.Value {
	obj := ast.NewObjectWithCapacity(10)
	put(obj, "name", ast.String(c.Name))
	put(obj, "image", ast.String(c.Image))
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
	put(obj, "publish_all", ast.Boolean(c.PublishAll))
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
	put(obj, "origin", ast.String(m.Origin))
	put(obj, "type", ast.String(m.Type))
	put(obj, "source", ast.String(m.Source))
	put(obj, "target", ast.String(m.Target))
	put(obj, "host_bind", ast.Boolean(m.HostBind))
	put(obj, "host_path", ast.String(m.HostPath))
	put(obj, "real_path", ast.String(m.RealPath))
	put(obj, "path_status", ast.String(m.PathStatus))
	put(obj, "path_differs", ast.Boolean(m.PathDiffers))
	put(obj, "read_only", ast.Boolean(m.ReadOnly))
	put(obj, "read_only_recursive", ast.Boolean(m.ReadOnlyRecursive))
	put(obj, "propagation", ast.String(m.Propagation))
	put(obj, "relabel", ast.String(m.Relabel))
	put(obj, "nocopy", ast.Boolean(m.NoCopy))
	put(obj, "create_mountpoint", ast.Boolean(m.CreateMountpoint))
	put(obj, "driver", ast.String(m.Driver))
	put(obj, "driver_options", stringMap(m.DriverOptions))
	put(obj, "volume_found", ast.Boolean(m.VolumeFound))
	if m.FromContainer != "" {
		put(obj, "from_container", ast.String(m.FromContainer))
	}
	return obj
}

func portValue(p *input.Port) ast.Value {
	obj := ast.NewObjectWithCapacity(6)
	put(obj, "container_port", ast.String(p.ContainerPort))
	put(obj, "protocol", ast.String(p.Protocol))
	put(obj, "host_ip", ast.String(p.HostIP))
	put(obj, "host_port", ast.String(p.HostPort))
	put(obj, "all_interfaces", ast.Boolean(p.AllInterfaces))
	put(obj, "loopback", ast.Boolean(p.Loopback))
	return obj
}

func networkValue(n *input.Network) ast.Value {
	obj := ast.NewObjectWithCapacity(10)
	put(obj, "ref", ast.String(n.Ref))
	put(obj, "mode", ast.String(n.Mode))
	put(obj, "name", ast.String(n.Name))
	put(obj, "id", ast.String(n.ID))
	put(obj, "found", ast.Boolean(n.Found))
	if n.Container != "" {
		put(obj, "container", ast.String(n.Container))
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
	put(obj, "mode", ast.String(n.Mode))
	put(obj, "host", ast.Boolean(n.Host))
	put(obj, "container", ast.String(n.Container))
	return obj
}

func privilegesValue(p *input.Privileges) ast.Value {
	obj := ast.NewObjectWithCapacity(22)
	put(obj, "privileged", ast.Boolean(p.Privileged))
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
	put(obj, "masked_paths_override", ast.Boolean(p.MaskedPathsOverride))
	put(obj, "readonly_paths_override", ast.Boolean(p.ReadonlyPathsOverride))
	put(obj, "runtime", ast.String(p.Runtime))
	put(obj, "cgroup_parent", ast.String(p.CgroupParent))
	put(obj, "sysctls", stringMap(p.Sysctls))
	put(obj, "log_driver", ast.String(p.LogDriver))
	put(obj, "log_options", stringMap(p.LogOptions))
	put(obj, "volume_driver", ast.String(p.VolumeDriver))
	put(obj, "links", strArray(p.Links))
	put(obj, "extra_hosts", strArray(p.ExtraHosts))
	put(obj, "annotations", stringMap(p.Annotations))
	put(obj, "oom_kill_disable", ast.Boolean(p.OomKillDisable))
	put(obj, "init", ast.Boolean(p.Init))
	return obj
}

func execValue(e *input.ExecFacts) ast.Value {
	obj := ast.NewObjectWithCapacity(4)
	put(obj, "container", ast.String(e.Container))
	put(obj, "privileged", ast.Boolean(e.Privileged))
	put(obj, "user", userValue(&e.User))
	put(obj, "cmd", strArray(e.Cmd))
	return obj
}
