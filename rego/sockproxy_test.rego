package sockproxy_test

import data.sockproxy
import data.sockproxy.fixtures as f

test_openhands_create_allowed if {
	count(f.deny([])) == 0
}

test_openhands_create_refused_without_roots if {
	d := sockproxy.deny with input as f.openhands
	d == {
		"mount /home/alice/projects:/workspace is not under an allowed root",
		"mount /home/alice/datasets:/data is not under an allowed root",
	}
}

test_read_allowed if {
	count(sockproxy.deny) == 0 with input as f.request("container.list")
}

test_lifecycle_allowed if {
	every op in ["container.start", "container.stop", "container.delete", "container.inspect", "exec.start"] {
		count(sockproxy.deny) == 0 with input as f.request(op)
	}
}

test_unknown_operation_refused if {
	sockproxy.deny == {"operation distribution.fly is not allowed by the default policy"} with input as f.request("distribution.fly")
}

test_denied_operation_refused if {
	sockproxy.deny == {"operation plugin.pull is refused by the policy (operations: deny)"} with input as f.request("plugin.pull")
}

test_operations_table_overridable if {
	count(sockproxy.deny) == 0 with input as f.request("plugin.pull")
		with data.sockproxy.config.operations["plugin.pull"] as "allow"
}

test_missing_operation_refused if {
	sockproxy.deny == {"request has no operation: refused"} with input as object.remove(f.request("x"), ["operation"])
}

test_bad_action_refused if {
	sockproxy.deny == {`operation container.list has action "maybe" in the operations table: use allow, deny or judge`} with input as f.request("container.list")
		with data.sockproxy.config.operations["container.list"] as "maybe"
}

test_judge_without_rules_refused if {
	sockproxy.deny == {"operation volume.prune is set to judge but the library has no rules for it: set it to allow or deny"} with input as f.request("volume.prune")
		with data.sockproxy.config.operations["volume.prune"] as "judge"
}

test_create_set_to_allow_skips_rules if {
	count(sockproxy.deny) == 0 with input as f.openhands
		with data.sockproxy.config.operations["container.create"] as "allow"
}

test_create_without_facts_refused if {
	sockproxy.deny == {"container.create without normalized facts (input.container): refused"} with input as object.remove(f.openhands, ["container"])
}

test_every_default_action_valid if {
	every _, a in data.sockproxy.config.operations {
		a in {"allow", "deny", "judge"}
	}
	judged := {op | some op, a in data.sockproxy.config.operations; a == "judge"}
	count(judged - sockproxy.judged_operations) == 0
}

test_warn_collected if {
	w := f.warn([])
	w == {
		"mount /home/alice/datasets:/data is read-only but not recursively: mounts below it stay writable",
	} with data.sockproxy.config.mount_roots as f.roots
}

test_form_body_refused_on_every_operation if {
	req := object.union(f.request("image.create"), {"method": "POST", "query": {"fromImage": ["busybox"]}, "form_body": true})
	sockproxy.deny == {"image.create with a form-encoded body (Content-Type: application/x-www-form-urlencoded): its parameters would override the query the policy judged; send them in the query"} with input as req
	count(sockproxy.deny) == 0 with input as object.union(req, {"form_body": false})
	d := sockproxy.deny with input as object.union(f.request("container.kill"), {"method": "POST", "form_body": true})
	d == {"container.kill with a form-encoded body (Content-Type: application/x-www-form-urlencoded): its parameters would override the query the policy judged; send them in the query"}
}
