package sockproxy.lib.exec_test

import data.sockproxy
import data.sockproxy.fixtures as f

exec(facts) := object.union(f.request("exec.create"), {"method": "POST", "vars": {"name": "sandbox"}, "exec": facts})

ok := {"container": "sandbox", "privileged": false, "user": object.union(f.user_1000, {"source": "request"}), "cmd": ["sh"]}

test_exec_nonroot_allowed if {
	count(sockproxy.deny) == 0 with input as exec(ok)
}

test_exec_root_refused if {
	root := object.union(ok, {"user": {"raw": "0:0", "source": "request", "value": "0:0", "uid": 0, "gid": 0, "root": true, "resolved": true}})
	sockproxy.deny == {"exec user 0:0 (uid 0) not allowed: set User to a non-root uid"} with input as exec(root)
}

test_exec_container_root_user_refused if {
	root := object.union(ok, {"user": {"raw": "", "source": "container", "value": "", "uid": 0, "gid": 0, "root": true, "resolved": true}})
	sockproxy.deny == {"exec user root (uid 0, the container's user) not allowed: set User to a non-root uid"} with input as exec(root)
}

test_exec_privileged_refused if {
	sockproxy.deny == {"exec privileged is not allowed: it gives the process every capability of the host"} with input as exec(object.union(ok, {"privileged": true}))
}

test_exec_into_privileged_container_refused if {
	req := object.union(exec(ok), {"target": {"kind": "container", "id": "abc", "privileged": true}})
	sockproxy.deny == {"exec into container sandbox is not allowed: it runs privileged, so every process exec'd in it keeps every capability and device of the host within reach"} with input as req
	count(sockproxy.deny) == 0 with input as req with data.sockproxy.config.allow_privileged as true
	count(sockproxy.deny) == 0 with input as object.union(exec(ok), {"target": {"kind": "container", "id": "abc", "privileged": false}})
}

test_exec_unresolved_user_refused if {
	u := {"raw": "bob", "source": "request", "value": "bob", "uid": -1, "gid": -1, "root": false, "resolved": false}
	sockproxy.deny == {`exec user "bob" cannot be resolved to a uid: set User to a numeric uid[:gid]`} with input as exec(object.union(ok, {"user": u}))
}

test_exec_without_facts_refused if {
	sockproxy.deny == {"exec.create without normalized facts (input.exec): refused"} with input as f.request("exec.create")
}

# --- the target container's host access, judged with the caller's settings

# The host access of a plain hardened container: private namespaces, no
# added privilege, a plain volume.
plain_access := {
	"namespaces": {
		"network": {"mode": "bridge", "host": false, "container": "", "default": false},
		"pid": f.private, "ipc": {"mode": "private", "host": false, "container": "", "default": false},
		"uts": f.private, "userns": f.private, "cgroupns": {"mode": "private", "host": false, "container": "", "default": false},
	},
	"privileges": f.no_privileges,
	"mounts": [object.union(f.volume("data", "/data", "local", {}), {"origin": "container"})],
}

# exec.create of the non-root exec into container "sandbox" whose host
# access is plain_access with patch applied.
into(patch) := object.union(exec(ok), {"target": {"kind": "container", "id": "abc", "name": "sandbox", "host_access": json.patch(plain_access, patch)}})

# exec.start of an exec in that container.
start_in(patch) := object.union(f.request("exec.start"), {"method": "POST", "vars": {"name": "e1"}, "target": {"kind": "container", "id": "abc", "name": "sandbox", "exec_id": "e1", "host_access": json.patch(plain_access, patch)}})

refusal(reason) := sprintf("exec into container sandbox shares what this caller may not create: %s", [reason])

test_exec_into_plain_container_allowed if {
	count(sockproxy.deny) == 0 with input as into([])
	count(sockproxy.deny) == 0 with input as start_in([])
}

test_exec_into_host_pid_container_refused if {
	patch := f.set("/namespaces/pid", {"mode": "host", "host": true, "container": "", "default": false})
	sockproxy.deny == {refusal("pid namespace host is not allowed: it shares the host's pid namespace")} with input as into(patch)
	count(sockproxy.deny) == 0 with input as into(patch) with data.sockproxy.config.allowed_host_namespaces as ["pid"]
}

test_exec_into_host_network_container_refused if {
	patch := f.set("/namespaces/network", {"mode": "host", "host": true, "container": "", "default": false})
	sockproxy.deny == {refusal("network host is not allowed: it shares the host's network namespace")} with input as into(patch)
	count(sockproxy.deny) == 0 with input as into(patch) with data.sockproxy.config.allowed_networks as ["default", "host"]
}

test_exec_into_container_sharing_namespace_refused if {
	patch := f.set("/namespaces/ipc", {"mode": "container:db", "host": false, "container": "db", "default": false})
	sockproxy.deny == {refusal("ipc namespace container:db is not allowed: it joins another container's namespace")} with input as into(patch)
}

test_exec_into_container_with_added_capability_refused if {
	patch := f.set("/privileges/cap_add", ["SYS_ADMIN"])
	sockproxy.deny == {refusal("capability SYS_ADMIN is not allowed: allowed_capabilities are none")} with input as into(patch)
	count(sockproxy.deny) == 0 with input as into(patch) with data.sockproxy.config.allowed_capabilities as ["SYS_ADMIN"]
}

test_exec_into_container_with_device_refused if {
	patch := f.set("/privileges/devices", ["/dev/sda"])
	sockproxy.deny == {refusal("device /dev/sda is not allowed: allowed_devices are none")} with input as into(patch)
	count(sockproxy.deny) == 0 with input as into(patch) with data.sockproxy.config.allowed_devices as ["/dev/sda"]
}

test_exec_into_container_with_device_cgroup_rule_refused if {
	sockproxy.deny == {refusal(`device cgroup rule "b *:* rwm" is not allowed`)} with input as into(f.set("/privileges/device_cgroup_rules", ["b *:* rwm"]))
}

test_exec_into_unconfined_container_refused if {
	patch := f.set("/privileges/unconfined", ["seccomp"])
	sockproxy.deny == {refusal("security option that switches off seccomp is not allowed")} with input as into(patch)
	count(sockproxy.deny) == 0 with input as into(patch) with data.sockproxy.config.allowed_unconfined as ["seccomp"]
}

test_exec_into_container_with_host_root_bind_refused if {
	patch := f.set("/mounts", [object.union(f.bind("/", "/host", false), {"origin": "container"})])
	sockproxy.deny == {refusal("mount /:/host is not under an allowed root")} with input as into(patch)

	# The caller's roots and modes decide: / read-only does not allow it rw.
	sockproxy.deny == {refusal("mount /:/host is rw but / allows only ro")} with input as into(patch)
		with data.sockproxy.config.mount_roots as [{"path": "/", "modes": ["ro"]}]
	count(sockproxy.deny) == 0 with input as into(patch) with data.sockproxy.config.mount_roots as [{"path": "/", "modes": ["ro", "rw"]}]
}

test_exec_into_container_with_docker_socket_refused if {
	sock := object.union(f.bind("/var/run/docker.sock", "/var/run/docker.sock", true), {"origin": "container", "real_path": "/run/docker.sock", "path_differs": true})
	sockproxy.deny == {refusal("mount /var/run/docker.sock:/var/run/docker.sock is not under an allowed root (it resolves to /run/docker.sock)")} with input as into(f.set("/mounts", [sock]))
	count(sockproxy.deny) == 0 with input as into(f.set("/mounts", [sock])) with data.sockproxy.config.mount_roots as [{"path": "/run/docker.sock", "modes": ["ro"]}]
}

test_exec_into_container_with_binding_volume_refused if {
	vol := object.union(f.volume("etc", "/etc-host", "local", {"type": "none", "o": "bind", "device": "/etc"}), {
		"origin": "container", "host_bind": true, "host_path": "/etc", "real_path": "/etc", "path_status": "resolved",
		"local_mount": "bind", "host_path_option": "device",
	})
	sockproxy.deny == {refusal("mount volume etc:/etc-host (host path /etc) is not under an allowed root")} with input as into(f.set("/mounts", [vol]))
}

test_exec_into_container_with_bind_under_allowed_root_allowed if {
	patch := f.set("/mounts", [object.union(f.bind("/home/alice/projects", "/workspace", false), {"origin": "container"})])
	count(sockproxy.deny) == 0 with input as into(patch) with data.sockproxy.config.mount_roots as f.roots
}

# A broader profile's container is judged with the caller's own profile.
test_exec_judged_with_callers_profile if {
	patch := f.set("/privileges/cap_add", ["NET_ADMIN"])
	ci := [{"name": "ci", "match": {"uids": [2000]}, "config": {"allowed_capabilities": ["NET_ADMIN"]}}]
	count(sockproxy.deny) == 0 with input as object.union(into(patch), {"caller": {"known": true, "uid": 2000, "gid": 2000, "pid": 1}})
		with data.sockproxy.config.profiles as ci
	sockproxy.deny == {refusal("capability NET_ADMIN is not allowed: allowed_capabilities are none")} with input as into(patch)
		with data.sockproxy.config.profiles as ci
}

test_exec_start_into_host_container_refused if {
	patch := f.set("/privileges/cap_add", ["SYS_ADMIN"])
	sockproxy.deny == {refusal("capability SYS_ADMIN is not allowed: allowed_capabilities are none")} with input as start_in(patch)
	sockproxy.deny == {"exec into container sandbox is not allowed: it runs privileged, so every process exec'd in it keeps every capability and device of the host within reach"} with input as object.union(start_in([]), {"target": {"privileged": true}})

	# Set to allow, exec.start is not judged.
	count(sockproxy.deny) == 0 with input as start_in(patch) with data.sockproxy.config.operations["exec.start"] as "allow"
}

test_exec_every_reason_named if {
	patch := array.concat(f.set("/privileges/cap_add", ["SYS_ADMIN"]), f.set("/namespaces/pid", {"mode": "host", "host": true, "container": "", "default": false}))
	sockproxy.deny == {
		refusal("capability SYS_ADMIN is not allowed: allowed_capabilities are none"),
		refusal("pid namespace host is not allowed: it shares the host's pid namespace"),
	} with input as into(patch)
}

# exec.start judges the exec instance as dockerd stored it: one made
# directly on dockerd as root, or privileged, is refused when started.
test_exec_start_of_root_or_privileged_exec_refused if {
	root := {"container": "abc", "privileged": false, "cmd": ["sh"], "user": {"raw": "", "source": "exec", "value": "", "uid": 0, "gid": 0, "root": true, "resolved": true}}
	sockproxy.deny == {"exec user root (uid 0, the exec instance's user) not allowed: set User to a non-root uid"} with input as object.union(start_in([]), {"exec": root})
	priv := {"container": "abc", "privileged": true, "cmd": ["sh"], "user": object.union(f.user_1000, {"source": "exec"})}
	sockproxy.deny == {"exec privileged is not allowed: it gives the process every capability of the host"} with input as object.union(start_in([]), {"exec": priv})
	count(sockproxy.deny) == 0 with input as object.union(start_in([]), {"exec": object.union(priv, {"privileged": false})})
}

# allow_privileged null (an empty YAML value) allows nothing, as false.
test_exec_privileged_refused_with_null_setting if {
	sockproxy.deny == {"exec privileged is not allowed: it gives the process every capability of the host"} with input as exec(object.union(ok, {"privileged": true}))
		with data.sockproxy.config.allow_privileged as null
	req := object.union(exec(ok), {"target": {"kind": "container", "id": "abc", "privileged": true}})
	sockproxy.deny == {"exec into container sandbox is not allowed: it runs privileged, so every process exec'd in it keeps every capability and device of the host within reach"} with input as req
		with data.sockproxy.config.allow_privileged as null
}
