package sockproxy.lib.image_test

import data.sockproxy
import data.sockproxy.fixtures as f

pull(query) := object.union(f.request("image.create"), {"method": "POST", "query": query})

test_pull_allowed if {
	count(sockproxy.deny) == 0 with input as pull({"fromImage": ["busybox"], "tag": ["latest"]})
}

test_import_refused if {
	sockproxy.deny == {"image import (fromSrc=-) is not allowed: set allow_image_import"} with input as pull({"fromSrc": ["-"]})
	count(sockproxy.deny) == 0 with input as pull({"fromSrc": ["-"]}) with data.sockproxy.config.allow_image_import as true
}

test_pull_checked_against_allowed_images if {
	req := pull({"fromImage": ["docker.openhands.dev/openhands/runtime"], "tag": ["0.62-nikolaik"]})
	count(sockproxy.deny) == 0 with input as req with data.sockproxy.config.allowed_images as ["docker.openhands.dev/openhands/*"]
	sockproxy.deny == {"image docker.openhands.dev/openhands/runtime:0.62-nikolaik is not allowed: allowed_images are busybox:*"} with input as req
		with data.sockproxy.config.allowed_images as ["busybox:*"]
}

test_pull_by_digest if {
	req := pull({"fromImage": ["busybox"], "tag": ["sha256:abc"]})
	count(sockproxy.deny) == 0 with input as req with data.sockproxy.config.allowed_images as ["busybox@sha256:*"]
}

test_first_query_value_counts if {
	req := pull({"fromImage": ["busybox", "evil/image"]})
	count(sockproxy.deny) == 0 with input as req with data.sockproxy.config.allowed_images as ["busybox"]
}

test_empty_create_refused if {
	sockproxy.deny == {"image.create without fromImage or fromSrc: refused"} with input as pull({})
}

test_import_url_refused if {
	sockproxy.deny == {"image import from a URL (fromSrc=http://10.0.0.1/x.tar) is not allowed: the daemon would fetch it; send the archive as the body (fromSrc=-)"} with input as pull({"fromSrc": ["http://10.0.0.1/x.tar"]})
		with data.sockproxy.config.allow_image_import as true
	count(sockproxy.deny) == 0 with input as pull({"fromSrc": ["http://10.0.0.1/x.tar"]})
		with data.sockproxy.config.allow_image_import as true
		with data.sockproxy.config.allow_image_import_url as true
}

test_import_writes_only_writable_refs if {
	req := pull({"fromSrc": ["-"], "repo": ["sandbox/base"], "tag": ["v1"]})
	sockproxy.deny == {"image import would write sandbox/base:v1: writable_images are none"} with input as req
		with data.sockproxy.config.allow_image_import as true
	count(sockproxy.deny) == 0 with input as req
		with data.sockproxy.config.allow_image_import as true
		with data.sockproxy.config.writable_images as ["sandbox/*"]
}

op(name, query) := object.union(f.request(name), {"method": "POST", "query": query})

judge(name) := {name: "judge"}

test_tag_refused_by_default if {
	sockproxy.deny == {"operation image.tag is refused by the policy (operations: deny)"} with input as op("image.tag", {"repo": ["busybox"], "tag": ["latest"]})
}

test_tag_judged_against_writable_images if {
	req := object.union(op("image.tag", {"repo": ["openhands/runtime"], "tag": ["0.62"]}), {"vars": {"name": "evil"}})
	sockproxy.deny == {"image.tag would write the image reference openhands/runtime:0.62: writable_images are scratch/*"} with input as req
		with data.sockproxy.config.operations as judge("image.tag")
		with data.sockproxy.config.writable_images as ["scratch/*"]
	count(sockproxy.deny) == 0 with input as req
		with data.sockproxy.config.operations as judge("image.tag")
		with data.sockproxy.config.writable_images as ["openhands/*"]
}

test_tag_default_tag_is_latest if {
	req := op("image.tag", {"repo": ["scratch/x"]})
	sockproxy.deny == {"image.tag would write the image reference scratch/x:latest: writable_images are scratch/x:v*"} with input as req
		with data.sockproxy.config.operations as judge("image.tag")
		with data.sockproxy.config.writable_images as ["scratch/x:v*"]
	sockproxy.deny == {"image.tag without repo: refused"} with input as op("image.tag", {})
		with data.sockproxy.config.operations as judge("image.tag")
}

# dockerd drops a tag (or digest) in repo when the tag parameter is given:
# repo=busybox:x-sandbox&tag=latest writes busybox:latest.
test_tag_parameter_replaces_the_tag_in_repo if {
	req := op("image.tag", {"repo": ["busybox:x-sandbox"], "tag": ["latest"]})
	sockproxy.deny == {"image.tag would write the image reference busybox:latest: writable_images are *:*-sandbox"} with input as req
		with data.sockproxy.config.operations as judge("image.tag")
		with data.sockproxy.config.writable_images as ["*:*-sandbox"]
	count(sockproxy.deny) == 0 with input as op("image.tag", {"repo": ["busybox:latest"], "tag": ["x-sandbox"]})
		with data.sockproxy.config.operations as judge("image.tag")
		with data.sockproxy.config.writable_images as ["*:*-sandbox"]
	sockproxy.deny == {"image import would write localhost:5000/a/b:latest: writable_images are none"} with input as pull({"fromSrc": ["-"], "repo": ["localhost:5000/a/b@sha256:abc"], "tag": ["latest"]})
		with data.sockproxy.config.allow_image_import as true
	sockproxy.deny == {"image push of registry.local:5000/app:v2 is not allowed: pushable_images are registry.local:5000/app:v1"} with input as object.union(op("image.push", {"tag": ["v2"]}), {"vars": {"name": "registry.local:5000/app:v1"}})
		with data.sockproxy.config.operations as judge("image.push")
		with data.sockproxy.config.pushable_images as ["registry.local:5000/app:v1"]
}

test_push_judged_against_pushable_images if {
	req := object.union(op("image.push", {"tag": ["v1"]}), {"vars": {"name": "registry.local/team/app"}})
	sockproxy.deny == {"image push of registry.local/team/app:v1 is not allowed: pushable_images are none"} with input as req
		with data.sockproxy.config.operations as judge("image.push")
	count(sockproxy.deny) == 0 with input as req
		with data.sockproxy.config.operations as judge("image.push")
		with data.sockproxy.config.pushable_images as ["registry.local/team/*"]
}

build(query) := op("image.build", query)

build_ok := {"networkmode": ["default"], "t": ["scratch/app:1"]}

build_settings := {"writable_images": ["scratch/*"]}

test_build_refused_by_default if {
	sockproxy.deny == {"operation image.build is refused by the policy (operations: deny)"} with input as build(build_ok)
}

test_build_judged if {
	count(sockproxy.deny) == 0 with input as build(build_ok)
		with data.sockproxy.config.operations as judge("image.build")
		with data.sockproxy.config.writable_images as ["scratch/*"]
}

test_build_host_network_refused if {
	sockproxy.deny == {`build networkmode host is not allowed: build.network_modes are , default, bridge, none`} with input as build(object.union(build_ok, {"networkmode": ["host"]}))
		with data.sockproxy.config.operations as judge("image.build")
		with data.sockproxy.config.writable_images as ["scratch/*"]
}

test_build_remote_refused if {
	sockproxy.deny == {"build from a remote context (remote=https://example.com/x.git) is not allowed: the daemon would fetch it"} with input as build(object.union(build_ok, {"remote": ["https://example.com/x.git"]}))
		with data.sockproxy.config.operations as judge("image.build")
		with data.sockproxy.config.writable_images as ["scratch/*"]
}

test_build_buildkit_refused if {
	d := sockproxy.deny with input as build(object.union(build_ok, {"version": ["2"]}))
		with data.sockproxy.config.operations as judge("image.build")
		with data.sockproxy.config.writable_images as ["scratch/*"]
	d == {"BuildKit builds (version=2) are not allowed: RUN options such as --network=host are invisible to the proxy; set build.allow_buildkit"}
}

test_build_tags_and_cgroup_judged if {
	d := sockproxy.deny with input as build(object.union(build_ok, {"t": ["scratch/app:1", "openhands/runtime:latest"], "cgroupparent": ["/"], "isolation": ["hyperv"]}))
		with data.sockproxy.config.operations as judge("image.build")
		with data.sockproxy.config.writable_images as ["scratch/*"]
	d == {
		"build would write the image reference openhands/runtime:latest: writable_images are scratch/*",
		"build cgroupparent / is not allowed",
		"build isolation hyperv is not allowed",
	}
}

test_commit_ref_judged if {
	req := object.union(op("container.commit", {"container": ["sandbox"], "repo": ["openhands/runtime"]}), {"commit": {"user": ""}})
	sockproxy.deny == {"container.commit would write the image reference openhands/runtime:latest: writable_images are none"} with input as req
		with data.sockproxy.config.operations as judge("container.commit")
}

# Settings that are null (an empty YAML value passes the data's
# validation): a boolean allows nothing, as false, and a null build
# section leaves the build rules in force.
test_import_refused_with_null_settings if {
	sockproxy.deny == {"image import (fromSrc=-) is not allowed: set allow_image_import"} with input as pull({"fromSrc": ["-"]})
		with data.sockproxy.config.allow_image_import as null
	sockproxy.deny == {"image import from a URL (fromSrc=http://x/y.tar) is not allowed: the daemon would fetch it; send the archive as the body (fromSrc=-)"} with input as pull({"fromSrc": ["http://x/y.tar"]})
		with data.sockproxy.config.allow_image_import as true
		with data.sockproxy.config.allow_image_import_url as null
}

test_build_refused_with_null_settings if {
	sockproxy.deny == {"build from a remote context (remote=https://example.com/x.git) is not allowed: the daemon would fetch it"} with input as build(object.union(build_ok, {"remote": ["https://example.com/x.git"]}))
		with data.sockproxy.config.operations as judge("image.build")
		with data.sockproxy.config.writable_images as ["scratch/*"]
		with data.sockproxy.config.build.allow_remote as null
	sockproxy.deny == {"BuildKit builds (version=2) are not allowed: RUN options such as --network=host are invisible to the proxy; set build.allow_buildkit"} with input as build(object.union(build_ok, {"version": ["2"]}))
		with data.sockproxy.config.operations as judge("image.build")
		with data.sockproxy.config.writable_images as ["scratch/*"]
		with data.sockproxy.config.build.allow_buildkit as null
	sockproxy.deny == {
		"build networkmode host is not allowed: build.network_modes are none",
		"build from a remote context (remote=https://example.com/x.git) is not allowed: the daemon would fetch it",
	} with input as build(object.union(build_ok, {"networkmode": ["host"], "remote": ["https://example.com/x.git"]}))
		with data.sockproxy.config.operations as judge("image.build")
		with data.sockproxy.config.writable_images as ["scratch/*"]
		with data.sockproxy.config.build as null
}

# A push whose path variable is missing (facts built without the route's
# vars) is still judged, by the empty name: an undefined push_ref would
# leave the refusal undefined.
test_push_without_name_refused if {
	sockproxy.deny == {"image push of :latest is not allowed: pushable_images are none"} with input as op("image.push", {})
		with data.sockproxy.config.operations as judge("image.push")
}
