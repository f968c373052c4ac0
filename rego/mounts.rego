# Mount rules of container.create, over input.container.mounts (one entry per
# mount, whatever field asked for it: Binds, Mounts, VolumesFrom).
package sockproxy.lib.mounts

# The settings in force for this caller (base settings with the caller's
# profile merged over them), read once per decision.
settings := data.sockproxy.lib.profile.settings

import data.sockproxy.lib.util

# Direct references to input (no object.get(input, ...)): the engine gives
# the policy only the parts of input.body some rule references.
mount_list := input.container.mounts

# --- host paths: binds, and volumes that bind or overlay a host path

deny contains msg if some msg in mount_deny

# mount_deny are the refusals of what input.container's mounts expose of the
# host: host paths against mount_roots, volume drivers, and local-driver
# options. Exec rules judge an existing container's mounts with it: every
# exec'd process reaches them.
mount_deny contains msg if {
	some m in mount_list
	m.host_bind
	m.path_status != "resolved"
	not settings.allow_unresolved_paths
	msg := sprintf("mount %s: %s: refused because its real path cannot be judged", [label(m), status_text(m)])
}

# Each judgeable host mount with the roots containing the path it is judged
# by.
checks := [check |
	some m in mount_list
	m.host_bind
	check := judge(m)
]

# A resolved path is judged by where its symlinks really lead; an unresolved
# one (only with allow_unresolved_paths) by its cleaned path.
judge(m) := {"mount": m, "roots": roots_containing(m.real_path)} if {
	m.path_status == "resolved"
} else := {"mount": m, "roots": roots_containing(m.host_path)} if {
	settings.allow_unresolved_paths
}

# Path-segment aware: /data2 is not under /data; every path is under /.
roots_containing(p) := [root.root |
	dir := concat("", [p, "/"])
	some root in root_prefixes
	startswith(dir, root.prefix)
]

# Each root with its path as a directory prefix ("/data/"; "/" for /),
# computed once per decision.
root_prefixes := [{"root": r, "prefix": concat("", [trim_suffix(r.path, "/"), "/"])} | some r in settings.mount_roots]

mount_deny contains msg if {
	some check in checks
	count(check.roots) == 0
	msg := sprintf("mount %s is not under an allowed root%s", [label(check.mount), via(check.mount)])
}

# The deepest root decides, so that a narrower root can restrict a wider one
# (/home/alice rw, /home/alice/.ssh with no modes).
mount_deny contains msg if {
	some check in checks
	count(check.roots) > 0
	root := deepest(check.roots)
	m := check.mount
	not mode(m) in root.modes
	msg := sprintf("mount %s is %s%s but %s allows only %s", [label(m), mode(m), via(m), root.path, util.list_text(root.modes)])
}

warn contains msg if {
	some m in mount_list
	m.host_bind
	m.path_differs
	msg := sprintf("mount %s goes through a symlink: judged by its real path %s", [label(m), m.real_path])
}

warn contains msg if {
	some m in mount_list
	m.host_bind
	m.read_only
	not m.read_only_recursive
	msg := sprintf("mount %s is read-only but not recursively: mounts below it stay writable", [label(m)])
}

deepest(roots) := roots[0] if {
	count(roots) == 1
} else := root if {
	longest := max([count(r.path) | some r in roots])
	some root in roots
	count(root.path) == longest
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

driver(m) := "local" if m.driver in {"", "local"}

else := m.driver

mount_deny contains msg if {
	some m in mount_list
	m.type == "volume"
	driver(m) != "local"
	not driver(m) in settings.volume_drivers
	msg := sprintf("volume %s uses driver %s: only local and volume_drivers (%s) allowed", [volume_name(m), driver(m), util.list_text(settings.volume_drivers)])
}

# Local-driver options that mount a device or a network share. tmpfs volumes
# (type=tmpfs device=tmpfs) are fine.
mount_deny contains msg if {
	some m in mount_list
	m.type == "volume"
	not m.host_bind
	driver(m) == "local"
	device := m.driver_options.device
	object.get(m.driver_options, "type", "") != "tmpfs"
	msg := sprintf("volume %s: local driver option device=%s mounts a host device or network share", [volume_name(m), device])
}

# Options that bind or overlay a host path but were not flagged as a host bind
# (the normalizer could not tell its host path): refused rather than guessed.
mount_deny contains msg if {
	some m in mount_list
	m.type == "volume"
	not m.host_bind
	driver(m) == "local"
	some opt in split(object.get(m.driver_options, "o", ""), ",")
	some risky in {"bind", "rbind", "lowerdir=", "upperdir=", "workdir="}
	startswith(opt, risky)
	msg := sprintf("volume %s: local driver option o=%s reaches a host path", [volume_name(m), m.driver_options.o])
}

# --- mount types

deny contains msg if {
	some m in mount_list
	not m.type in settings.allowed_mount_types
	msg := sprintf("mount type %s (target %s) is not allowed: allowed_mount_types are %s", [m.type, m.target, util.list_text(settings.allowed_mount_types)])
}

# --- volumes_from copies every mount of another container, host binds included

volumes_from := v if {
	v := input.body.HostConfig.VolumesFrom
	v != null
} else := []

deny contains msg if {
	settings.volumes_from != "judge"
	some ref in volumes_from
	msg := sprintf("volumes_from %s is not allowed: it copies every mount of that container", [ref])
}

# The normalizer's volumes_from entries, for a body that names none (defence
# in depth: the facts are what dockerd will mount).
deny contains msg if {
	settings.volumes_from != "judge"
	count(volumes_from) == 0
	some m in mount_list
	m.origin == "volumes_from"
	msg := sprintf("volumes_from %s is not allowed: it copies every mount of that container", [m.from_container])
}
