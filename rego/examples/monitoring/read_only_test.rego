# Tests of the monitoring example: the monitor gets exactly its read list,
# over the whole operations table; other callers are unaffected.
#
# Run: sockproxy policy test rego/examples/monitoring
package examples.monitoring_test

import data.sockproxy
import data.sockproxy.lib.profile

monitor := {"known": true, "uid": 990, "gid": 990, "pid": 700, "user": "prometheus", "group": "prometheus", "groups": ["prometheus"]}

# Another account, matched by the monitoring group.
shipper := {"known": true, "uid": 991, "gid": 991, "pid": 701, "user": "vector", "group": "vector", "groups": ["vector", "monitoring"]}

alice := {"known": true, "uid": 1000, "gid": 1000, "pid": 4242, "user": "alice", "group": "alice", "groups": ["alice"]}

request(op, caller) := {
	"operation": op, "method": "GET", "path": "/v1.41/x", "api_version": "1.41", "versioned": true,
	"query": {}, "vars": {}, "caller": caller, "body": null, "form_body": false, "body_size": 0,
}

deny(req) := d if {
	d := sockproxy.deny with input as req
}

reads := data.monitoring.read_operations

test_profile_matches_by_uid_and_group if {
	profile.name == "monitoring" with input as request("container.list", monitor)
	profile.name == "monitoring" with input as request("container.list", shipper)
	profile.name == "" with input as request("container.list", alice)
}

test_reads_allowed if {
	every op in reads {
		deny(request(op, monitor)) == set()
	}
}

# Every other operation of the library's table is refused, lifecycle and
# exec included, whatever the base settings allow.
test_everything_else_refused if {
	others := {op | some op, _ in data.sockproxy.config.operations; not op in reads}
	count(others) > 100
	every op in others {
		sprintf("operation %s is not allowed for the read-only monitoring profile (data.monitoring.read_operations)", [op]) in deny(request(op, monitor))
	}
}

test_refusal_message if {
	deny(request("container.stop", monitor)) == {"operation container.stop is not allowed for the read-only monitoring profile (data.monitoring.read_operations)"}
	deny(request("exec.create", shipper)) == {
		"exec.create without normalized facts (input.exec): refused",
		"operation exec.create is not allowed for the read-only monitoring profile (data.monitoring.read_operations)",
	}
}

# An operation the library does not know yet stays refused.
test_unknown_operation_refused if {
	count(deny(request("container.checkpoint2", monitor))) == 2
}

test_other_callers_unaffected if {
	deny(request("container.stop", alice)) == set()
	deny(request("container.attach", alice)) == set()
}

# The kernel names no uid for TCP callers: they match no profile and get
# the base settings, so keep the monitor on the Unix socket.
test_anonymous_matches_no_profile if {
	profile.name == "" with input as request("container.list", {"known": false, "uid": 990, "gid": 990, "pid": 0})
}

# Without the read list (a misspelt key, a data file left out) the monitor
# is refused everything: `not op in` an undefined list would refuse nothing.
test_missing_read_list_refuses_everything if {
	deny(request("container.stop", monitor)) == {"operation container.stop is not allowed for the read-only monitoring profile (data.monitoring.read_operations)"} with data.monitoring as {}
	deny(request("container.list", monitor)) == {"operation container.list is not allowed for the read-only monitoring profile (data.monitoring.read_operations)"} with data.monitoring as {}
}
