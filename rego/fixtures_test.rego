# Shared inputs for the library's tests: the hardened OpenHands create from
# ../shared notes, as the normalizer presents it, and helpers that judge a
# patched copy of it.
package sockproxy.fixtures

roots := [
	{"path": "/home/alice/projects", "modes": ["ro", "rw"]},
	{"path": "/home/alice/datasets", "modes": ["ro"]},
]

user_1000 := {"raw": "1000:1000", "source": "request", "value": "1000:1000", "uid": 1000, "gid": 1000, "root": false, "resolved": true}

bind(host, target, ro) := {
	"origin": "binds", "type": "bind", "source": host, "target": target,
	"host_bind": true, "host_path": host, "real_path": host, "path_status": "resolved", "path_differs": false,
	"read_only": ro, "read_only_recursive": false, "propagation": "", "relabel": "", "nocopy": false,
	"create_mountpoint": false, "driver": "", "driver_options": {}, "volume_found": false,
}

volume(name, target, driver, opts) := {
	"origin": "mounts", "type": "volume", "source": name, "target": target,
	"host_bind": false, "host_path": "", "real_path": "", "path_status": "", "path_differs": false,
	"read_only": false, "read_only_recursive": false, "propagation": "", "relabel": "", "nocopy": false,
	"create_mountpoint": false, "driver": driver, "driver_options": opts, "volume_found": true,
}

port(p, ip) := {
	"container_port": p, "protocol": "tcp", "host_ip": ip, "host_port": p,
	"all_interfaces": ip in {"", "0.0.0.0", "::"}, "loopback": ip in {"127.0.0.1", "::1"},
}

private := {"mode": "", "host": false, "container": ""}

no_privileges := {
	"privileged": false, "cap_add": [], "cap_drop": [], "devices": [], "device_cgroup_rules": [],
	"device_requests": [], "security_opt": [], "unconfined": [], "masked_paths_override": false,
	"readonly_paths_override": false, "runtime": "", "cgroup_parent": "", "sysctls": {},
	"log_driver": "", "log_options": {}, "volume_driver": "", "links": [], "extra_hosts": [],
	"annotations": {}, "oom_kill_disable": false, "init": false,
}

openhands := {
	"operation": "container.create", "method": "POST", "path": "/v1.41/containers/create",
	"api_version": "1.41", "versioned": true, "query": {"name": ["openhands-runtime-3b8e0d5c"]}, "vars": {},
	"caller": {"known": true, "uid": 1000, "gid": 1000, "pid": 4242, "user": "alice"},
	"body": {"Image": "docker.openhands.dev/openhands/runtime:0.62-nikolaik", "User": "1000:1000", "HostConfig": {"NetworkMode": "default"}},
	"container": {
		"name": "openhands-runtime-3b8e0d5c",
		"image": "docker.openhands.dev/openhands/runtime:0.62-nikolaik",
		"user": user_1000,
		"mounts": [
			bind("/home/alice/projects", "/workspace", false),
			bind("/home/alice/datasets", "/data", true),
		],
		"ports": [port("30412", "127.0.0.1"), port("44107", "127.0.0.1")],
		"publish_all": false,
		"networks": [{"ref": "default", "mode": "default", "name": "bridge", "id": "f00dbabe", "found": true}],
		"namespaces": {
			"network": {"mode": "default", "host": false, "container": ""},
			"pid": private, "ipc": {"mode": "private", "host": false, "container": ""},
			"uts": private, "userns": private, "cgroupns": {"mode": "private", "host": false, "container": ""},
		},
		"privileges": no_privileges,
		"labels": {},
	},
}

# deny and warn of the OpenHands create with a JSON patch applied, under the
# test roots.
deny(patch) := deny_with_roots(patch, roots)

# An outer `with` on mount_roots is overridden by deny's: use this instead.
deny_with_roots(patch, mount_roots) := d if {
	d := data.sockproxy.deny with input as json.patch(openhands, patch)
		with data.sockproxy.config.mount_roots as mount_roots
}

warn(patch) := w if {
	w := data.sockproxy.warn with input as json.patch(openhands, patch)
		with data.sockproxy.config.mount_roots as roots
}

set(path, value) := [{"op": "replace", "path": path, "value": value}]

# add creates an object key (set replaces one that exists).
add(path, value) := [{"op": "add", "path": path, "value": value}]

# an input for operation op with no body and no facts.
request(op) := {
	"operation": op, "method": "GET", "path": "/v1.41/x", "api_version": "1.41", "versioned": true,
	"query": {}, "vars": {}, "caller": {"known": true, "uid": 1000, "gid": 1000, "pid": 1}, "body": null,
}
