# Image reference parsing, as dockerd (distribution/reference) reads a
# reference: the first path component is a registry host when it contains
# "." or ":" or is "localhost"; otherwise the image is on docker.io.
package examples.security.registry

# allowed: data.security.allowed_registries, none when it is missing or not
# a list (a misspelt key, an empty YAML value): `not host in` an undefined
# list would allow every registry.
allowed := r if {
	r := data.security.allowed_registries
	is_array(r)
} else := []

# registry(ref): the host a reference is pulled from.
registry(ref) := host if {
	parts := split(ref, "/")
	count(parts) > 1
	is_host(parts[0])
	host := lower(parts[0])
} else := "docker.io"

is_host(c) if contains(c, ".")

is_host(c) if contains(c, ":")

is_host("localhost")

# by_id(ref): the reference names an image by its ID ("sha256:<hex>", or a
# hex ID or prefix), which says nothing about where the image came from.
by_id(ref) if startswith(ref, "sha256:")

by_id(ref) if regex.match(`^[a-f0-9]{12,64}$`, ref)
