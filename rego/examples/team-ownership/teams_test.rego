# Tests of the team-ownership example: teams act only on their own
# objects, join only their own networks, name what they create with their
# prefix; platform admins act on everything.
#
# Run: sockproxy policy test rego/examples/team-ownership
package examples.team_ownership_test

import data.sockproxy

team_a := {"known": true, "uid": 2001, "gid": 2001, "pid": 900, "user": "team-a-agents", "group": "team-a-agents", "groups": ["team-a-agents"]}

team_b := {"known": true, "uid": 2002, "gid": 2002, "pid": 901, "user": "team-b-agents", "group": "team-b-agents", "groups": ["team-b-agents"]}

admin := {"known": true, "uid": 1200, "gid": 1200, "pid": 902, "user": "carol", "group": "carol", "groups": ["carol", "platform-admins"]}

request(op, method, caller) := {
	"operation": op, "method": method, "path": "/v1.41/x", "api_version": "1.41", "versioned": true,
	"query": {}, "vars": {}, "caller": caller, "body": null, "form_body": false, "body_size": 0,
}

owner(-1) := {"known": false, "uid": -1, "user": ""}

owner(uid) := {"known": true, "uid": uid, "user": sprintf("team-%d", [uid])} if uid >= 0

container(name, uid) := {"kind": "container", "ref": name, "id": "c0ffee", "name": name, "labels": {}, "owner": owner(uid)}

network(name, uid) := {"kind": "network", "ref": name, "id": "7e57ab1e", "name": name, "labels": {}, "owner": owner(uid), "driver": "bridge", "scope": "local"}

on(op, caller, target) := object.union(request(op, "POST", caller), {"vars": {"name": target.ref}, "target": target})

deny(req) := d if {
	d := sockproxy.deny with input as req
}

allowed(req) if count(deny(req)) == 0

refused_with(req, part) if {
	some msg in deny(req)
	contains(msg, part)
}

test_team_acts_on_its_own_containers if {
	every op in ["container.stop", "container.start", "container.kill", "container.delete", "container.logs", "container.archive.get"] {
		allowed(on(op, team_a, container("sandbox-a1", 2001)))
	}
}

test_team_cannot_touch_another_teams_containers if {
	deny(on("container.stop", team_a, container("sandbox-b1", 2002))) == {"container sandbox-b1 belongs to uid 2002 (team-2002): only its owner or an admin may container.stop it"}
	refused_with(on("container.delete", team_a, container("sandbox-b1", 2002)), "only its owner or an admin")

	# shared_operations is empty: logs and files of other teams stay private.
	refused_with(on("container.logs", team_a, container("sandbox-b1", 2002)), "only its owner or an admin may container.logs it")
	refused_with(on("container.archive.get", team_a, container("sandbox-b1", 2002)), "only its owner or an admin")
}

test_exec_into_another_teams_container_refused if {
	exec := object.union(on("exec.create", team_b, container("sandbox-a1", 2001)), {"exec": {
		"container": "sandbox-a1", "privileged": false, "cmd": ["sh"],
		"user": {"raw": "", "source": "container", "value": "1000:1000", "uid": 1000, "gid": 1000, "root": false, "resolved": true},
	}})
	deny(exec) == {"container sandbox-a1 belongs to uid 2001 (team-2001): only its owner or an admin may exec.create it"}
}

# Inspects and lists carry no resolved target: runtimes inspect everything.
test_reads_without_target_open if {
	allowed(object.union(request("container.inspect", "GET", team_a), {"vars": {"name": "sandbox-b1"}}))
	allowed(request("container.list", "GET", team_a))
}

test_unowned_objects_are_the_admins if {
	refused_with(on("container.delete", team_a, container("legacy-db", -1)), "container legacy-db has no owner label")
	allowed(on("container.delete", admin, container("legacy-db", -1)))
}

test_admins_act_on_everything if {
	allowed(on("container.stop", admin, container("sandbox-a1", 2001)))
	allowed(on("container.delete", admin, container("sandbox-b1", 2002)))
}

connect(net, c, caller) := object.union(request("network.connect", "POST", caller), {
	"vars": {"id": net.ref},
	"body": {"Container": c.ref, "EndpointConfig": {}},
	"connect": {"container": c.ref, "aliases": [], "ipv4": "", "ipv6": "", "link_local_ips": [], "mac_address": "", "driver_opts": {}, "links": []},
	"target": object.union(net, {"container": c}),
})

test_team_joins_its_own_networks if {
	allowed(connect(network("team-a-sandboxes", 2001), container("sandbox-a1", 2001), team_a))

	# Any network the team created, listed or not.
	allowed(connect(network("team-a-scratch", 2001), container("sandbox-a1", 2001), team_a))
}

test_team_cannot_join_another_teams_network if {
	deny(connect(network("team-b-sandboxes", 2002), container("sandbox-a1", 2001), team_a)) == {"network team-b-sandboxes is not allowed: only default, bridge, none, team-a-sandboxes allowed"}
}

test_team_cannot_connect_another_teams_container if {
	refused_with(connect(network("team-a-sandboxes", 2001), container("sandbox-b1", 2002), team_a), "only its owner or an admin may network.connect it")
}

network_create(name, caller) := object.union(request("network.create", "POST", caller), {
	"body": {"Name": name},
	"network": {
		"name": name, "driver": "bridge", "scope": "", "internal": false, "attachable": false, "ingress": false,
		"config_only": false, "config_from": "", "options": {}, "labels": {}, "ipam_driver": "default",
		"ipam_options": {}, "subnets": [],
	},
})

test_team_network_names if {
	allowed(network_create("team-a-sandboxes", team_a))
	deny(network_create("team-b-sandboxes", team_a)) == {`network.create "team-b-sandboxes": team-a may only create names starting with "team-a-"`}
	refused_with(network_create("sandboxes", team_b), `team-b may only create names starting with "team-b-"`)

	# Admins are in no team.
	allowed(network_create("shared-services", admin))
}

volume_create(name, caller) := object.union(request("volume.create", "POST", caller), {
	"body": {"Name": name},
	"volume": {"name": name, "driver": "local", "options": {}, "labels": {}, "local_mount": "", "host_paths": [], "cluster": false},
})

test_team_volume_names if {
	allowed(volume_create("team-b-cache", team_b))
	refused_with(volume_create("team-a-cache", team_b), `volume.create "team-a-cache": team-b may only create names starting with "team-b-"`)
	allowed(volume_create("", team_b))
}

# Each team's profile: its own host paths.
test_team_mount_roots if {
	c := object.union(request("container.create", "POST", team_a), {"container": {
		"name": "sandbox-a2", "image": "busybox",
		"user": {"raw": "1000", "source": "request", "value": "1000", "uid": 1000, "gid": -1, "root": false, "resolved": true},
		"mounts": [{
			"origin": "binds", "type": "bind", "source": "/srv/teams/b", "target": "/workspace",
			"host_bind": true, "host_path": "/srv/teams/b", "real_path": "/srv/teams/b", "path_status": "resolved", "path_differs": false,
			"read_only": false, "read_only_recursive": false, "propagation": "rprivate", "relabel": "", "nocopy": false,
			"create_mountpoint": false, "non_recursive": false, "read_only_force_recursive": false,
			"driver": "", "driver_options": {}, "volume_found": false,
		}],
		"ports": [], "publish_all": false,
		"networks": [{"ref": "team-a-sandboxes", "mode": "named", "name": "team-a-sandboxes", "id": "7e57ab1e", "found": true, "driver": "bridge", "options": {}}],
		"namespaces": {}, "privileges": {"privileged": false, "cap_add": [], "devices": [], "device_cgroup_rules": [], "device_requests": [], "security_opt": [], "unconfined": [], "sysctls": {}},
		"labels": {},
	}})
	deny(c) == {"mount /srv/teams/b:/workspace is not under an allowed root"}
	refused_with(object.union(c, {"caller": team_b}), "network team-a-sandboxes is not allowed")
}

# A team entry without its prefix (a misspelt key) creates no name at all:
# `not startswith(name, team.prefix)` of an undefined prefix would allow any.
test_team_without_prefix_refused if {
	teams := [{"name": "team-a", "uids": [2001]}]
	deny(network_create("team-b-sandboxes", team_a)) == {`network.create "team-b-sandboxes": team-a may only create names starting with ""`} with data.teams as teams
}
