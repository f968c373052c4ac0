# Tests of the agent-sandbox example: the calls an OpenHands-style runtime
# (docker-py) makes over one sandbox's life (version, inspects, pull, list,
# create, start, network connect after start, logs, delete) are allowed
# with this directory's data; what the hardened profile forbids is refused.
#
# Run: sockproxy policy test rego/examples/agent-sandbox
package examples.agent_sandbox_test

import data.sockproxy

alice := {"known": true, "uid": 1000, "gid": 1000, "pid": 4242, "user": "alice", "group": "alice", "groups": ["alice"]}

# request(op, method): an input without a body or facts, as the proxy builds
# it for reads and lifecycle calls.
request(op, method) := {
	"operation": op, "method": method, "path": "/v1.41/x", "api_version": "1.41", "versioned": true,
	"query": {}, "vars": {}, "caller": alice, "body": null, "form_body": false, "body_size": 0,
}

user(value, uid, gid) := {"raw": value, "source": "request", "value": value, "uid": uid, "gid": gid, "root": uid == 0, "resolved": true}

# The image's default user, looked up on the daemon when User is empty.
image_root := {"raw": "", "source": "image", "value": "", "uid": 0, "gid": 0, "root": true, "resolved": true}

bind(host, real, target, ro) := {
	"origin": "binds", "type": "bind", "source": host, "target": target,
	"host_bind": true, "host_path": host, "real_path": real, "path_status": "resolved", "path_differs": host != real,
	"read_only": ro, "read_only_recursive": false, "propagation": "rprivate", "relabel": "", "nocopy": false,
	"create_mountpoint": false, "non_recursive": false, "read_only_force_recursive": false,
	"driver": "", "driver_options": {}, "volume_found": false,
}

port(p, ip) := {
	"container_port": p, "protocol": "tcp", "host_ip": ip, "host_port": p,
	"all_interfaces": ip in {"", "0.0.0.0", "::"}, "loopback": ip in {"127.0.0.1", "::1"},
}

private := {"mode": "", "host": false, "container": "", "default": true}

no_privileges := {
	"privileged": false, "cap_add": [], "cap_drop": [], "devices": [], "device_cgroup_rules": [],
	"device_requests": [], "security_opt": [], "seccomp": "", "apparmor": "", "label": [],
	"no_new_privileges": null, "unconfined": [], "masked_paths_override": false,
	"readonly_paths_override": false, "runtime": "", "cgroup_parent": "", "cgroup": "", "group_add": [],
	"sysctls": {}, "log_driver": "", "log_options": {}, "volume_driver": "", "links": [], "extra_hosts": [],
	"annotations": {}, "oom_kill_disable": false, "init": false,
}

# The runtime's hardened create (docs/policy-input.md's example): projects
# rw at /workspace, datasets ro at /data, User 1000:1000, loopback ports.
hardened := object.union(request("container.create", "POST"), {
	"path": "/v1.41/containers/create",
	"query": {"name": ["openhands-runtime-3b8e0d5c"]},
	"body": {"Image": "docker.openhands.dev/openhands/runtime:0.62-nikolaik", "User": "1000:1000"},
	"body_size": 1024,
	"container": {
		"name": "openhands-runtime-3b8e0d5c",
		"image": "docker.openhands.dev/openhands/runtime:0.62-nikolaik",
		"user": user("1000:1000", 1000, 1000),
		"mounts": [
			bind("/home/alice/projects", "/home/alice/projects", "/workspace", false),
			bind("/home/alice/datasets", "/home/alice/datasets", "/data", true),
		],
		"ports": [port("30412", "127.0.0.1"), port("44107", "127.0.0.1")],
		"publish_all": false,
		"networks": [{"ref": "default", "mode": "default", "name": "bridge", "id": "495fc7371de9", "found": true, "driver": "bridge", "options": {}}],
		"namespaces": {
			"network": {"mode": "default", "host": false, "container": "", "default": false},
			"pid": private, "ipc": object.union(private, {"mode": "private"}), "uts": private, "userns": private,
			"cgroupns": object.union(private, {"mode": "private"}),
		},
		"privileges": no_privileges,
		"labels": {},
	},
})

# with_container(patch): the hardened create with fields of input.container
# replaced.
with_container(patch) := object.union(hardened, {"container": object.union(hardened.container, patch)})

deny(req) := d if {
	d := sockproxy.deny with input as req
}

allowed(req) if count(deny(req)) == 0

# refused_with(req, part): some refusal message contains part.
refused_with(req, part) if {
	some msg in deny(req)
	contains(msg, part)
}

# --- the runtime's calls, in order

test_negotiation_and_inspects_allowed if {
	allowed(request("system.version", "GET"))
	allowed(request("system.ping", "GET"))
	allowed(request("container.inspect", "GET"))
	allowed(request("image.inspect", "GET"))
}

test_pull_runtime_image_allowed if {
	allowed(object.union(request("image.create", "POST"), {"query": {"fromImage": ["docker.openhands.dev/openhands/runtime"], "tag": ["0.62-nikolaik"]}}))
}

test_pull_other_image_refused if {
	refused_with(
		object.union(request("image.create", "POST"), {"query": {"fromImage": ["docker.io/library/alpine"], "tag": ["latest"]}}),
		"docker.io/library/alpine:latest",
	)
}

# Port allocation lists and inspects every container, others' included.
test_list_and_inspect_every_container_allowed if {
	allowed(request("container.list", "GET"))
	allowed(object.union(request("container.inspect", "GET"), {"vars": {"name": "someone-elses"}}))
}

test_hardened_create_allowed if {
	deny(hardened) == set()
}

test_lifecycle_allowed if {
	every op in ["container.start", "container.logs", "container.stop", "container.delete", "container.wait", "container.attach"] {
		allowed(request(op, "POST"))
	}
}

connect(network, container_user) := object.union(request("network.connect", "POST"), {
	"vars": {"id": network},
	"body": {"Container": "openhands-runtime-3b8e0d5c", "EndpointConfig": {}},
	"connect": {"container": "openhands-runtime-3b8e0d5c", "aliases": [], "ipv4": "", "ipv6": "", "link_local_ips": [], "mac_address": "", "driver_opts": {}, "links": []},
	"target": {
		"kind": "network", "ref": network, "id": "7e57ab1e", "name": network, "labels": {},
		"owner": {"known": false, "uid": -1, "user": ""}, "driver": "bridge", "scope": "local",
		"container": {
			"kind": "container", "ref": "openhands-runtime-3b8e0d5c", "id": "c0ffee", "name": "openhands-runtime-3b8e0d5c",
			"labels": {}, "owner": {"known": false, "uid": -1, "user": ""}, "user": container_user,
		},
	},
})

# Extra networks are joined after start: membership is judged at connect.
test_connect_to_sandbox_network_allowed if {
	allowed(connect("openhands-network", user("1000:1000", 1000, 1000)))
}

test_connect_to_other_network_refused if {
	deny(connect("corp-lan", user("1000:1000", 1000, 1000))) == {"network corp-lan is not allowed: only default, bridge, none, openhands-network allowed"}
}

# --- what the hardened profile refuses

# The runtime's default request: all interfaces, no User (the image's root).
test_default_openhands_create_refused if {
	req := with_container({
		"user": image_root,
		"mounts": [],
		"ports": [port("30412", "0.0.0.0"), port("44107", "0.0.0.0")],
	})
	refused_with(req, "port 30412/tcp binds 0.0.0.0")
	refused_with(req, "port 44107/tcp binds 0.0.0.0")
	refused_with(req, "user root (uid 0, the image's default) not allowed")

	# allowed_uids and allowed_gids refuse it too.
	refused_with(req, "user root (uid 0) is not in allowed_uids: 1000")
	count(deny(req)) == 5
}

test_other_uid_refused if {
	deny(with_container({"user": user("1001:1001", 1001, 1001)})) == {
		"user 1001:1001 (uid 1001) is not in allowed_uids: 1000",
		"user 1001:1001 (gid 1001) is not in allowed_gids: 1000",
	}
}

test_bind_outside_roots_refused if {
	refused_with(
		with_container({"mounts": [bind("/home/alice/.ssh", "/home/alice/.ssh", "/workspace", true)]}),
		"mount /home/alice/.ssh:/workspace is not under an allowed root",
	)

	# /home/alice/projects2 is not under /home/alice/projects.
	refused_with(
		with_container({"mounts": [bind("/home/alice/projects2", "/home/alice/projects2", "/workspace", false)]}),
		"is not under an allowed root",
	)
}

test_datasets_read_write_refused if {
	refused_with(
		with_container({"mounts": [bind("/home/alice/datasets", "/home/alice/datasets", "/data", false)]}),
		"mount /home/alice/datasets:/data is rw but /home/alice/datasets allows only ro",
	)
}

test_git_hooks_read_only if {
	refused_with(
		with_container({"mounts": [bind("/home/alice/projects/.git/hooks", "/home/alice/projects/.git/hooks", "/hooks", false)]}),
		"allows only ro",
	)
	allowed(with_container({"mounts": [bind("/home/alice/projects/.git/hooks", "/home/alice/projects/.git/hooks", "/hooks", true)]}))
}

# A symlink inside the workspace is judged by where it really leads.
test_symlink_out_of_workspace_refused if {
	refused_with(
		with_container({"mounts": [bind("/home/alice/projects/etc", "/etc", "/workspace", false)]}),
		"(it resolves to /etc)",
	)
}

# The "overlay" variant: an anonymous volume whose local-driver options
# carry a host path, with no Binds entry at all.
test_overlay_volume_with_host_lower_dir_refused if {
	overlay := {
		"origin": "mounts", "type": "volume", "source": "", "target": "/workspace",
		"host_bind": true, "host_path": "/etc", "real_path": "/etc", "path_status": "resolved", "path_differs": false,
		"read_only": true, "read_only_recursive": false, "propagation": "", "relabel": "", "nocopy": false,
		"create_mountpoint": false, "non_recursive": false, "read_only_force_recursive": false,
		"driver": "local", "driver_options": {"type": "overlay", "device": "overlay", "o": "lowerdir=/etc,upperdir=/tmp/u,workdir=/tmp/w"},
		"volume_found": false, "local_mount": "overlay", "host_path_option": "lowerdir",
	}
	refused_with(with_container({"mounts": [overlay]}), "volume (anonymous):/workspace (host path /etc) is not under an allowed root")
}

test_privilege_refused if {
	refused_with(with_container({"privileges": object.union(no_privileges, {"privileged": true})}), "privileged")
	refused_with(with_container({"privileges": object.union(no_privileges, {"cap_add": ["SYS_ADMIN"]})}), "SYS_ADMIN")
	refused_with(
		with_container({"privileges": object.union(no_privileges, {"device_requests": [{"driver": "nvidia", "count": -1, "device_ids": [], "capabilities": [["gpu"]], "options": {}}]})}),
		"device requests (--gpus) are not allowed",
	)
}

test_other_image_refused if {
	refused_with(with_container({"image": "alpine:latest"}), "image alpine:latest is not allowed")
}

test_exec_as_root_refused if {
	exec := object.union(request("exec.create", "POST"), {
		"vars": {"name": "openhands-runtime-3b8e0d5c"},
		"exec": {"container": "openhands-runtime-3b8e0d5c", "privileged": false, "user": user("0", 0, -1), "cmd": ["sh"]},
	})
	refused_with(exec, "exec user 0 (uid 0) not allowed")
	allowed(object.union(exec, {"exec": object.union(exec.exec, {"user": user("1000:1000", 1000, 1000)})}))
}

test_image_builds_and_plugins_refused if {
	refused_with(request("image.build", "POST"), "operations: deny")
	refused_with(request("plugin.pull", "POST"), "operations: deny")
}
