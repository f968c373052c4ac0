package sockproxy.lib.mounts_test

import data.sockproxy.fixtures as f

mount(i, m) := f.set(sprintf("/container/mounts/%d", [i]), m)

bind_ro(host, target) := f.bind(host, target, true)

bind_rw(host, target) := f.bind(host, target, false)

test_bind_outside_roots_refused if {
	f.deny(mount(0, bind_rw("/etc", "/host"))) == {"mount /etc:/host is not under an allowed root"}
}

test_root_is_segment_aware if {
	f.deny(mount(0, bind_rw("/home/alice/projects2", "/w"))) == {"mount /home/alice/projects2:/w is not under an allowed root"}
	count(f.deny(mount(0, bind_rw("/home/alice/projects/sub/dir", "/w")))) == 0
}

test_rw_under_ro_root_refused if {
	f.deny(mount(1, bind_rw("/home/alice/datasets/big", "/data"))) == {"mount /home/alice/datasets/big:/data is rw but /home/alice/datasets allows only ro"}
}

test_deepest_root_decides if {
	roots := array.concat(f.roots, [{"path": "/home/alice/projects/.ssh", "modes": []}])
	d := f.deny_with_roots(mount(0, bind_ro("/home/alice/projects/.ssh", "/k")), roots)
	d == {"mount /home/alice/projects/.ssh:/k is ro but /home/alice/projects/.ssh allows only none"}
}

test_root_slash_covers_everything if {
	count(f.deny_with_roots(mount(0, bind_rw("/etc", "/host")), [{"path": "/", "modes": ["ro", "rw"]}])) == 0
}

test_symlink_judged_by_real_path if {
	m := object.union(bind_rw("/home/alice/projects/link", "/w"), {"real_path": "/etc", "path_differs": true})
	f.deny(mount(0, m)) == {"mount /home/alice/projects/link:/w is not under an allowed root (it resolves to /etc)"}
	"mount /home/alice/projects/link:/w goes through a symlink: judged by its real path /etc" in f.warn(mount(0, m))
}

test_missing_path_refused if {
	m := object.union(bind_rw("/home/alice/projects/new", "/w"), {"real_path": "", "path_status": "missing"})
	f.deny(mount(0, m)) == {"mount /home/alice/projects/new:/w: host path does not exist (dockerd would create it as root): refused because its real path cannot be judged"}
}

test_unresolvable_path_refused if {
	m := object.union(bind_rw("/home/alice/projects", "/w"), {"real_path": "", "path_status": "unresolvable"})
	f.deny(mount(0, m)) == {"mount /home/alice/projects:/w: host path cannot be resolved by the proxy: refused because its real path cannot be judged"}
}

test_unresolved_allowed_by_config_judged_by_host_path if {
	ok := object.union(bind_rw("/home/alice/projects/new", "/w"), {"real_path": "", "path_status": "missing"})
	count(f.deny(mount(0, ok))) == 0 with data.sockproxy.config.allow_unresolved_paths as true
	bad := object.union(bind_rw("/etc/new", "/w"), {"real_path": "", "path_status": "missing"})
	f.deny(mount(0, bad)) == {"mount /etc/new:/w is not under an allowed root"} with data.sockproxy.config.allow_unresolved_paths as true
}

test_nonrecursive_ro_warned if {
	"mount /home/alice/datasets:/data is read-only but not recursively: mounts below it stay writable" in f.warn([])
	m := object.union(bind_ro("/home/alice/datasets", "/data"), {"read_only_recursive": true})
	count(f.warn(mount(1, m))) == 0
}

test_volume_host_bind_judged_by_roots if {
	m := object.union(f.volume("sneaky", "/host", "local", {"type": "none", "o": "bind", "device": "/etc"}), {"host_bind": true, "host_path": "/etc", "real_path": "/etc", "path_status": "resolved"})
	f.deny(mount(0, m)) == {"mount volume sneaky:/host (host path /etc) is not under an allowed root"}
}

test_overlay_lowerdir_volume_judged_by_roots if {
	m := object.union(f.volume("", "/overlay", "local", {"type": "overlay", "o": "lowerdir=/srv/secret"}), {"host_bind": true, "host_path": "/srv/secret", "real_path": "/srv/secret", "path_status": "resolved"})
	f.deny(mount(0, m)) == {"mount volume (anonymous):/overlay (host path /srv/secret) is not under an allowed root"}
}

test_named_volume_allowed if {
	count(f.deny(mount(0, f.volume("cache", "/cache", "", {})))) == 0
	count(f.deny(mount(0, f.volume("cache", "/cache", "local", {})))) == 0
}

test_tmpfs_volume_options_allowed if {
	count(f.deny(mount(0, f.volume("scratch", "/s", "local", {"type": "tmpfs", "device": "tmpfs", "o": "size=100m"})))) == 0
}

test_device_volume_refused if {
	m := f.volume("disk", "/d", "local", {"type": "ext4", "device": "/dev/sda1"})
	f.deny(mount(0, m)) == {"volume disk: local driver option device=/dev/sda1 mounts a host device or network share"}
}

test_nfs_volume_refused if {
	m := f.volume("share", "/d", "local", {"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export"})
	f.deny(mount(0, m)) == {"volume share: local driver option device=:/export mounts a host device or network share"}
}

test_unflagged_bind_options_refused if {
	m := f.volume("odd", "/d", "local", {"o": "rbind,ro"})
	f.deny(mount(0, m)) == {"volume odd: local driver option o=rbind,ro reaches a host path"}
}

test_volume_driver_outside_list_refused if {
	m := f.volume("remote", "/r", "rexray", {})
	f.deny(mount(0, m)) == {"volume remote uses driver rexray: only local and volume_drivers (none) allowed"}
	count(f.deny(mount(0, m))) == 0 with data.sockproxy.config.volume_drivers as ["rexray"]
}

test_tmpfs_allowed if {
	m := object.union(f.volume("", "/tmp", "", {}), {"type": "tmpfs", "volume_found": false})
	count(f.deny(mount(0, m))) == 0
}

test_other_mount_types_refused if {
	m := object.union(f.volume("", "/pipe", "", {}), {"type": "npipe"})
	f.deny(mount(0, m)) == {"mount type npipe (target /pipe) is not allowed: allowed_mount_types are bind, volume, tmpfs"}
}

test_volumes_from_refused_by_default if {
	patch := f.add("/body/HostConfig/VolumesFrom", ["other:ro"])
	f.deny(patch) == {"volumes_from other:ro is not allowed: it copies every mount of that container"}
}

test_volumes_from_facts_refused if {
	m := object.union(bind_rw("/home/alice/projects", "/w"), {"origin": "volumes_from", "from_container": "other"})
	f.deny(mount(0, m)) == {"volumes_from other is not allowed: it copies every mount of that container"}
}

test_volumes_from_judged_mount_by_mount if {
	inside := object.union(bind_rw("/home/alice/projects", "/w"), {"origin": "volumes_from", "from_container": "other"})
	outside := object.union(bind_rw("/etc", "/etc2"), {"origin": "volumes_from", "from_container": "other"})
	patch := array.concat(f.add("/body/HostConfig/VolumesFrom", ["other"]), mount(0, inside))
	count(f.deny(patch)) == 0 with data.sockproxy.config.volumes_from as "judge"
	f.deny(array.concat(patch, mount(1, outside))) == {"mount /etc:/etc2 is not under an allowed root"} with data.sockproxy.config.volumes_from as "judge"
}

# The deepest root decides whatever the order of mount_roots (the library
# sorts them deepest first once per decision).
test_deepest_root_decides_in_any_order if {
	ssh := {"path": "/home/alice/projects/.ssh", "modes": []}
	every roots in [array.concat([ssh], f.roots), array.concat(f.roots, [ssh])] {
		f.deny_with_roots(mount(0, bind_ro("/home/alice/projects/.ssh/id", "/k")), roots) == {"mount /home/alice/projects/.ssh/id:/k is ro but /home/alice/projects/.ssh allows only none"}
		count(f.deny_with_roots(mount(0, bind_rw("/home/alice/projects/src", "/w")), roots)) == 0
	}
	every roots in [[{"path": "/", "modes": ["ro"]}, {"path": "/srv", "modes": ["rw"]}], [{"path": "/srv", "modes": ["rw"]}, {"path": "/", "modes": ["ro"]}]] {
		count(f.deny_with_roots(mount(0, bind_rw("/srv/data", "/d")), roots)) == 0
		f.deny_with_roots(mount(0, bind_rw("/etc", "/e")), roots) == {"mount /etc:/e is rw but / allows only ro"}
	}
}

# allow_unresolved_paths null (an empty YAML value) allows nothing, as false.
test_unresolvable_path_refused_with_null_setting if {
	m := object.union(bind_rw("/home/alice/projects", "/w"), {"real_path": "", "path_status": "unresolvable"})
	f.deny(mount(0, m)) == {"mount /home/alice/projects:/w: host path cannot be resolved by the proxy: refused because its real path cannot be judged"} with data.sockproxy.config.allow_unresolved_paths as null
}

# A volumes_from mount whose container the facts omit (omitempty) is still
# refused: its message must not depend on the name.
test_volumes_from_facts_without_container_refused if {
	m := object.union(bind_rw("/home/alice/projects", "/w"), {"origin": "volumes_from"})
	f.deny(mount(0, m)) == {"volumes_from (unnamed) is not allowed: it copies every mount of that container"}
}
