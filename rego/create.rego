# Rules for container.create, judged on the normalized facts in
# input.container (see docs/policy-input.md) and configured by
# data.sockproxy.config (see docs/configuration.md).
package sockproxy.lib.create

# The settings in force for this caller (base settings with the caller's
# profile merged over them), computed once per decision by the profile
# package: imported, not copied into a rule here, which every decision
# would evaluate again.
import data.sockproxy.lib.profile.settings

import data.sockproxy.lib.mounts
import data.sockproxy.lib.network
import data.sockproxy.lib.util

deny contains "container.create without normalized facts (input.container): refused" if {
	not input.container
}

deny contains msg if some msg in mounts.deny

warn contains msg if some msg in mounts.warn

# --- image

deny contains msg if {
	count(settings.allowed_images) > 0
	not image_allowed(input.container.image)
	msg := sprintf("image %s is not allowed: allowed_images are %s", [input.container.image, util.list_text(settings.allowed_images)])
}

image_allowed(image) if {
	some pattern in settings.allowed_images
	glob.match(pattern, null, image)
}

# --- user

deny contains msg if some msg in util.user_deny

# --- ports

deny contains msg if {
	some p in input.container.ports
	p.all_interfaces == false
	not p.host_ip in settings.allowed_host_ips
	not cidr_allowed(p.host_ip)
	msg := sprintf("port %s/%s binds %s: only %s allowed", [p.container_port, p.protocol, p.host_ip, util.list_text(settings.allowed_host_ips)])
}

# Listing 0.0.0.0 or :: is the only way to allow all interfaces, whatever the
# request's spelling of them.
deny contains msg if {
	some p in input.container.ports
	p.all_interfaces
	not all_interfaces_allowed
	msg := sprintf("port %s/%s binds %s: only %s allowed", [p.container_port, p.protocol, host_ip_text(p), util.list_text(settings.allowed_host_ips)])
}

deny contains "publish_all (-P) is not allowed: it publishes every exposed port on all interfaces" if {
	input.container.publish_all == true # indexable: skipped unless set
	not util.on("allow_publish_all")
}

host_ip_text(p) := p.host_ip if p.host_ip != ""

else := "all interfaces (empty HostIp)"

all_interfaces_allowed if {
	some a in settings.allowed_host_ips
	a in {"0.0.0.0", "::", "0.0.0.0/0", "::/0"}
}

# Other spellings of an allowed address (0:0:0:0:0:0:0:1) and CIDR entries.
cidr_allowed(ip) if {
	some a in settings.allowed_host_ips
	net.cidr_contains(cidr(a), ip)
}

cidr(a) := a if {
	contains(a, "/")
} else := concat("", [a, "/128"]) if {
	contains(a, ":")
} else := concat("", [a, "/32"])

# --- networks

# The network rules are the clauses of one function of the network's mode
# and the network: OPA's rule index picks the clauses by the mode (an
# argument compared with a constant), so a create enters the clause of its
# network's mode and the unknown-mode one instead of a rule per mode. At
# most one clause holds for a network.
deny contains msg if {
	some n in input.container.networks
	msg := network_refusal(n.mode, n)
}

network_refusal(mode, n) := msg if {
	mode in {"default", "bridge"}
	not default_network_allowed
	msg := sprintf("network %s is not allowed: only %s allowed", [network_text(n), util.list_text(settings.allowed_networks)])
}

# "default" is the bridge network on Linux: either name allows both spellings.
default_network_allowed if "default" in settings.allowed_networks

default_network_allowed if "bridge" in settings.allowed_networks

# A named network may be joined as at network.connect: listed, or (with
# ownership on) the caller's own.
network_refusal(mode, n) := msg if {
	mode == "named"
	n.found
	not network.joinable(n)
	msg := sprintf("network %s is not allowed: only %s allowed", [network_text(n), util.list_text(settings.allowed_networks)])
}

network_refusal(mode, n) := msg if {
	mode == "named"
	not n.found
	msg := sprintf("network %s does not exist on the daemon: only %s allowed", [n.ref, util.list_text(settings.allowed_networks)])
}

network_refusal(mode, _) := "network host is not allowed: it shares the host's network namespace" if {
	mode == "host"
	not "host" in settings.allowed_networks
}

network_refusal(mode, n) := msg if {
	mode == "container"
	not "container:*" in settings.allowed_networks
	ref := concat("", ["container:", object.get(n, "container", "")]) # omitted when empty
	not ref in settings.allowed_networks
	msg := sprintf("network %s is not allowed: it joins another container's network namespace", [ref])
}

network_refusal(mode, n) := msg if {
	not mode in {"default", "bridge", "named", "host", "container", "none"}
	msg := sprintf("network %s has mode %q, which the policy does not know: refused", [n.ref, mode])
}

network_text(n) := n.ref if n.ref == n.name

else := sprintf("%s (%s)", [n.ref, n.name])

# --- namespaces other than the network's (judged with the networks above)

deny contains msg if some msg in namespace_deny

# namespace_deny are the refusals of the namespaces input.container shares
# with the host or another container. The host's network counts however it
# is reached: a network whose driver is host named by name, ID or prefix, or
# another container that is on the host's network. Exec rules judge an
# existing container's namespaces with it (with input.container as the
# container's target.host_access).
namespace_deny contains "network host is not allowed: it shares the host's network namespace" if {
	input.container.namespaces.network.host == true
	not "host" in settings.allowed_networks
}

# The namespaces are walked inside one expression (input...[kind].x == v)
# and the rare value is tested first: most creates share nothing, and a
# separate expression per namespace and test costs an evaluation each.
namespace_deny contains msg if {
	some kind
	input.container.namespaces[kind].host == true
	kind != "network"
	not kind in settings.allowed_host_namespaces
	msg := sprintf("%s namespace host is not allowed: it shares the host's %s namespace", [kind, kind])
}

namespace_deny contains msg if {
	some kind
	input.container.namespaces[kind].container != ""
	kind != "network"
	not kind in settings.allowed_container_namespaces
	msg := sprintf("%s namespace container:%s is not allowed: it joins another container's namespace", [kind, input.container.namespaces[kind].container])
}

# A default that is the host's namespace (cgroupns on a cgroup v1 host, and
# below API 1.41) is dockerd's normal behaviour there: refusing it would
# refuse every create that does not set the mode, so it is a warning; list
# nothing and set the mode to refuse it with a user rule.
warn contains msg if {
	some kind
	input.container.namespaces[kind].default == true
	kind != "network"
	input.container.namespaces[kind].mode == "host"
	msg := sprintf("%s namespace is the host's by dockerd's default here (API %s): set it to private to isolate it", [kind, input.api_version])
}

deny contains msg if {
	input.container.privileges.cgroup != ""
	msg := sprintf("cgroup %s is not allowed: it joins another container's cgroup", [input.container.privileges.cgroup])
}

# --- privileges

deny contains "privileged is not allowed: it gives the container every capability and device of the host" if {
	input.container.privileges.privileged == true # indexable: skipped unless set
	not util.on("allow_privileged")
}

deny contains msg if some msg in privilege_deny

# privilege_deny are the refusals of what input.container's privileges add
# to its processes: capabilities, host devices, device cgroup rules,
# switched-off confinement. Exec rules judge an existing container's with
# it: every exec'd process gets them.
privilege_deny contains msg if {
	some cap in input.container.privileges.cap_add
	not cap in settings.allowed_capabilities
	msg := sprintf("capability %s is not allowed: allowed_capabilities are %s", [cap, util.list_text(settings.allowed_capabilities)])
}

privilege_deny contains msg if {
	some dev in input.container.privileges.devices
	not dev in settings.allowed_devices
	msg := sprintf("device %s is not allowed: allowed_devices are %s", [dev, util.list_text(settings.allowed_devices)])
}

privilege_deny contains msg if {
	some rule in input.container.privileges.device_cgroup_rules
	not rule in settings.allowed_device_cgroup_rules
	msg := sprintf("device cgroup rule %q is not allowed", [rule])
}

privilege_deny contains msg if {
	some what in input.container.privileges.unconfined
	not what in settings.allowed_unconfined
	msg := sprintf("security option that switches off %s is not allowed", [what])
}

deny contains "device requests (--gpus) are not allowed: set allow_device_requests" if {
	count(input.container.privileges.device_requests) > 0
	not util.on("allow_device_requests")
}

# Security options that only tighten confinement; anything else (a custom
# seccomp profile, an AppArmor profile, an SELinux type) must be listed.
deny contains msg if {
	some opt in input.container.privileges.security_opt
	not safe_security_option(opt)
	not switches_off(opt)
	not opt in settings.allowed_security_options
	msg := sprintf("security option %q is not allowed: allowed_security_options are %s", [opt, util.list_text(settings.allowed_security_options)])
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
	input.container.privileges.masked_paths_override == true # indexable: skipped unless set
	not util.on("allow_masked_paths_override")
}

deny contains "ReadonlyPaths override is not allowed: it can make /proc and /sys paths writable" if {
	input.container.privileges.readonly_paths_override == true # indexable: skipped unless set
	not util.on("allow_readonly_paths_override")
}

deny contains msg if {
	input.container.privileges.runtime != ""
	not input.container.privileges.runtime in settings.allowed_runtimes
	msg := sprintf("runtime %s is not allowed: allowed_runtimes are %s", [input.container.privileges.runtime, util.list_text(settings.allowed_runtimes)])
}

deny contains msg if {
	input.container.privileges.cgroup_parent != ""
	not input.container.privileges.cgroup_parent in settings.allowed_cgroup_parents
	msg := sprintf("cgroup parent %s is not allowed", [input.container.privileges.cgroup_parent])
}

deny contains msg if {
	some name, _ in input.container.privileges.sysctls
	not name in settings.allowed_sysctls
	msg := sprintf("sysctl %s is not allowed: allowed_sysctls are %s", [name, util.list_text(settings.allowed_sysctls)])
}

deny contains msg if {
	input.container.privileges.log_driver != ""
	not input.container.privileges.log_driver in settings.allowed_log_drivers
	msg := sprintf("log driver %s is not allowed: allowed_log_drivers are %s", [input.container.privileges.log_driver, util.list_text(settings.allowed_log_drivers)])
}

deny contains msg if {
	input.container.privileges.volume_driver != ""
	input.container.privileges.volume_driver != "local"
	not input.container.privileges.volume_driver in settings.volume_drivers
	msg := sprintf("volume driver %s is not allowed: volume_drivers are %s", [input.container.privileges.volume_driver, util.list_text(settings.volume_drivers)])
}
