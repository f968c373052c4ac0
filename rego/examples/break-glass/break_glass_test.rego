# Tests of the break-glass example: the break-glass uid may debug the host,
# every request of it is flagged, its containers name an incident; nobody
# else gains anything.
#
# Run: sockproxy policy test rego/examples/break-glass
package examples.break_glass_test

import data.sockproxy

breakglass := {"known": true, "uid": 901, "gid": 901, "pid": 31337, "user": "breakglass", "group": "breakglass", "groups": ["breakglass"]}

alice := {"known": true, "uid": 1000, "gid": 1000, "pid": 4242, "user": "alice", "group": "alice", "groups": ["alice"]}

request(op, method, caller) := {
	"operation": op, "method": method, "path": "/v1.41/x", "api_version": "1.41", "versioned": true,
	"query": {}, "vars": {}, "caller": caller, "body": null, "form_body": false, "body_size": 0,
}

host_ns := {"mode": "host", "host": true, "container": "", "default": false}

private := {"mode": "", "host": false, "container": "", "default": true}

root := {"raw": "0", "source": "request", "value": "0", "uid": 0, "gid": -1, "root": true, "resolved": true}

# docker run --rm -it --privileged --pid=host --net=host -v /:/host
#   --label incident=INC-4711 busybox chroot /host
debug_shell(caller, labels) := object.union(request("container.create", "POST", caller), {
	"path": "/v1.41/containers/create",
	"body": {"Image": "busybox"},
	"body_size": 700,
	"container": {
		"name": "", "image": "busybox", "user": root,
		"mounts": [{
			"origin": "binds", "type": "bind", "source": "/", "target": "/host",
			"host_bind": true, "host_path": "/", "real_path": "/", "path_status": "resolved", "path_differs": false,
			"read_only": false, "read_only_recursive": false, "propagation": "rprivate", "relabel": "", "nocopy": false,
			"create_mountpoint": false, "non_recursive": false, "read_only_force_recursive": false,
			"driver": "", "driver_options": {}, "volume_found": false,
		}],
		"ports": [], "publish_all": false,
		"networks": [{"ref": "host", "mode": "host", "name": "host", "id": "4057", "found": true, "driver": "host", "options": {}}],
		"namespaces": {"network": host_ns, "pid": host_ns, "ipc": object.union(private, {"mode": "private"}), "uts": private, "userns": private, "cgroupns": object.union(private, {"mode": "private"})},
		"privileges": {
			"privileged": true, "cap_add": [], "cap_drop": [], "devices": [], "device_cgroup_rules": [],
			"device_requests": [], "security_opt": [], "seccomp": "", "apparmor": "", "label": [],
			"no_new_privileges": null, "unconfined": [], "masked_paths_override": false,
			"readonly_paths_override": false, "runtime": "", "cgroup_parent": "", "cgroup": "", "group_add": [],
			"sysctls": {}, "log_driver": "", "log_options": {}, "volume_driver": "", "links": [], "extra_hosts": [],
			"annotations": {}, "oom_kill_disable": false, "init": false,
		},
		"labels": labels,
	},
})

deny(req) := d if {
	d := sockproxy.deny with input as req
}

warn(req) := w if {
	w := sockproxy.warn with input as req
}

refused_with(req, part) if {
	some msg in deny(req)
	contains(msg, part)
}

test_break_glass_debug_shell_allowed_and_flagged if {
	req := debug_shell(breakglass, {"incident": "INC-4711"})
	deny(req) == set()
	"break-glass: container.create /v1.41/containers/create by uid 901 (pid 31337)" in warn(req)
}

test_break_glass_container_needs_an_incident if {
	deny(debug_shell(breakglass, {})) == {`break-glass containers need the label incident=<incident ID> matching ^INC-[0-9]+$ (e.g. docker run --label incident=INC-1234)`}
	count(deny(debug_shell(breakglass, {"incident": "tbd"}))) == 1
}

test_everyone_else_keeps_the_hardened_profile if {
	req := debug_shell(alice, {"incident": "INC-4711"})
	refused_with(req, "privileged is not allowed")
	refused_with(req, "pid namespace host is not allowed")
	refused_with(req, "network host is not allowed")
	refused_with(req, "mount /:/host is not under an allowed root")
	refused_with(req, "user 0 (uid 0) not allowed")
	not any_break_glass_warning(req)
}

any_break_glass_warning(req) if {
	some msg in warn(req)
	startswith(msg, "break-glass:")
}

test_every_break_glass_request_is_flagged if {
	every op in ["container.list", "container.stop", "system.info"] {
		some msg in warn(request(op, "GET", breakglass))
		startswith(msg, sprintf("break-glass: %s ", [op]))
	}
}

test_break_glass_ports_stay_on_loopback if {
	req := object.union(debug_shell(breakglass, {"incident": "INC-4711"}), {"container": {"ports": [{"container_port": "80", "protocol": "tcp", "host_ip": "0.0.0.0", "host_port": "80", "all_interfaces": true, "loopback": false}]}})
	refused_with(req, "port 80/tcp binds 0.0.0.0")
}

test_break_glass_prunes if {
	deny(request("container.prune", "POST", breakglass)) == set()
	deny(request("volume.prune", "POST", breakglass)) == set()
	deny(request("container.prune", "POST", alice)) == {"operation container.prune is refused by the policy (operations: deny)"}
}

container(name, uid) := {"kind": "container", "ref": name, "id": "c0ffee", "name": name, "labels": {}, "owner": {"known": uid >= 0, "uid": uid, "user": ""}}

on(op, caller, target, query) := object.union(request(op, "POST", caller), {"vars": {"name": target.ref}, "query": query, "target": target})

test_break_glass_is_an_ownership_admin if {
	deny(on("container.stop", breakglass, container("sandbox-a1", 1000), {})) == set()
	deny(on("container.delete", breakglass, container("legacy-db", -1), {})) == set()
	refused_with(on("container.stop", alice, container("debug-shell", 901), {}), "only its owner or an admin")
}

test_break_glass_commits_for_forensics if {
	deny(on("container.commit", breakglass, container("sandbox-a1", 1000), {"container": ["sandbox-a1"], "repo": ["forensics/sandbox-a1"], "tag": ["inc-4711"]})) == set()
	refused_with(
		on("container.commit", breakglass, container("sandbox-a1", 1000), {"container": ["sandbox-a1"], "repo": ["busybox"], "tag": ["latest"]}),
		"would write the image reference busybox:latest",
	)
}

# Without its data (a misspelt key) the incident rule still refuses:
# `not regex.match(...)` of an undefined operand would not.
test_incident_rule_refuses_without_its_data if {
	req := debug_shell(breakglass, {"incident": "INC-4711"})
	deny(req) == {`break-glass containers need the label (data.break_glass.incident_label missing)=<incident ID> matching (data.break_glass.incident_pattern missing) (e.g. docker run --label (data.break_glass.incident_label missing)=INC-1234)`} with data.break_glass as {}
	deny(req) == {`break-glass containers need the label incident=<incident ID> matching (data.break_glass.incident_pattern missing) (e.g. docker run --label incident=INC-1234)`} with data.break_glass as {"incident_label": "incident"}
}
