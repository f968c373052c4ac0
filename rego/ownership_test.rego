package sockproxy.lib.ownership_test

import data.sockproxy
import data.sockproxy.fixtures as f

on := object.union(data.sockproxy.config.ownership, {"enabled": true})

container(uid, user) := {"kind": "container", "ref": "sandbox", "id": "c0ffee", "name": "sandbox", "labels": {}, "owner": owner(uid, user)}

owner(-1, _) := {"known": false, "uid": -1, "user": ""}

owner(uid, user) := {"known": true, "uid": uid, "user": user} if uid >= 0

req_as(op, target, caller) := object.union(f.request(op), {"method": "POST", "vars": {"name": "sandbox"}, "target": target, "caller": caller})

alice := {"known": true, "uid": 1000, "gid": 1000, "pid": 1, "user": "alice", "groups": ["alice"]}

bob := {"known": true, "uid": 1001, "gid": 1001, "pid": 2, "user": "bob", "groups": ["bob", "docker-admins"]}

root := {"known": true, "uid": 0, "gid": 0, "pid": 3, "user": "root"}

anonymous := {"known": false, "uid": 0, "gid": 0, "pid": 0}

test_owner_may_act if {
	count(sockproxy.deny) == 0 with input as req_as("container.stop", container(1000, "alice"), alice) with data.sockproxy.config.ownership as on
}

test_other_caller_refused if {
	sockproxy.deny == {"container sandbox belongs to uid 1000 (alice): only its owner or an admin may container.stop it"} with input as req_as("container.stop", container(1000, "alice"), bob)
		with data.sockproxy.config.ownership as on
}

test_ownership_off_by_default if {
	count(sockproxy.deny) == 0 with input as req_as("container.stop", container(1000, "alice"), bob)
}

test_admins_act_on_everything if {
	count(sockproxy.deny) == 0 with input as req_as("container.delete", container(1000, "alice"), root) with data.sockproxy.config.ownership as on
	count(sockproxy.deny) == 0 with input as req_as("container.delete", container(1000, "alice"), bob)
		with data.sockproxy.config.ownership as object.union(on, {"admin_groups": ["docker-admins"]})
}

test_unowned_objects if {
	sockproxy.deny == {"container sandbox has no owner label: only its owner or an admin may container.kill it"} with input as req_as("container.kill", container(-1, ""), alice)
		with data.sockproxy.config.ownership as on
	count(sockproxy.deny) == 0 with input as req_as("container.kill", container(-1, ""), alice)
		with data.sockproxy.config.ownership as object.union(on, {"unowned": "anyone"})
}

test_anonymous_caller_owns_nothing if {
	sockproxy.deny == {"container sandbox belongs to uid 0 (root): only its owner or an admin may container.stop it"} with input as req_as("container.stop", container(0, "root"), anonymous)
		with data.sockproxy.config.ownership as on
}

test_shared_reads_open if {
	count(sockproxy.deny) == 0 with input as req_as("container.logs", container(1000, "alice"), bob) with data.sockproxy.config.ownership as on
	count(sockproxy.deny) == 0 with input as object.remove(req_as("container.inspect", null, bob), ["target"]) with data.sockproxy.config.ownership as on
}

test_exec_into_others_container_refused if {
	exec := object.union(req_as("exec.create", container(1000, "alice"), bob), {"exec": {"container": "sandbox", "privileged": false, "user": f.user_1000, "cmd": ["sh"]}})
	sockproxy.deny == {"container sandbox belongs to uid 1000 (alice): only its owner or an admin may exec.create it"} with input as exec
		with data.sockproxy.config.ownership as on
}

test_denied_operation_not_doubly_refused if {
	sockproxy.deny == {"operation container.commit is refused by the policy (operations: deny)"} with input as req_as("container.commit", container(1000, "alice"), bob)
		with data.sockproxy.config.ownership as on
}

network(uid) := {"kind": "network", "ref": "team-net", "id": "abcd", "name": "team-net", "labels": {}, "owner": owner(uid, ""), "driver": "bridge"}

connect(net, c, caller) := object.union(f.request("network.connect"), {
	"method": "POST", "vars": {"id": net.ref}, "caller": caller,
	"body": {"Container": c.ref, "EndpointConfig": {}},
	"target": object.union(net, {"container": c}),
})

test_connect_judges_the_containers_owner if {
	req := connect(network(-1), container(1000, "alice"), bob)
	sockproxy.deny == {
		"container sandbox belongs to uid 1000 (alice): only its owner or an admin may network.connect it",
		"network team-net is not allowed: only team-net-other allowed",
	} with input as req
		with data.sockproxy.config.ownership as on
		with data.sockproxy.config.allowed_networks as ["team-net-other"]
	count(sockproxy.deny) == 0 with input as connect(network(-1), container(1001, "bob"), bob)
		with data.sockproxy.config.ownership as on
		with data.sockproxy.config.allowed_networks as ["team-net"]
}

test_connect_to_own_network_allowed if {
	count(sockproxy.deny) == 0 with input as connect(network(1000), container(1000, "alice"), alice)
		with data.sockproxy.config.ownership as on
	sockproxy.deny == {"network team-net is not allowed: only default, bridge, none allowed"} with input as connect(network(1001), container(1000, "alice"), alice)
		with data.sockproxy.config.ownership as on
}

test_network_delete_needs_owner if {
	req := object.union(f.request("network.delete"), {"method": "DELETE", "vars": {"id": "team-net"}, "target": network(1000), "caller": bob})
	sockproxy.deny == {"network team-net belongs to uid 1000: only its owner or an admin may network.delete it"} with input as req
		with data.sockproxy.config.ownership as on
}

test_filter_for_lists if {
	list := object.union(f.request("container.list"), {"caller": alice})
	sockproxy.filter == {"label": "io.sockproxy.owner.uid", "values": ["1000"], "include_unowned": false} with input as list
		with data.sockproxy.config.ownership as on
	count(sockproxy.deny) == 0 with input as list with data.sockproxy.config.ownership as on
	not sockproxy.filter with input as list
	not sockproxy.filter with input as object.union(list, {"caller": root}) with data.sockproxy.config.ownership as on
	sockproxy.filter == {"label": "io.sockproxy.owner.uid", "values": [], "include_unowned": true} with input as object.union(list, {"caller": anonymous, "operation": "system.events"})
		with data.sockproxy.config.ownership as object.union(on, {"unowned": "anyone"})
}

# container.create names networks as network.connect joins them: with
# ownership on, the caller's own network counts as allowed (network.joinable).
named(uid) := n if {
	n := {"ref": "team-net", "mode": "named", "name": "team-net", "id": "abcd", "found": true, "driver": "bridge", "labels": {}, "owner": owner(uid, "")}
}

test_create_on_own_network_allowed if {
	count(f.deny(f.set("/container/networks/0", named(1000)))) == 0 with data.sockproxy.config.ownership as on
	f.deny(f.set("/container/networks/0", named(1000))) == {"network team-net is not allowed: only default, bridge, none allowed"}
	f.deny(f.set("/container/networks/0", named(1001))) == {"network team-net is not allowed: only default, bridge, none allowed"} with data.sockproxy.config.ownership as on
}

test_create_second_network_needs_owner_too if {
	nets := [named(1000), object.union(named(1001), {"ref": "bob-net", "name": "bob-net", "id": "beef"})]
	f.deny(f.set("/container/networks", nets)) == {"network bob-net is not allowed: only default, bridge, none allowed"} with data.sockproxy.config.ownership as on
}

test_create_on_unowned_network_as_at_connect if {
	n := object.remove(named(-1), ["owner"])
	f.deny(f.set("/container/networks/0", n)) == {"network team-net is not allowed: only default, bridge, none allowed"} with data.sockproxy.config.ownership as on
	count(f.deny(f.set("/container/networks/0", n))) == 0 with data.sockproxy.config.ownership as object.union(on, {"unowned": "anyone"})
	count(sockproxy.deny) == 0 with input as connect(network(-1), container(1000, "alice"), alice)
		with data.sockproxy.config.ownership as object.union(on, {"unowned": "anyone"})
}
