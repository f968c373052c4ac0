# Rules for volume.create: a local-driver volume can bind a host path,
# mount a host device or a network share, and be used later by name; other
# drivers run with the daemon's privileges.
package sockproxy.lib.volume

# The settings in force for this caller (base settings with the caller's
# profile merged over them), computed once per decision by the profile
# package: imported, not copied into a rule here, which every decision
# would evaluate again.
import data.sockproxy.lib.profile.settings

import data.sockproxy.lib.util

v := input.volume

deny contains "volume.create without normalized facts (input.volume): refused" if {
	not input.volume
}

deny contains msg if {
	v.driver != "local"
	not v.driver in settings.volume_drivers
	msg := sprintf("volume driver %s is not allowed: only local and volume_drivers (%s)", [v.driver, util.list_text(settings.volume_drivers)])
}

deny contains "cluster volumes (ClusterVolumeSpec) are not allowed: they are swarm's" if v.cluster

kind_text := {
	"bind": "binds a host path",
	"overlay": "overlays host paths",
	"network": "mounts a network share",
	"device": "mounts a host device",
	"tmpfs": "is a tmpfs",
}

deny contains msg if {
	v.driver == "local"
	v.local_mount != ""
	not v.local_mount in settings.allowed_local_volume_kinds
	what := object.get(kind_text, v.local_mount, concat("", ["is of kind ", v.local_mount])) # a kind the table misses still refuses
	msg := sprintf("volume %s: local driver options %s %s: allowed_local_volume_kinds are %s", [name, options_text, what, util.list_text(settings.allowed_local_volume_kinds)])
}

# Where binds are allowed, each host path they expose is still confined to
# mount_roots (by its cleaned path; its use by a container is judged by the
# real path at create).
deny contains msg if {
	v.driver == "local"
	v.local_mount in {"bind", "overlay"}
	v.local_mount in settings.allowed_local_volume_kinds
	some p in v.host_paths
	not under_root(p)
	msg := sprintf("volume %s: host path %s is not under an allowed root", [name, p])
}

# Options of the network kind may hide in o= for any type (addr=).
deny contains msg if {
	v.driver == "local"
	some opt in split(object.get(v.options, "o", ""), ",")
	startswith(opt, "addr=")
	not "network" in settings.allowed_local_volume_kinds
	msg := sprintf("volume %s: local driver option %s names a network server (addr=): not allowed", [name, util.option_text("o", v.options.o)])
}

under_root(p) if {
	some r in settings.mount_roots
	startswith(concat("", [p, "/"]), concat("", [trim_suffix(r.path, "/"), "/"]))
}

name := v.name if v.name != ""

else := "(anonymous)"

options_text := concat(",", sort([util.option_text(k, val) | some k, val in v.options]))
