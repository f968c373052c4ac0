# Tests of the ci-runner example: the runner's profile allows builds,
# pushes and root job containers within its limits; everybody else keeps
# the hardened defaults.
#
# Run: sockproxy policy test rego/examples/ci-runner
package examples.ci_runner_test

import data.sockproxy
import data.sockproxy.lib.profile

runner := {"known": true, "uid": 1500, "gid": 1500, "pid": 800, "user": "gitlab-runner", "group": "gitlab-runner", "groups": ["gitlab-runner", "ci-runners"]}

# A second runner host account, matched by its group.
runner2 := {"known": true, "uid": 1501, "gid": 1501, "pid": 801, "user": "runner2", "group": "runner2", "groups": ["runner2", "ci-runners"]}

alice := {"known": true, "uid": 1000, "gid": 1000, "pid": 4242, "user": "alice", "group": "alice", "groups": ["alice"]}

request(op, method, caller, query) := {
	"operation": op, "method": method, "path": "/v1.41/x", "api_version": "1.41", "versioned": true,
	"query": query, "vars": {}, "caller": caller, "body": null, "form_body": false, "body_size": 0,
}

user(value, uid) := {"raw": value, "source": "request", "value": value, "uid": uid, "gid": -1, "root": uid == 0, "resolved": true}

bind(host, target, ro) := {
	"origin": "binds", "type": "bind", "source": host, "target": target,
	"host_bind": true, "host_path": host, "real_path": host, "path_status": "resolved", "path_differs": false,
	"read_only": ro, "read_only_recursive": false, "propagation": "rprivate", "relabel": "", "nocopy": false,
	"create_mountpoint": false, "non_recursive": false, "read_only_force_recursive": false,
	"driver": "", "driver_options": {}, "volume_found": false,
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

# A job container: golang:1.25 as root with the job's checkout and the
# module cache bound.
job(caller, patch) := object.union(request("container.create", "POST", caller, {"name": ["runner-abc-project-7-job-42"]}), {
	"body": {"Image": "golang:1.25"},
	"body_size": 900,
	"container": object.union(
		{
			"name": "runner-abc-project-7-job-42",
			"image": "golang:1.25",
			"user": user("", 0),
			"mounts": [
				bind("/srv/ci/builds/project-7", "/builds/project-7", false),
				bind("/srv/ci/cache/go", "/go/pkg/mod", false),
			],
			"ports": [],
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
		patch,
	),
})

deny(req) := d if {
	d := sockproxy.deny with input as req
}

allowed(req) if count(deny(req)) == 0

refused_with(req, part) if {
	some msg in deny(req)
	contains(msg, part)
}

build(caller, tag) := request("image.build", "POST", caller, {"t": [tag], "networkmode": ["default"]})

test_profile_matches_runner_by_uid_and_group if {
	profile.name == "ci-runner" with input as build(runner, "registry.example.internal/ci/app:42")
	profile.name == "ci-runner" with input as build(runner2, "registry.example.internal/ci/app:42")
	profile.name == "" with input as build(alice, "registry.example.internal/ci/app:42")
}

test_runner_builds_ci_images if {
	allowed(build(runner, "registry.example.internal/ci/app:42"))
}

test_runner_build_cannot_overwrite_other_images if {
	refused_with(build(runner, "golang:1.25"), "build would write the image reference golang:1.25")
}

test_runner_buildkit_and_host_network_refused if {
	refused_with(request("image.build", "POST", runner, {"t": ["registry.example.internal/ci/app:42"], "version": ["2"]}), "BuildKit")
	refused_with(request("image.build", "POST", runner, {"t": ["registry.example.internal/ci/app:42"], "networkmode": ["host"]}), "build networkmode host is not allowed")
}

test_others_cannot_build if {
	deny(build(alice, "registry.example.internal/ci/app:42")) == {"operation image.build is refused by the policy (operations: deny)"}
}

test_runner_tags_and_pushes_ci_images if {
	allowed(request("image.tag", "POST", runner, {"repo": ["registry.example.internal/ci/app"], "tag": ["latest"]}))
	allowed(object.union(request("image.push", "POST", runner, {"tag": ["42"]}), {"vars": {"name": "registry.example.internal/ci/app"}}))
}

test_runner_push_elsewhere_refused if {
	refused_with(
		object.union(request("image.push", "POST", runner, {"tag": ["latest"]}), {"vars": {"name": "docker.io/someone/app"}}),
		"image push of docker.io/someone/app:latest is not allowed",
	)
}

test_runner_job_container_as_root_allowed if {
	deny(job(runner, {})) == set()
}

test_alice_root_container_refused if {
	refused_with(job(alice, {"mounts": []}), "user root (uid 0) not allowed")
}

test_runner_binds_only_build_and_cache_dirs if {
	refused_with(
		job(runner, {"mounts": [bind("/var/run/docker.sock", "/var/run/docker.sock", false)]}),
		"mount /var/run/docker.sock:/var/run/docker.sock is not under an allowed root",
	)
	refused_with(job(runner, {"mounts": [bind("/srv/ci", "/srv", true)]}), "is not under an allowed root")
}

test_runner_still_unprivileged if {
	refused_with(job(runner, {"privileges": object.union(no_privileges, {"privileged": true})}), "privileged is not allowed")
	refused_with(job(runner, {"privileges": object.union(no_privileges, {"cap_add": ["SYS_ADMIN"]})}), "SYS_ADMIN")
	refused_with(
		job(runner, {"namespaces": object.union(job(runner, {}).container.namespaces, {"pid": {"mode": "host", "host": true, "container": "", "default": false}})}),
		"pid namespace host is not allowed",
	)
	refused_with(
		job(runner, {"ports": [{"container_port": "8080", "protocol": "tcp", "host_ip": "", "host_port": "8080", "all_interfaces": true, "loopback": false}]}),
		"port 8080/tcp binds all interfaces",
	)
}

container(name, owner_uid) := {
	"kind": "container", "ref": name, "id": "c0ffee", "name": name, "labels": {},
	"owner": {"known": owner_uid >= 0, "uid": owner_uid, "user": ""},
}

on_container(op, caller, target) := object.union(request(op, "POST", caller, {}), {"vars": {"name": target.ref}, "target": target})

test_runner_acts_only_on_its_own_containers if {
	allowed(on_container("container.delete", runner, container("runner-abc-project-7-job-42", 1500)))
	deny(on_container("container.stop", runner, container("openhands-runtime-3b8e0d5c", 1000))) == {"container openhands-runtime-3b8e0d5c belongs to uid 1000: only its owner or an admin may container.stop it"}
	refused_with(on_container("container.delete", runner, container("legacy", -1)), "has no owner label")
}

# Ownership is on in the runner's profile only: others keep the base rules.
test_ownership_only_for_the_runner if {
	allowed(on_container("container.stop", alice, container("runner-abc-project-7-job-42", 1500)))
}
