# Mount rules of container.create, over input.container.mounts (one entry per
# mount, whatever field asked for it: Binds, Mounts, VolumesFrom).
package sockproxy.lib.mounts

# The settings in force for this caller (base settings with the caller's
# profile merged over them), computed once per decision by the profile
# package: imported, not copied into a rule here, which every decision
# would evaluate again.
import data.sockproxy.lib.profile.settings

import data.sockproxy.lib.util

# Direct references to input (no object.get(input, ...)): the engine gives
# the policy only the parts of input.body some rule references. The rules
# below read input.container.mounts itself: mount_list is kept for modules
# that read it, and a rule would be one more evaluation per decision.
mount_list := input.container.mounts

# --- host paths: binds, and volumes that bind or overlay a host path

# host_mounts and volume_mounts split the mounts once per decision, so that
# each rule below walks only the mounts it judges instead of testing every
# mount again (each test is an evaluation on every create).
host_mounts := [m |
	some m in input.container.mounts
	m.host_bind
]

volume_mounts := [m |
	some m in input.container.mounts
	m.type == "volume"
]

deny contains msg if some msg in mount_deny

# mount_deny are the refusals of what input.container's mounts expose of the
# host: host paths against mount_roots, volume drivers, and local-driver
# options. Exec rules judge an existing container's mounts with it: every
# exec'd process reaches them.
mount_deny contains msg if {
	some m in host_mounts
	m.path_status != "resolved"
	not util.on("allow_unresolved_paths")
	msg := sprintf("mount %s: %s: refused because its real path cannot be judged", [label(m), status_text(m)])
}

# Each judgeable host mount with the roots containing the path it is judged
# by, deepest first (root_prefixes is sorted so). Path-segment aware: /data2
# is not under /data; every path is under /. (Written inline rather than as
# a function: a call per mount costs more than the comprehension.)
checks := [{"mount": m, "roots": [root.root |
	some root in root_prefixes
	startswith(dir, root.prefix)
]} |
	some m in host_mounts
	dir := concat("", [judged_path(m), "/"])
]

# A resolved path is judged by where its symlinks really lead; an unresolved
# one (only with allow_unresolved_paths) by its cleaned path.
judged_path(m) := m.real_path if {
	m.path_status == "resolved"
} else := m.host_path if {
	util.on("allow_unresolved_paths")
}

# Each root with its path as a directory prefix ("/data/"; "/" for /),
# computed once per decision, deepest (longest path) first: objects sort by
# their values in key order, depth first. Paths are cleaned and unique, so
# the roots containing a path have different depths.
root_prefixes := sort([{"depth": 0 - count(r.path), "prefix": concat("", [trim_suffix(r.path, "/"), "/"]), "root": r} | some r in settings.mount_roots])

mount_deny contains msg if {
	some check in checks
	count(check.roots) == 0
	msg := sprintf("mount %s is not under an allowed root%s", [label(check.mount), via(check.mount)])
}

# The deepest root decides, so that a narrower root can restrict a wider one
# (/home/alice rw, /home/alice/.ssh with no modes): the first of the roots,
# which are deepest first (none: the rule above refuses).
mount_deny contains msg if {
	some check in checks
	root := check.roots[0]
	m := check.mount
	not mode(m) in root.modes
	msg := sprintf("mount %s is %s%s but %s allows only %s", [label(m), mode(m), via(m), root.path, util.list_text(root.modes)])
}

warn contains msg if {
	some m in host_mounts
	m.path_differs
	msg := sprintf("mount %s goes through a symlink: judged by its real path %s", [label(m), m.real_path])
}

warn contains msg if {
	some m in host_mounts
	m.read_only
	not m.read_only_recursive
	msg := sprintf("mount %s is read-only but not recursively: mounts below it stay writable", [label(m)])
}

mode(m) := "ro" if m.read_only

else := "rw"

label(m) := sprintf("%s:%s", [m.host_path, m.target]) if {
	m.type == "bind"
} else := sprintf("volume %s:%s (host path %s)", [volume_name(m), m.target, m.host_path])

via(m) := sprintf(" (it resolves to %s)", [m.real_path]) if m.path_differs

else := ""

status_text(m) := "host path does not exist (dockerd would create it as root)" if {
	m.path_status == "missing"
} else := "host path cannot be resolved by the proxy"

volume_name(m) := m.source if m.source != ""

else := "(anonymous)"

# --- volumes that are not host binds

# The volume rules are reached through one rule that a create without
# volumes passes with one test, instead of entering each of them.
mount_deny contains msg if {
	count(volume_mounts) > 0
	some msg in volume_deny
}

driver(m) := "local" if m.driver in {"", "local"}

else := m.driver

volume_deny contains msg if {
	some m in volume_mounts
	driver(m) != "local"
	not driver(m) in settings.volume_drivers
	msg := sprintf("volume %s uses driver %s: only local and volume_drivers (%s) allowed", [volume_name(m), driver(m), util.list_text(settings.volume_drivers)])
}

# Local-driver options that mount a device or a network share. tmpfs volumes
# (type=tmpfs device=tmpfs) are fine.
volume_deny contains msg if {
	some m in volume_mounts
	not m.host_bind
	driver(m) == "local"
	device := m.driver_options.device
	object.get(m.driver_options, "type", "") != "tmpfs"
	msg := sprintf("volume %s: local driver option device=%s mounts a host device or network share", [volume_name(m), device])
}

# Options that bind or overlay a host path but were not flagged as a host bind
# (the normalizer could not tell its host path): refused rather than guessed.
volume_deny contains msg if {
	some m in volume_mounts
	not m.host_bind
	driver(m) == "local"
	some opt in split(object.get(m.driver_options, "o", ""), ",")
	some risky in {"bind", "rbind", "lowerdir=", "upperdir=", "workdir="}
	startswith(opt, risky)
	msg := sprintf("volume %s: local driver option o=%s reaches a host path", [volume_name(m), m.driver_options.o])
}

# --- mount types

deny contains msg if {
	some m in input.container.mounts
	not m.type in settings.allowed_mount_types
	msg := sprintf("mount type %s (target %s) is not allowed: allowed_mount_types are %s", [m.type, m.target, util.list_text(settings.allowed_mount_types)])
}

# --- volumes_from copies every mount of another container, host binds included

volumes_from := v if {
	v := input.body.HostConfig.VolumesFrom
	v != null
} else := []

deny contains msg if {
	some ref in volumes_from
	settings.volumes_from != "judge"
	msg := sprintf("volumes_from %s is not allowed: it copies every mount of that container", [ref])
}

# The normalizer's volumes_from entries, for a body that names none (defence
# in depth: the facts are what dockerd will mount).
# The mounts are walked inside one expression, the rare value first.
deny contains msg if {
	some i
	input.container.mounts[i].origin == "volumes_from"
	settings.volumes_from != "judge"
	count(volumes_from) == 0
	m := input.container.mounts[i]
	msg := sprintf("volumes_from %s is not allowed: it copies every mount of that container", [object.get(m, "from_container", "(unnamed)")]) # omitted when empty
}
