package sockproxy.lib.create_test

import data.sockproxy.fixtures as f

priv(key, value) := f.set(sprintf("/container/privileges/%s", [key]), value)

user(u) := f.set("/container/user", object.union(f.user_1000, u))

# --- image

test_image_allowlist if {
	count(f.deny([])) == 0 with data.sockproxy.config.allowed_images as ["docker.openhands.dev/openhands/runtime:*"]
	f.deny([]) == {"image docker.openhands.dev/openhands/runtime:0.62-nikolaik is not allowed: allowed_images are busybox:*"} with data.sockproxy.config.allowed_images as ["busybox:*"]
}

test_image_glob_crosses_slashes if {
	count(f.deny([])) == 0 with data.sockproxy.config.allowed_images as ["docker.openhands.dev/*"]
}

# --- user

test_root_user_refused if {
	f.deny(user({"raw": "0:0", "value": "0:0", "uid": 0, "gid": 0, "root": true})) == {"user 0:0 (uid 0) not allowed: set User to a non-root uid"}
}

test_image_default_root_refused if {
	f.deny(user({"raw": "", "source": "image", "value": "", "uid": 0, "gid": 0, "root": true})) == {"user root (uid 0, the image's default) not allowed: set User to a non-root uid"}
}

test_root_allowed_when_not_required if {
	count(f.deny(user({"raw": "root", "value": "root", "uid": 0, "gid": 0, "root": true}))) == 0 with data.sockproxy.config.require_non_root as false
}

test_unresolved_user_refused if {
	u := user({"raw": "alice", "value": "alice", "uid": -1, "gid": -1, "resolved": false})
	f.deny(u) == {`user "alice" cannot be resolved to a uid: set User to a numeric uid[:gid]`}
	count(f.deny(u)) == 0 with data.sockproxy.config.allow_unresolved_users as true
}

test_allowed_uids if {
	count(f.deny([])) == 0 with data.sockproxy.config.allowed_uids as [1000, 1001]
	f.deny([]) == {"user 1000:1000 (uid 1000) is not in allowed_uids: 2000"} with data.sockproxy.config.allowed_uids as [2000]
}

test_allowed_gids if {
	count(f.deny([])) == 0 with data.sockproxy.config.allowed_gids as [1000]
	f.deny(user({"raw": "1000", "value": "1000", "gid": -1})) == {"user 1000 (gid -1) is not in allowed_gids: 1000"} with data.sockproxy.config.allowed_gids as [1000]
}

# --- ports

test_port_on_all_interfaces_refused if {
	f.deny(f.set("/container/ports/0", f.port("30412", "0.0.0.0"))) == {"port 30412/tcp binds 0.0.0.0: only 127.0.0.1, ::1 allowed"}
	f.deny(f.set("/container/ports/0", f.port("30412", ""))) == {"port 30412/tcp binds all interfaces (empty HostIp): only 127.0.0.1, ::1 allowed"}
	f.deny(f.set("/container/ports/0", f.port("30412", "::"))) == {"port 30412/tcp binds ::: only 127.0.0.1, ::1 allowed"}
}

test_port_on_other_address_refused if {
	f.deny(f.set("/container/ports/0", f.port("30412", "192.168.1.5"))) == {"port 30412/tcp binds 192.168.1.5: only 127.0.0.1, ::1 allowed"}
}

test_port_ipv6_loopback_spellings_allowed if {
	count(f.deny(f.set("/container/ports/0", f.port("30412", "::1")))) == 0
	count(f.deny(f.set("/container/ports/0", f.port("30412", "0:0:0:0:0:0:0:1")))) == 0
}

test_port_cidr_allowlist if {
	count(f.deny(f.set("/container/ports/0", f.port("30412", "127.0.0.2")))) == 0 with data.sockproxy.config.allowed_host_ips as ["127.0.0.0/8"]
}

test_all_interfaces_allowed_only_when_listed if {
	count(f.deny(f.set("/container/ports/0", f.port("30412", "")))) == 0 with data.sockproxy.config.allowed_host_ips as ["0.0.0.0", "127.0.0.1"]
}

test_publish_all_refused if {
	f.deny(f.set("/container/publish_all", true)) == {"publish_all (-P) is not allowed: it publishes every exposed port on all interfaces"}
	count(f.deny(f.set("/container/publish_all", true))) == 0 with data.sockproxy.config.allow_publish_all as true
}

# --- networks

net(n) := f.set("/container/networks/0", n)

test_named_network if {
	n := {"ref": "openhands-network", "mode": "named", "name": "openhands-network", "id": "0123abcd", "found": true}
	f.deny(net(n)) == {"network openhands-network is not allowed: only default, bridge, none allowed"}
	count(f.deny(net(n))) == 0 with data.sockproxy.config.allowed_networks as ["openhands-network"]
}

test_network_by_id_prefix_judged_by_name if {
	n := {"ref": "0123", "mode": "named", "name": "prod-net", "id": "0123abcd", "found": true}
	f.deny(net(n)) == {"network 0123 (prod-net) is not allowed: only openhands-network allowed"} with data.sockproxy.config.allowed_networks as ["openhands-network"]
	count(f.deny(net(n))) == 0 with data.sockproxy.config.allowed_networks as ["0123abcd"]
}

test_missing_network_refused if {
	n := {"ref": "ghost", "mode": "named", "name": "", "id": "", "found": false}
	f.deny(net(n)) == {"network ghost does not exist on the daemon: only ghost allowed"} with data.sockproxy.config.allowed_networks as ["ghost"]
}

test_default_network_needs_listing if {
	f.deny([]) == {"network default (bridge) is not allowed: only openhands-network allowed"} with data.sockproxy.config.allowed_networks as ["openhands-network"]
	count(f.deny([])) == 0 with data.sockproxy.config.allowed_networks as ["bridge"]
}

test_none_network_allowed if {
	count(f.deny(net({"ref": "none", "mode": "none", "name": "none", "id": "", "found": true}))) == 0 with data.sockproxy.config.allowed_networks as []
}

test_host_network_refused if {
	n := {"ref": "host", "mode": "host", "name": "host", "id": "", "found": true}
	f.deny(net(n)) == {"network host is not allowed: it shares the host's network namespace"}
	count(f.deny(net(n))) == 0 with data.sockproxy.config.allowed_networks as ["host"]
}

test_host_network_by_other_names_refused if {
	n := {"ref": "7c2764b2f0f6", "mode": "named", "name": "host", "id": "7c2764b2f0f6aa", "found": true, "driver": "host"}
	p := array.concat(net(n), f.set("/container/namespaces/network", {"mode": "7c2764b2f0f6", "host": true, "container": ""}))
	f.deny(p) == {
		"network 7c2764b2f0f6 (host) is not allowed: only default, bridge, none allowed",
		"network host is not allowed: it shares the host's network namespace",
	}
	count(f.deny(p)) == 0 with data.sockproxy.config.allowed_networks as ["host"]
}

test_container_network_on_host_refused if {
	n := {"ref": "container:db", "mode": "container", "name": "", "id": "", "found": true, "container": "db"}
	p := array.concat(net(n), f.set("/container/namespaces/network", {"mode": "container:db", "host": true, "container": "db"}))
	f.deny(p) == {"network host is not allowed: it shares the host's network namespace"} with data.sockproxy.config.allowed_networks as ["container:*"]
}

test_container_network_refused if {
	n := {"ref": "container:db", "mode": "container", "name": "", "id": "", "found": true, "container": "db"}
	f.deny(net(n)) == {"network container:db is not allowed: it joins another container's network namespace"}
	count(f.deny(net(n))) == 0 with data.sockproxy.config.allowed_networks as ["container:db"]
	count(f.deny(net(n))) == 0 with data.sockproxy.config.allowed_networks as ["container:*"]
}

# --- namespaces

ns(kind, n) := f.set(sprintf("/container/namespaces/%s", [kind]), n)

test_host_namespaces_refused if {
	every kind in ["pid", "ipc", "uts", "userns", "cgroupns"] {
		f.deny(ns(kind, {"mode": "host", "host": true, "container": ""})) == {sprintf("%s namespace host is not allowed: it shares the host's %s namespace", [kind, kind])}
	}
	count(f.deny(ns("pid", {"mode": "host", "host": true, "container": ""}))) == 0 with data.sockproxy.config.allowed_host_namespaces as ["pid"]
}

test_container_namespaces_refused if {
	f.deny(ns("pid", {"mode": "container:db", "host": false, "container": "db"})) == {"pid namespace container:db is not allowed: it joins another container's namespace"}
	count(f.deny(ns("ipc", {"mode": "container:db", "host": false, "container": "db"}))) == 0 with data.sockproxy.config.allowed_container_namespaces as ["ipc"]
}

test_default_host_cgroupns_warned if {
	p := array.concat(ns("cgroupns", {"mode": "host", "host": false, "default": true, "container": ""}), f.set("/api_version", "1.40"))
	count(f.deny(p)) == 0
	"cgroupns namespace is the host's by dockerd's default here (API 1.40): set it to private to isolate it" in f.warn(p)
}

# --- privileges

test_shared_cgroup_refused if {
	f.deny(f.add("/container/privileges/cgroup", "container:db")) == {"cgroup container:db is not allowed: it joins another container's cgroup"}
}

test_privileged_refused if {
	f.deny(priv("privileged", true)) == {"privileged is not allowed: it gives the container every capability and device of the host"}
	count(f.deny(priv("privileged", true))) == 0 with data.sockproxy.config.allow_privileged as true
}

test_cap_add_refused if {
	f.deny(priv("cap_add", ["SYS_ADMIN", "NET_ADMIN"])) == {
		"capability SYS_ADMIN is not allowed: allowed_capabilities are none",
		"capability NET_ADMIN is not allowed: allowed_capabilities are none",
	}
	f.deny(priv("cap_add", ["SYS_ADMIN", "NET_ADMIN"])) == {"capability SYS_ADMIN is not allowed: allowed_capabilities are NET_ADMIN"} with data.sockproxy.config.allowed_capabilities as ["NET_ADMIN"]
}

test_devices_refused if {
	f.deny(priv("devices", ["/dev/sda"])) == {"device /dev/sda is not allowed: allowed_devices are none"}
	count(f.deny(priv("devices", ["/dev/fuse"]))) == 0 with data.sockproxy.config.allowed_devices as ["/dev/fuse"]
}

test_device_cgroup_rules_refused if {
	f.deny(priv("device_cgroup_rules", ["c *:* rwm"])) == {`device cgroup rule "c *:* rwm" is not allowed`}
}

test_device_requests_refused if {
	gpu := priv("device_requests", [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}])
	f.deny(gpu) == {"device requests (--gpus) are not allowed: set allow_device_requests"}
	count(f.deny(gpu)) == 0 with data.sockproxy.config.allow_device_requests as true
}

test_unconfined_refused if {
	p := array.concat(priv("security_opt", ["seccomp=unconfined"]), priv("unconfined", ["seccomp"]))
	f.deny(p) == {"security option that switches off seccomp is not allowed"}
	count(f.deny(p)) == 0 with data.sockproxy.config.allowed_unconfined as ["seccomp"]
}

test_custom_security_options_refused if {
	p := priv("security_opt", ["label=type:spc_t", "no-new-privileges", "label=level:s0:c100"])
	f.deny(p) == {`security option "label=type:spc_t" is not allowed: allowed_security_options are none`}
	count(f.deny(p)) == 0 with data.sockproxy.config.allowed_security_options as ["label=type:spc_t"]
}

test_masked_paths_override_refused if {
	f.deny(priv("masked_paths_override", true)) == {"MaskedPaths override is not allowed: it can unmask /proc and /sys paths"}
}

test_readonly_paths_override_refused if {
	f.deny(priv("readonly_paths_override", true)) == {"ReadonlyPaths override is not allowed: it can make /proc and /sys paths writable"}
}

test_runtime if {
	count(f.deny(priv("runtime", "runc"))) == 0
	f.deny(priv("runtime", "kata")) == {"runtime kata is not allowed: allowed_runtimes are runc"}
}

test_cgroup_parent_refused if {
	f.deny(priv("cgroup_parent", "/")) == {"cgroup parent / is not allowed"}
	count(f.deny(priv("cgroup_parent", "sandboxes"))) == 0 with data.sockproxy.config.allowed_cgroup_parents as ["sandboxes"]
}

test_sysctls if {
	f.deny(priv("sysctls", {"kernel.shm_rmid_forced": "1"})) == {"sysctl kernel.shm_rmid_forced is not allowed: allowed_sysctls are none"}
	count(f.deny(priv("sysctls", {"net.ipv4.ip_forward": "1"}))) == 0 with data.sockproxy.config.allowed_sysctls as ["net.ipv4.ip_forward"]
}

test_log_driver if {
	count(f.deny(priv("log_driver", "json-file"))) == 0
	f.deny(priv("log_driver", "syslog")) == {"log driver syslog is not allowed: allowed_log_drivers are json-file, local, journald, none"}
}

test_volume_driver if {
	count(f.deny(priv("volume_driver", "local"))) == 0
	f.deny(priv("volume_driver", "convoy")) == {"volume driver convoy is not allowed: volume_drivers are none"}
}

# Several violations: every reason is reported.
test_every_reason_reported if {
	p := array.concat(
		array.concat(priv("privileged", true), f.set("/container/ports/0", f.port("30412", "0.0.0.0"))),
		user({"raw": "", "source": "image", "value": "", "uid": 0, "gid": 0, "root": true}),
	)
	f.deny(p) == {
		"privileged is not allowed: it gives the container every capability and device of the host",
		"port 30412/tcp binds 0.0.0.0: only 127.0.0.1, ::1 allowed",
		"user root (uid 0, the image's default) not allowed: set User to a non-root uid",
	}
}

# --- settings that are null (an empty YAML value passes the data's
# validation): a boolean allow_* that is null allows nothing, as false.

test_null_boolean_settings_refuse if {
	f.deny(priv("privileged", true)) == {"privileged is not allowed: it gives the container every capability and device of the host"} with data.sockproxy.config.allow_privileged as null
	f.deny(f.set("/container/publish_all", true)) == {"publish_all (-P) is not allowed: it publishes every exposed port on all interfaces"} with data.sockproxy.config.allow_publish_all as null
	gpu := priv("device_requests", [{"Driver": "nvidia", "Count": -1}])
	f.deny(gpu) == {"device requests (--gpus) are not allowed: set allow_device_requests"} with data.sockproxy.config.allow_device_requests as null
	f.deny(priv("masked_paths_override", true)) == {"MaskedPaths override is not allowed: it can unmask /proc and /sys paths"} with data.sockproxy.config.allow_masked_paths_override as null
	f.deny(priv("readonly_paths_override", true)) == {"ReadonlyPaths override is not allowed: it can make /proc and /sys paths writable"} with data.sockproxy.config.allow_readonly_paths_override as null
	u := user({"raw": "alice", "value": "alice", "uid": -1, "gid": -1, "resolved": false})
	f.deny(u) == {`user "alice" cannot be resolved to a uid: set User to a numeric uid[:gid]`} with data.sockproxy.config.allow_unresolved_users as null
}

# The same null in a caller's profile, merged over the base by object.union.
test_null_boolean_in_profile_refuses if {
	profiles := [{"name": "p", "match": {"uids": [1000]}, "config": {"allow_privileged": null}}]
	f.deny(priv("privileged", true)) == {"privileged is not allowed: it gives the container every capability and device of the host"} with data.sockproxy.config.profiles as profiles
}

# A container: network whose container the facts omit (omitempty) is still
# judged: the concat of an undefined name must not drop the refusal.
test_container_network_without_container_refused if {
	n := {"ref": "container:", "mode": "container", "name": "", "id": "", "found": true}
	f.deny(net(n)) == {"network container: is not allowed: it joins another container's network namespace"}
}
