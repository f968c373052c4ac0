# Rules for network.connect (a runtime joins its sandbox network after
# start, so membership is judged here as well as at create) and
# network.create (drivers and options that reach the host).
package sockproxy.lib.network

# The settings in force for this caller (base settings with the caller's
# profile merged over them), computed once per decision by the profile
# package: imported, not copied into a rule here, which every decision
# would evaluate again.
import data.sockproxy.lib.profile.settings

import data.sockproxy.lib.ownership
import data.sockproxy.lib.util

# --- network.connect

# The network as the daemon resolved it (input.target), else the reference
# from the path.
ref := input.vars.id if input.vars.id

else := ""

name := input.target.name if input.target.name

else := ref

id := input.target.id if input.target.id

else := ""

deny contains "network.connect without a network reference: refused" if {
	input.operation == "network.connect"
	ref == ""
}

deny contains msg if {
	input.operation == "network.connect"
	ref != ""
	not allowed
	msg := sprintf("network %s is not allowed: only %s allowed", [text, util.list_text(settings.allowed_networks)])
}

# The reference as sent, when the daemon did not resolve it (no daemon).
allowed if name in settings.allowed_networks

# The network the daemon resolved (the target of a connect is always one).
allowed if joinable(input.target)

# "default" is the bridge network's other name.
allowed if {
	name == "bridge"
	"default" in settings.allowed_networks
}

# joinable(n): a container may join the resolved network n (name, id,
# owner), at connect and at create (container.networks[] in create.rego):
# it is listed in allowed_networks by name or ID, or, with ownership on, the
# caller owns it (created through the proxy, judged by the network.create
# rules).
joinable(n) if n.name in settings.allowed_networks

joinable(n) if {
	n.id != ""
	n.id in settings.allowed_networks
}

joinable(n) if {
	settings.ownership.enabled
	ownership.owns(n)
}

deny contains "network host is not allowed: it shares the host's network namespace" if {
	input.operation == "network.connect"
	input.target.driver == "host"
	not "host" in settings.allowed_networks
}

text := ref if ref == name

text := sprintf("%s (%s)", [ref, name]) if ref != name

# Endpoint settings of the connect: a static address can take another
# container's, aliases can capture its DNS name, driver options reach the
# driver.
endpoint := input.connect

deny contains msg if {
	input.operation == "network.connect"
	not util.on("allow_endpoint_static_ip")
	some key in ["ipv4", "ipv6"]
	ip := endpoint[key]
	ip != ""
	msg := sprintf("network.connect with a static address (%s %s) is not allowed: set allow_endpoint_static_ip", [key, ip])
}

deny contains msg if {
	input.operation == "network.connect"
	not util.on("allow_endpoint_static_ip")
	count(endpoint.link_local_ips) > 0
	msg := sprintf("network.connect with link-local addresses %s is not allowed: set allow_endpoint_static_ip", [util.list_text(endpoint.link_local_ips)])
}

deny contains msg if {
	input.operation == "network.connect"
	not util.on("allow_endpoint_static_ip")
	endpoint.mac_address != ""
	msg := sprintf("network.connect with a MAC address (%s) is not allowed: set allow_endpoint_static_ip", [endpoint.mac_address])
}

deny contains msg if {
	input.operation == "network.connect"
	not util.on("allow_endpoint_aliases")
	count(endpoint.aliases) > 0
	msg := sprintf("network.connect with aliases %s is not allowed: set allow_endpoint_aliases", [util.list_text(endpoint.aliases)])
}

deny contains msg if {
	input.operation == "network.connect"
	some key, _ in endpoint.driver_opts
	not key in settings.allowed_endpoint_driver_opts
	msg := sprintf("network.connect driver option %s is not allowed: allowed_endpoint_driver_opts are %s", [key, util.list_text(settings.allowed_endpoint_driver_opts)])
}

deny contains msg if {
	input.operation == "network.connect"
	count(endpoint.links) > 0
	msg := sprintf("network.connect with links %s is not allowed: links reach into other containers", [util.list_text(endpoint.links)])
}

# --- network.create

nc := input.network

deny contains "network.create without normalized facts (input.network): refused" if {
	input.operation == "network.create"
	not input.network
}

deny contains msg if {
	input.operation == "network.create"
	not nc.driver in settings.network_drivers
	msg := sprintf("network driver %s is not allowed: network_drivers are %s", [nc.driver, util.list_text(settings.network_drivers)])
}

deny contains msg if {
	input.operation == "network.create"
	some key, value in nc.options
	not key in settings.allowed_network_options
	msg := sprintf("network option %s is not allowed: allowed_network_options are %s", [util.option_text(key, value), util.list_text(settings.allowed_network_options)])
}

deny contains "network.create with Ingress is not allowed: it is the swarm routing mesh" if {
	input.operation == "network.create"
	nc.ingress
}

deny contains msg if {
	input.operation == "network.create"
	not nc.scope in {"", "local"}
	msg := sprintf("network scope %s is not allowed: only local networks", [nc.scope])
}

deny contains msg if {
	input.operation == "network.create"
	nc.config_from != ""
	not util.on("allow_network_config_from")
	msg := sprintf("network.create with ConfigFrom %s is not allowed: it takes the driver and options of another network; set allow_network_config_from", [nc.config_from])
}

deny contains "network.create with ConfigOnly is not allowed: set allow_network_config_from" if {
	input.operation == "network.create"
	nc.config_only
	not util.on("allow_network_config_from")
}

deny contains msg if {
	input.operation == "network.create"
	nc.ipam_driver != "default"
	msg := sprintf("network IPAM driver %s is not allowed: only the default", [nc.ipam_driver])
}

deny contains msg if {
	input.operation == "network.create"
	some key, _ in nc.ipam_options
	msg := sprintf("network IPAM option %s is not allowed", [key])
}

# A subnet of the host's own networks would shadow their routes: custom
# address ranges must lie in allowed_network_subnets.
deny contains msg if {
	input.operation == "network.create"
	some subnet in nc.subnets
	not subnet_allowed(subnet)
	msg := sprintf("network address range %s is not allowed: allowed_network_subnets are %s", [subnet, util.list_text(settings.allowed_network_subnets)])
}

subnet_allowed(subnet) if {
	some cidr in settings.allowed_network_subnets
	net.cidr_contains(cidr, subnet)
}
