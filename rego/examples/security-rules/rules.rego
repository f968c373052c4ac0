# A security team's site rules (data in data.yaml, under security). Rules
# in package sockproxy add messages to the library's deny set: a request
# is refused when any rule, the library's or these, refuses it.
package sockproxy

import data.examples.security.registry

# --- labels

deny contains msg if {
	input.operation == "container.create"
	missing := [l |
		some l in data.security.required_labels
		object.get(input.container.labels, l, "") == ""
	]
	count(missing) > 0
	msg := sprintf("container labels %s are required (missing or empty: %s): add --label %s=...", [
		concat(", ", data.security.required_labels),
		concat(", ", sort(missing)),
		sort(missing)[0],
	])
}

# --- image registries: what containers are created from and what is pulled

deny contains msg if {
	input.operation == "container.create"
	msg := image_refusal(input.container.image)
}

deny contains msg if {
	input.operation == "image.create"
	ref := object.get(input.query, ["fromImage", 0], "")
	ref != ""
	msg := image_refusal(ref)
}

image_refusal(ref) := sprintf("image %s is named by its ID: name it by registry reference (%s)", [ref, concat(", ", registry.allowed)]) if {
	registry.by_id(ref)
} else := sprintf("image %s comes from %s: allowed registries are %s", [ref, host, concat(", ", registry.allowed)]) if {
	host := registry.registry(ref)
	not host in registry.allowed
}
