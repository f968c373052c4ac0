# Tests of the security-rules example.
#
# Run: sockproxy policy test rego/examples/security-rules
package examples.security_rules_test

import data.examples.security.registry
import data.sockproxy

alice := {"known": true, "uid": 1000, "gid": 1000, "pid": 4242, "user": "alice", "group": "alice", "groups": ["alice"]}

request(op, query) := {
	"operation": op, "method": "POST", "path": "/v1.41/x", "api_version": "1.41", "versioned": true,
	"query": query, "vars": {}, "caller": alice, "body": null, "form_body": false, "body_size": 0,
}

private := {"mode": "", "host": false, "container": "", "default": true}

# A create that the library's hardened defaults allow: only the site rules
# can refuse it.
create(image, labels) := object.union(request("container.create", {}), {
	"body": {"Image": image},
	"body_size": 300,
	"container": {
		"name": "", "image": image,
		"user": {"raw": "1000:1000", "source": "request", "value": "1000:1000", "uid": 1000, "gid": 1000, "root": false, "resolved": true},
		"mounts": [], "ports": [], "publish_all": false,
		"networks": [{"ref": "default", "mode": "default", "name": "bridge", "id": "495fc7371de9", "found": true, "driver": "bridge", "options": {}}],
		"namespaces": {
			"network": {"mode": "default", "host": false, "container": "", "default": false},
			"pid": private, "ipc": object.union(private, {"mode": "private"}), "uts": private, "userns": private,
			"cgroupns": object.union(private, {"mode": "private"}),
		},
		"privileges": {
			"privileged": false, "cap_add": [], "cap_drop": [], "devices": [], "device_cgroup_rules": [],
			"device_requests": [], "security_opt": [], "seccomp": "", "apparmor": "", "label": [],
			"no_new_privileges": null, "unconfined": [], "masked_paths_override": false,
			"readonly_paths_override": false, "runtime": "", "cgroup_parent": "", "cgroup": "", "group_add": [],
			"sysctls": {}, "log_driver": "", "log_options": {}, "volume_driver": "", "links": [], "extra_hosts": [],
			"annotations": {}, "oom_kill_disable": false, "init": false,
		},
		"labels": labels,
	},
})

labels := {"team": "payments", "cost-center": "cc-1042"}

deny(req) := d if {
	d := sockproxy.deny with input as req
}

test_labelled_container_from_company_registry_allowed if {
	deny(create("registry.example.internal/payments/api:1.4", labels)) == set()
	deny(create("docker.openhands.dev/openhands/runtime:0.62-nikolaik", labels)) == set()
}

test_missing_labels_refused if {
	deny(create("registry.example.internal/payments/api:1.4", {})) == {"container labels team, cost-center are required (missing or empty: cost-center, team): add --label cost-center=..."}
	deny(create("registry.example.internal/payments/api:1.4", {"team": "payments", "cost-center": ""})) == {"container labels team, cost-center are required (missing or empty: cost-center): add --label cost-center=..."}
}

test_docker_hub_images_refused if {
	deny(create("busybox", labels)) == {"image busybox comes from docker.io: allowed registries are registry.example.internal, docker.openhands.dev"}
	every ref in ["library/busybox:1.36", "docker.io/library/busybox", "index.docker.io/library/busybox", "alice/tool"] {
		count(deny(create(ref, labels))) == 1
	}
}

test_lookalike_registries_refused if {
	every ref in [
		"registry.example.internal.evil.example/payments/api:1.4",
		"registry.example.internal:5000/payments/api",
		"localhost:5000/payments/api",
		"localhost/payments/api",
	] {
		some msg in deny(create(ref, labels))
		contains(msg, "allowed registries are")
	}
}

# An image ID says nothing about where the image came from.
test_image_ids_refused if {
	deny(create("sha256:c3036825072a6bd3c7e6d39a0e4d1e5b0c6b1f2f0b3c4d5e6f708192a3b4c5d6", labels)) == {"image sha256:c3036825072a6bd3c7e6d39a0e4d1e5b0c6b1f2f0b3c4d5e6f708192a3b4c5d6 is named by its ID: name it by registry reference (registry.example.internal, docker.openhands.dev)"}
	count(deny(create("c3036825072a", labels))) == 1
}

test_pulls_only_from_company_registries if {
	deny(request("image.create", {"fromImage": ["registry.example.internal/payments/api"], "tag": ["1.4"]})) == set()
	deny(request("image.create", {"fromImage": ["alpine"], "tag": ["3.20"]})) == {"image alpine comes from docker.io: allowed registries are registry.example.internal, docker.openhands.dev"}
}

test_registry_parsing if {
	registry.registry("busybox") == "docker.io"
	registry.registry("library/busybox") == "docker.io"
	registry.registry("ghcr.io/org/app:1") == "ghcr.io"
	registry.registry("localhost:5000/app") == "localhost:5000"
	registry.registry("localhost/app") == "localhost"
	registry.registry("Registry.Example.Internal/app") == "registry.example.internal"
}

# Without the registry list (a misspelt key) no registry is allowed:
# `not host in` an undefined list would allow every one.
test_missing_registry_list_refuses if {
	deny(create("registry.example.internal/payments/api:1.4", labels)) == {"image registry.example.internal/payments/api:1.4 comes from registry.example.internal: allowed registries are "} with data.security.allowed_registries as null
	deny(create("busybox", labels)) == {"image busybox comes from docker.io: allowed registries are "} with data.security as {"required_labels": ["team", "cost-center"]}
}
