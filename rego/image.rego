# Rules for the image operations that fetch, write or send images:
# image.create (pulls are allowed, subject to allowed_images; imports turn an
# arbitrary root filesystem into an image), image.tag and container.commit
# (which can re-point a reference other rules trust), image.push (sends an
# image out) and image.build (RUN steps never pass through container.create).
package sockproxy.lib.image

# The settings in force for this caller (base settings with the caller's
# profile merged over them), computed once per decision by the profile
# package: imported, not copied into a rule here, which every decision
# would evaluate again.
import data.sockproxy.lib.profile.settings

import data.sockproxy.lib.util

query := input.query if input.query

else := {}

# dockerd reads the first value of a repeated query key.
first(key) := query[key][0]

param(key) := object.get(query, [key, 0], "")

nonempty(key) if first(key) != ""

# --- image.create: pull (fromImage) or import (fromSrc)

deny contains msg if {
	input.operation == "image.create"
	src := first("fromSrc")
	src != ""
	not util.on("allow_image_import")
	msg := sprintf("image import (fromSrc=%s) is not allowed: set allow_image_import", [src])
}

# fromSrc other than "-" (the body) makes the daemon fetch a URL.
deny contains msg if {
	input.operation == "image.create"
	src := first("fromSrc")
	not src in {"", "-"}
	not util.on("allow_image_import_url")
	msg := sprintf("image import from a URL (fromSrc=%s) is not allowed: the daemon would fetch it; send the archive as the body (fromSrc=-)", [src])
}

deny contains msg if {
	input.operation == "image.create"
	nonempty("fromSrc")
	not nonempty("fromImage")
	nonempty("repo")
	ref := util.image_ref(param("repo"), param("tag"))
	not util.glob_any(settings.writable_images, ref)
	msg := sprintf("image import would write %s: writable_images are %s", [ref, util.list_text(settings.writable_images)])
}

deny contains "image.create without fromImage or fromSrc: refused" if {
	input.operation == "image.create"
	not nonempty("fromImage")
	not nonempty("fromSrc")
}

# The reference dockerd pulls: fromImage, with tag appended unless it is a
# digest or already carries one.
reference := ref if {
	image := first("fromImage")
	tag := object.get(query, ["tag", 0], "")
	ref := with_tag(image, tag)
}

with_tag(image, "") := image

with_tag(image, tag) := sprintf("%s@%s", [image, tag]) if startswith(tag, "sha256:")

with_tag(image, tag) := sprintf("%s:%s", [image, tag]) if {
	tag != ""
	not startswith(tag, "sha256:")
}

deny contains msg if {
	input.operation == "image.create"
	count(settings.allowed_images) > 0
	nonempty("fromImage")
	not allowed(reference)
	msg := sprintf("image %s is not allowed: allowed_images are %s", [reference, util.list_text(settings.allowed_images)])
}

allowed(ref) if {
	some pattern in settings.allowed_images
	glob.match(pattern, null, ref)
}

# --- image.tag and container.commit write a reference

deny contains msg if {
	input.operation in {"image.tag", "container.commit"}
	nonempty("repo")
	ref := util.image_ref(param("repo"), param("tag"))
	not util.glob_any(settings.writable_images, ref)
	msg := sprintf("%s would write the image reference %s: writable_images are %s", [input.operation, ref, util.list_text(settings.writable_images)])
}

deny contains "image.tag without repo: refused" if {
	input.operation == "image.tag"
	not nonempty("repo")
}

# --- image.push sends an image to a registry

# object.get: an undefined name would leave the refusal below undefined.
push_ref := util.image_ref(object.get(input.vars, "name", ""), param("tag"))

deny contains msg if {
	input.operation == "image.push"
	not util.glob_any(settings.pushable_images, push_ref)
	msg := sprintf("image push of %s is not allowed: pushable_images are %s", [push_ref, util.list_text(settings.pushable_images)])
}

# --- image.build (classic builder; the context is the body)

deny contains msg if {
	input.operation == "image.build"
	nonempty("remote")
	not util.on(["build", "allow_remote"])
	msg := sprintf("build from a remote context (remote=%s) is not allowed: the daemon would fetch it", [param("remote")])
}

deny contains msg if {
	input.operation == "image.build"
	mode := param("networkmode")
	not mode in network_modes
	msg := sprintf("build networkmode %s is not allowed: build.network_modes are %s", [mode, util.list_text(network_modes)])
}

# build.network_modes; none when build or the list is null (an empty YAML
# value passes the data's validation), where `not mode in` the undefined
# list would not refuse.
network_modes := m if {
	m := settings.build.network_modes
	is_array(m)
} else := []

# BuildKit (version=2) reads the Dockerfile through a session and honours
# RUN --network=host and other entitlements the proxy cannot see.
deny contains "BuildKit builds (version=2) are not allowed: RUN options such as --network=host are invisible to the proxy; set build.allow_buildkit" if {
	input.operation == "image.build"
	param("version") == "2"
	not util.on(["build", "allow_buildkit"])
}

deny contains msg if {
	input.operation == "image.build"
	cg := param("cgroupparent")
	cg != ""
	not cg in settings.allowed_cgroup_parents
	msg := sprintf("build cgroupparent %s is not allowed", [cg])
}

deny contains msg if {
	input.operation == "image.build"
	some t in object.get(query, "t", [])
	ref := util.image_ref(t, "")
	not util.glob_any(settings.writable_images, ref)
	msg := sprintf("build would write the image reference %s: writable_images are %s", [ref, util.list_text(settings.writable_images)])
}

deny contains msg if {
	input.operation == "image.build"
	param("isolation") != ""
	param("isolation") != "default"
	msg := sprintf("build isolation %s is not allowed", [param("isolation")])
}
