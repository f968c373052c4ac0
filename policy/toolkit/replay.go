package toolkit

import (
	"encoding/json"
	"strings"

	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/proxy"
)

// ReplayNote says what a replay from an audit record cannot know.
const ReplayNote = "the audit record keeps no request body: it was rebuilt from the record's facts (image, user, mounts, ports, networks, privileged); capabilities, namespaces, security options, devices and other fields are absent. Give the original body with --body to judge it exactly"

// ReplaySpec turns an audit record back into the request it recorded:
// method, path and caller as recorded. The body is body when non-nil, else
// rebuilt from the record's facts for the operations whose bodies carry
// them (container.create, exec.create); rebuilt is true then.
func ReplaySpec(r *audit.Record, body []byte) (spec RequestSpec, rebuilt bool) {
	spec = RequestSpec{
		ID:     r.RequestID,
		Method: r.Method,
		Target: r.Path,
		Caller: proxy.Caller{Known: r.Caller.Known, UID: r.Caller.UID, GID: r.Caller.GID, PID: r.Caller.PID,
			User: r.Caller.User, Group: r.Caller.Group, Groups: r.Caller.Groups},
		Body: body,
	}
	if body != nil {
		spec.ContentType = "application/json"
		return spec, false
	}
	var doc map[string]any
	switch r.Operation {
	case "container.create":
		doc = createBody(r.Facts)
	case "exec.create":
		doc = map[string]any{"Cmd": []string{"sh"}}
		if u, ok := r.Facts["exec_user"].(string); ok {
			if v, explicit := userValue(u); explicit {
				doc["User"] = v
			}
		}
		if r.Facts["privileged"] == true {
			doc["Privileged"] = true
		}
	default:
		return spec, false
	}
	raw, _ := json.Marshal(doc)
	spec.Body, spec.ContentType = raw, "application/json"
	return spec, true
}

// userValue recovers Config.User from a user fact; explicit is false when
// the user came from the image or container (User was left empty).
func userValue(fact string) (string, bool) {
	if strings.Contains(fact, " from ") {
		return "", false
	}
	m := userFact.FindStringSubmatch(fact)
	if m == nil {
		return "", false
	}
	return m[1], true
}

func createBody(f map[string]any) map[string]any {
	cfg := map[string]any{}
	hc := map[string]any{}
	if img, ok := f["image"].(string); ok {
		cfg["Image"] = img
	}
	if u, ok := f["user"].(string); ok {
		if v, explicit := userValue(u); explicit {
			cfg["User"] = v
		}
	}
	var binds []string
	var mounts []map[string]any
	for _, m := range stringList(f["mounts"]) {
		m, _, _ = strings.Cut(m, " from ")
		typ, rest, ok := strings.Cut(m, " ")
		if !ok {
			continue
		}
		i := strings.LastIndex(rest, ":")
		j := strings.LastIndex(rest[:max(i, 0)], ":")
		if i < 0 || j < 0 {
			continue
		}
		src, target, mode := rest[:j], rest[j+1:i], rest[i+1:]
		src, _, _ = strings.Cut(src, "=>")
		switch {
		case typ == "bind":
			binds = append(binds, src+":"+target+":"+mode)
		case typ == "volume" || typ == "tmpfs":
			mounts = append(mounts, map[string]any{"Type": typ, "Source": src, "Target": target, "ReadOnly": mode == "ro"})
		}
	}
	if binds != nil {
		hc["Binds"] = binds
	}
	if mounts != nil {
		hc["Mounts"] = mounts
	}
	exposed := map[string]any{}
	bindings := map[string][]map[string]string{}
	for _, p := range stringList(f["ports"]) {
		left, cport, ok := strings.Cut(p, "->")
		i := strings.LastIndex(left, ":")
		if !ok || i < 0 {
			continue
		}
		ip, hport := left[:i], left[i+1:]
		if ip == "*" {
			ip = ""
		}
		exposed[cport] = map[string]any{}
		bindings[cport] = append(bindings[cport], map[string]string{"HostIp": ip, "HostPort": hport})
	}
	if len(bindings) > 0 {
		cfg["ExposedPorts"] = exposed
		hc["PortBindings"] = bindings
	}
	if f["publish_all"] == true {
		hc["PublishAllPorts"] = true
	}
	if f["privileged"] == true {
		hc["Privileged"] = true
	}
	nets := stringList(f["networks"])
	if len(nets) > 0 {
		hc["NetworkMode"] = nets[0]
	}
	if len(nets) > 1 {
		eps := map[string]any{}
		for _, n := range nets[1:] {
			eps[n] = map[string]any{}
		}
		cfg["NetworkingConfig"] = map[string]any{"EndpointsConfig": eps}
	}
	body := cfg
	if nc, ok := cfg["NetworkingConfig"]; ok {
		delete(cfg, "NetworkingConfig")
		body["NetworkingConfig"] = nc
	}
	body["HostConfig"] = hc
	return body
}
