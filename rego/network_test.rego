package sockproxy.lib.network_test

import data.sockproxy
import data.sockproxy.fixtures as f

connect(ref) := object.union(f.request("network.connect"), {"method": "POST", "vars": {"id": ref}, "body": {"Container": "sandbox", "EndpointConfig": {}}})

test_connect_allowed_network if {
	count(sockproxy.deny) == 0 with input as connect("openhands-network")
		with data.sockproxy.config.allowed_networks as ["openhands-network"]
}

test_connect_other_network_refused if {
	sockproxy.deny == {"network prod is not allowed: only default, bridge, none allowed"} with input as connect("prod")
}

test_connect_judged_by_resolved_target if {
	req := object.union(connect("0123"), {"target": {"name": "prod", "id": "0123abcd"}})
	sockproxy.deny == {"network 0123 (prod) is not allowed: only openhands-network allowed"} with input as req
		with data.sockproxy.config.allowed_networks as ["openhands-network"]
	count(sockproxy.deny) == 0 with input as req with data.sockproxy.config.allowed_networks as ["prod"]
	count(sockproxy.deny) == 0 with input as req with data.sockproxy.config.allowed_networks as ["0123abcd"]
}

test_connect_bridge_by_default_name if {
	count(sockproxy.deny) == 0 with input as connect("bridge") with data.sockproxy.config.allowed_networks as ["default"]
}

test_connect_without_reference_refused if {
	sockproxy.deny == {"network.connect without a network reference: refused"} with input as f.request("network.connect")
}

connect_with(ref, ep) := object.union(connect(ref), {"connect": object.union(no_endpoint, ep)})

no_endpoint := {"container": "sandbox", "aliases": [], "ipv4": "", "ipv6": "", "link_local_ips": [], "mac_address": "", "driver_opts": {}, "links": []}

test_connect_endpoint_settings_judged if {
	allowed := ["openhands-network"]
	d := sockproxy.deny with input as connect_with("openhands-network", {
		"ipv4": "172.20.0.5", "link_local_ips": ["169.254.1.1"],
		"mac_address": "02:42:ac:11:00:02", "driver_opts": {"com.example.x": "1"}, "links": ["db:db"],
	})
		with data.sockproxy.config.allowed_networks as allowed
	d == {
		"network.connect with a static address (ipv4 172.20.0.5) is not allowed: set allow_endpoint_static_ip",
		"network.connect with link-local addresses 169.254.1.1 is not allowed: set allow_endpoint_static_ip",
		"network.connect with a MAC address (02:42:ac:11:00:02) is not allowed: set allow_endpoint_static_ip",
		"network.connect driver option com.example.x is not allowed: allowed_endpoint_driver_opts are none",
		"network.connect with links db:db is not allowed: links reach into other containers",
	}
	count(sockproxy.deny) == 0 with input as connect_with("openhands-network", {"aliases": ["web"], "ipv4": "172.20.0.5"})
		with data.sockproxy.config.allowed_networks as allowed
		with data.sockproxy.config.allow_endpoint_static_ip as true
	sockproxy.deny == {"network.connect with aliases web is not allowed: set allow_endpoint_aliases"} with input as connect_with("openhands-network", {"aliases": ["web"]})
		with data.sockproxy.config.allowed_networks as allowed
		with data.sockproxy.config.allow_endpoint_aliases as false
}

test_connect_host_driver_refused if {
	req := object.union(connect("h"), {"target": {"kind": "network", "name": "h", "id": "99", "driver": "host"}})
	sockproxy.deny == {"network host is not allowed: it shares the host's network namespace"} with input as req
		with data.sockproxy.config.allowed_networks as ["h"]
}

# --- network.create

create_net(facts) := object.union(f.request("network.create"), {"method": "POST", "network": object.union(plain_net, facts)})

plain_net := {
	"name": "sandbox-net", "driver": "bridge", "scope": "", "internal": false, "attachable": false,
	"ingress": false, "config_only": false, "config_from": "", "options": {}, "labels": {},
	"ipam_driver": "default", "ipam_options": {}, "subnets": [],
}

test_create_bridge_allowed if {
	count(sockproxy.deny) == 0 with input as create_net({})
	count(sockproxy.deny) == 0 with input as create_net({"internal": true, "options": {"com.docker.network.driver.mtu": "1400"}})
}

test_create_macvlan_refused if {
	sockproxy.deny == {
		"network driver macvlan is not allowed: network_drivers are bridge",
		"network option parent=eth0 is not allowed: allowed_network_options are com.docker.network.driver.mtu, com.docker.network.bridge.enable_icc, com.docker.network.bridge.enable_ip_masquerade, com.docker.network.container_iface_prefix",
	} with input as create_net({"driver": "macvlan", "options": {"parent": "eth0"}})
	sockproxy.deny == {"network driver ipvlan is not allowed: network_drivers are bridge"} with input as create_net({"driver": "ipvlan"})
}

test_create_host_bridge_option_refused if {
	d := sockproxy.deny with input as create_net({"options": {"com.docker.network.bridge.name": "docker0", "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0"}})
	d == {
		"network option com.docker.network.bridge.name=docker0 is not allowed: allowed_network_options are com.docker.network.driver.mtu, com.docker.network.bridge.enable_icc, com.docker.network.bridge.enable_ip_masquerade, com.docker.network.container_iface_prefix",
		"network option com.docker.network.bridge.host_binding_ipv4=0.0.0.0 is not allowed: allowed_network_options are com.docker.network.driver.mtu, com.docker.network.bridge.enable_icc, com.docker.network.bridge.enable_ip_masquerade, com.docker.network.container_iface_prefix",
	}
}

test_create_option_credentials_redacted if {
	sockproxy.deny == {"network option vendor.api_token=<redacted> is not allowed: allowed_network_options are com.docker.network.driver.mtu, com.docker.network.bridge.enable_icc, com.docker.network.bridge.enable_ip_masquerade, com.docker.network.container_iface_prefix"} with input as create_net({"options": {"vendor.api_token": "s3cr3t"}})
}

test_create_swarm_and_config_refused if {
	sockproxy.deny == {"network.create with Ingress is not allowed: it is the swarm routing mesh", "network scope swarm is not allowed: only local networks"} with input as create_net({"ingress": true, "scope": "swarm"})
	sockproxy.deny == {"network.create with ConfigFrom macvlan-config is not allowed: it takes the driver and options of another network; set allow_network_config_from"} with input as create_net({"config_from": "macvlan-config"})
	sockproxy.deny == {"network.create with ConfigOnly is not allowed: set allow_network_config_from"} with input as create_net({"config_only": true})
	count(sockproxy.deny) == 0 with input as create_net({"config_from": "c"}) with data.sockproxy.config.allow_network_config_from as true
}

test_create_address_ranges if {
	req := create_net({"subnets": ["192.168.1.0/24", "192.168.1.1/32"]})
	sockproxy.deny == {
		"network address range 192.168.1.0/24 is not allowed: allowed_network_subnets are none",
		"network address range 192.168.1.1/32 is not allowed: allowed_network_subnets are none",
	} with input as req
	count(sockproxy.deny) == 0 with input as req with data.sockproxy.config.allowed_network_subnets as ["192.168.0.0/16"]
	sockproxy.deny == {"network IPAM driver foo is not allowed: only the default", "network IPAM option x is not allowed"} with input as create_net({"ipam_driver": "foo", "ipam_options": {"x": "1"}})
}

test_create_without_facts_refused if {
	sockproxy.deny == {"network.create without normalized facts (input.network): refused"} with input as f.request("network.create")
}

# Boolean settings that are null (an empty YAML value passes the data's
# validation) allow nothing, as false.
test_null_boolean_settings_refuse if {
	allowed := ["openhands-network"]
	sockproxy.deny == {"network.connect with a static address (ipv4 172.20.0.5) is not allowed: set allow_endpoint_static_ip"} with input as connect_with("openhands-network", {"ipv4": "172.20.0.5"})
		with data.sockproxy.config.allowed_networks as allowed
		with data.sockproxy.config.allow_endpoint_static_ip as null
	sockproxy.deny == {"network.connect with aliases web is not allowed: set allow_endpoint_aliases"} with input as connect_with("openhands-network", {"aliases": ["web"]})
		with data.sockproxy.config.allowed_networks as allowed
		with data.sockproxy.config.allow_endpoint_aliases as null
	sockproxy.deny == {"network.create with ConfigOnly is not allowed: set allow_network_config_from"} with input as create_net({"config_only": true})
		with data.sockproxy.config.allow_network_config_from as null
}
