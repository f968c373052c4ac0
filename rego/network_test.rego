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
