package sockproxy.lib.volume_test

import data.sockproxy
import data.sockproxy.fixtures as f

vol(facts) := object.union(f.request("volume.create"), {"method": "POST", "volume": object.union(plain, facts)})

plain := {"name": "cache", "driver": "local", "options": {}, "labels": {}, "local_mount": "", "host_paths": [], "cluster": false}

test_plain_volume_allowed if {
	count(sockproxy.deny) == 0 with input as vol({})
	count(sockproxy.deny) == 0 with input as vol({"options": {"type": "tmpfs", "device": "tmpfs", "o": "size=64m"}, "local_mount": "tmpfs"})
}

test_bind_volume_refused if {
	sockproxy.deny == {"volume cache: local driver options device=/etc,o=bind,type=none binds a host path: allowed_local_volume_kinds are tmpfs"} with input as vol({"options": {"type": "none", "o": "bind", "device": "/etc"}, "local_mount": "bind", "host_paths": ["/etc"]})
}

test_bind_volume_under_roots_when_allowed if {
	req := vol({"options": {"type": "none", "o": "bind", "device": "/home/alice/projects/x"}, "local_mount": "bind", "host_paths": ["/home/alice/projects/x"]})
	count(sockproxy.deny) == 0 with input as req
		with data.sockproxy.config.allowed_local_volume_kinds as ["bind"]
		with data.sockproxy.config.mount_roots as f.roots
	sockproxy.deny == {"volume cache: host path /etc is not under an allowed root"} with input as vol({"options": {"o": "bind", "device": "/etc"}, "local_mount": "bind", "host_paths": ["/etc"]})
		with data.sockproxy.config.allowed_local_volume_kinds as ["bind"]
		with data.sockproxy.config.mount_roots as f.roots
}

test_network_share_refused if {
	sockproxy.deny == {
		"volume cache: local driver options device=:/export,o=addr=10.0.0.1,type=nfs mounts a network share: allowed_local_volume_kinds are tmpfs",
		"volume cache: local driver option o=addr=10.0.0.1 names a network server (addr=): not allowed",
	} with input as vol({"options": {"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export"}, "local_mount": "network"})
}

test_device_refused if {
	sockproxy.deny == {"volume cache: local driver options device=/dev/sda1,type=ext4 mounts a host device: allowed_local_volume_kinds are tmpfs"} with input as vol({"options": {"type": "ext4", "device": "/dev/sda1"}, "local_mount": "device", "host_paths": ["/dev/sda1"]})
}

test_overlay_refused if {
	sockproxy.deny == {"volume cache: local driver options o=lowerdir=/etc,type=overlay overlays host paths: allowed_local_volume_kinds are tmpfs"} with input as vol({"options": {"type": "overlay", "o": "lowerdir=/etc"}, "local_mount": "overlay", "host_paths": ["/etc"]})
}

test_driver_allowlist if {
	sockproxy.deny == {"volume driver rexray is not allowed: only local and volume_drivers (none)"} with input as vol({"driver": "rexray"})
	count(sockproxy.deny) == 0 with input as vol({"driver": "rexray"}) with data.sockproxy.config.volume_drivers as ["rexray"]
}

test_cluster_volume_refused if {
	sockproxy.deny == {"cluster volumes (ClusterVolumeSpec) are not allowed: they are swarm's"} with input as vol({"cluster": true})
}

test_without_facts_refused if {
	sockproxy.deny == {"volume.create without normalized facts (input.volume): refused"} with input as f.request("volume.create")
}

# Refusals reach the client, the audit log and decision logs: credentials in
# options never appear in them.
test_network_share_credentials_redacted if {
	sockproxy.deny == {
		"volume cache: local driver options device=//srv/share,o=addr=10.0.0.1,username=bob,password=<redacted>,password=<redacted>,type=cifs mounts a network share: allowed_local_volume_kinds are tmpfs",
		"volume cache: local driver option o=addr=10.0.0.1,username=bob,password=<redacted> names a network server (addr=): not allowed",
	} with input as vol({"options": {"type": "cifs", "o": "addr=10.0.0.1,username=bob,password=hunter2", "device": "//srv/share", "password": "hunter2"}, "local_mount": "network"})
}

# A local_mount kind the message table does not name is still refused: an
# undefined kind_text entry would leave the message, and so the refusal,
# undefined.
test_unknown_local_kind_refused if {
	sockproxy.deny == {"volume cache: local driver options type=zfs is of kind zfs: allowed_local_volume_kinds are tmpfs"} with input as vol({"options": {"type": "zfs"}, "local_mount": "zfs"})
}
