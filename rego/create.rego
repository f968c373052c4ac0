# Rules for container.create, judged on the normalized facts in
# input.container (see docs/policy-input.md) and configured by
# data.sockproxy.config (see docs/configuration.md).
package sockproxy.lib.create

import data.sockproxy.config
import data.sockproxy.lib.mounts
import data.sockproxy.lib.util

c := input.container

deny contains "container.create without normalized facts (input.container): refused" if {
	not input.container
}

deny contains msg if some msg in mounts.deny

warn contains msg if some msg in mounts.warn

# --- image

deny contains msg if {
	count(config.allowed_images) > 0
	not image_allowed(c.image)
	msg := sprintf("image %s is not allowed: allowed_images are %s", [c.image, util.list_text(config.allowed_images)])
}

image_allowed(image) if {
	some pattern in config.allowed_images
	glob.match(pattern, null, image)
}

# --- user

deny contains msg if some msg in util.user_denials(c.user, "user")

# --- ports

deny contains msg if {
	some p in c.ports
	not host_ip_allowed(p)
	msg := sprintf("port %s/%s binds %s: only %s allowed", [p.container_port, p.protocol, host_ip_text(p), util.list_text(config.allowed_host_ips)])
}

deny contains "publish_all (-P) is not allowed: it publishes every exposed port on all interfaces" if {
	c.publish_all
	not config.allow_publish_all
}

host_ip_text(p) := "all interfaces (empty HostIp)" if p.host_ip == ""

host_ip_text(p) := p.host_ip if p.host_ip != ""

# Listing 0.0.0.0 or :: is the only way to allow all interfaces, whatever the
# request's spelling of them.
host_ip_allowed(p) if {
	p.all_interfaces
	some a in config.allowed_host_ips
	a in {"0.0.0.0", "::", "0.0.0.0/0", "::/0"}
}

host_ip_allowed(p) if {
	not p.all_interfaces
	p.host_ip in config.allowed_host_ips
}

# Other spellings of an allowed address (::0:1) and CIDR entries.
host_ip_allowed(p) if {
	not p.all_interfaces
	some a in config.allowed_host_ips
	net.cidr_contains(cidr(a), p.host_ip)
}

cidr(a) := a if contains(a, "/")

cidr(a) := concat("", [a, "/128"]) if {
	not contains(a, "/")
	contains(a, ":")
}

cidr(a) := concat("", [a, "/32"]) if {
	not contains(a, "/")
	not contains(a, ":")
}

# --- networks

deny contains msg if {
	some n in c.networks
	not network_allowed(n)
	msg := network_denial(n)
}

network_allowed(n) if n.mode == "none"

# "default" is the bridge network on Linux: either name allows both spellings.
network_allowed(n) if {
	n.mode in {"default", "bridge"}
	some x in {"default", "bridge"}
	x in config.allowed_networks
}

network_allowed(n) if {
	n.mode == "named"
	n.found
	n.name in config.allowed_networks
}

network_allowed(n) if {
	n.mode == "named"
	n.found
	n.id in config.allowed_networks
}

network_allowed(n) if {
	n.mode == "host"
	"host" in config.allowed_networks
}

network_allowed(n) if {
	n.mode == "container"
	some x in {"container:*", concat("", ["container:", n.container])}
	x in config.allowed_networks
}

network_denial(n) := "network host is not allowed: it shares the host's network namespace" if n.mode == "host"

network_denial(n) := sprintf("network container:%s is not allowed: it joins another container's network namespace", [n.container]) if n.mode == "container"

network_denial(n) := sprintf("network %s does not exist on the daemon: only %s allowed", [n.ref, util.list_text(config.allowed_networks)]) if {
	n.mode == "named"
	not n.found
}

network_denial(n) := sprintf("network %s is not allowed: only %s allowed", [network_text(n), util.list_text(config.allowed_networks)]) if {
	not n.mode in {"host", "container"}
	n.found
}

network_denial(n) := sprintf("network %s is not allowed: only %s allowed", [n.ref, util.list_text(config.allowed_networks)]) if {
	not n.mode in {"host", "container", "named"}
	not n.found
}

network_text(n) := n.ref if n.ref == n.name

network_text(n) := sprintf("%s (%s)", [n.ref, n.name]) if n.ref != n.name

# --- namespaces other than the network's (judged with the networks above)

deny contains msg if {
	some kind, ns in c.namespaces
	kind != "network"
	ns.host
	not kind in config.allowed_host_namespaces
	msg := sprintf("%s namespace host is not allowed: it shares the host's %s namespace", [kind, kind])
}

deny contains msg if {
	some kind, ns in c.namespaces
	kind != "network"
	ns.container != ""
	not kind in config.allowed_container_namespaces
	msg := sprintf("%s namespace container:%s is not allowed: it joins another container's namespace", [kind, ns.container])
}

# --- privileges

deny contains "privileged is not allowed: it gives the container every capability and device of the host" if {
	c.privileges.privileged
	not config.allow_privileged
}

deny contains msg if {
	some cap in c.privileges.cap_add
	not cap in config.allowed_capabilities
	msg := sprintf("capability %s is not allowed: allowed_capabilities are %s", [cap, util.list_text(config.allowed_capabilities)])
}

deny contains msg if {
	some dev in c.privileges.devices
	not dev in config.allowed_devices
	msg := sprintf("device %s is not allowed: allowed_devices are %s", [dev, util.list_text(config.allowed_devices)])
}

deny contains msg if {
	some rule in c.privileges.device_cgroup_rules
	not rule in config.allowed_device_cgroup_rules
	msg := sprintf("device cgroup rule %q is not allowed", [rule])
}

deny contains "device requests (--gpus) are not allowed: set allow_device_requests" if {
	count(c.privileges.device_requests) > 0
	not config.allow_device_requests
}

deny contains msg if {
	some what in c.privileges.unconfined
	not what in config.allowed_unconfined
	msg := sprintf("security option that switches off %s is not allowed", [what])
}

# Security options that only tighten confinement; anything else (a custom
# seccomp profile, an AppArmor profile, an SELinux type) must be listed.
deny contains msg if {
	some opt in c.privileges.security_opt
	not safe_security_option(opt)
	not switches_off(opt)
	not opt in config.allowed_security_options
	msg := sprintf("security option %q is not allowed: allowed_security_options are %s", [opt, util.list_text(config.allowed_security_options)])
}

safe_security_option(opt) if opt in {"no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"}

safe_security_option(opt) if {
	some prefix in {"label=level:", "label:level:"}
	startswith(opt, prefix)
}

# Options reported through privileges.unconfined have their own message.
switches_off(opt) if contains(opt, "unconfined")

switches_off(opt) if opt in {"label=disable", "label:disable", "no-new-privileges=false", "no-new-privileges:false"}

deny contains "MaskedPaths override is not allowed: it can unmask /proc and /sys paths" if {
	c.privileges.masked_paths_override
	not config.allow_masked_paths_override
}

deny contains "ReadonlyPaths override is not allowed: it can make /proc and /sys paths writable" if {
	c.privileges.readonly_paths_override
	not config.allow_readonly_paths_override
}

deny contains msg if {
	c.privileges.runtime != ""
	not c.privileges.runtime in config.allowed_runtimes
	msg := sprintf("runtime %s is not allowed: allowed_runtimes are %s", [c.privileges.runtime, util.list_text(config.allowed_runtimes)])
}

deny contains msg if {
	c.privileges.cgroup_parent != ""
	not c.privileges.cgroup_parent in config.allowed_cgroup_parents
	msg := sprintf("cgroup parent %s is not allowed", [c.privileges.cgroup_parent])
}

deny contains msg if {
	some name, _ in c.privileges.sysctls
	not name in config.allowed_sysctls
	msg := sprintf("sysctl %s is not allowed: allowed_sysctls are %s", [name, util.list_text(config.allowed_sysctls)])
}

deny contains msg if {
	c.privileges.log_driver != ""
	not c.privileges.log_driver in config.allowed_log_drivers
	msg := sprintf("log driver %s is not allowed: allowed_log_drivers are %s", [c.privileges.log_driver, util.list_text(config.allowed_log_drivers)])
}

deny contains msg if {
	c.privileges.volume_driver != ""
	c.privileges.volume_driver != "local"
	not c.privileges.volume_driver in config.volume_drivers
	msg := sprintf("volume driver %s is not allowed: volume_drivers are %s", [c.privileges.volume_driver, util.list_text(config.volume_drivers)])
}
