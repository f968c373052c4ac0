package sockproxy.lib.exec_test

import data.sockproxy
import data.sockproxy.fixtures as f

exec(facts) := object.union(f.request("exec.create"), {"method": "POST", "vars": {"name": "sandbox"}, "exec": facts})

ok := {"container": "sandbox", "privileged": false, "user": object.union(f.user_1000, {"source": "request"}), "cmd": ["sh"]}

test_exec_nonroot_allowed if {
	count(sockproxy.deny) == 0 with input as exec(ok)
}

test_exec_root_refused if {
	root := object.union(ok, {"user": {"raw": "0:0", "source": "request", "value": "0:0", "uid": 0, "gid": 0, "root": true, "resolved": true}})
	sockproxy.deny == {"exec user 0:0 (uid 0) not allowed: set User to a non-root uid"} with input as exec(root)
}

test_exec_container_root_user_refused if {
	root := object.union(ok, {"user": {"raw": "", "source": "container", "value": "", "uid": 0, "gid": 0, "root": true, "resolved": true}})
	sockproxy.deny == {"exec user root (uid 0, the container's user) not allowed: set User to a non-root uid"} with input as exec(root)
}

test_exec_privileged_refused if {
	sockproxy.deny == {"exec privileged is not allowed: it gives the process every capability of the host"} with input as exec(object.union(ok, {"privileged": true}))
}

test_exec_into_privileged_container_refused if {
	req := object.union(exec(ok), {"target": {"kind": "container", "id": "abc", "privileged": true}})
	sockproxy.deny == {"exec into container sandbox is not allowed: it runs privileged, so every process exec'd in it keeps every capability and device of the host within reach"} with input as req
	count(sockproxy.deny) == 0 with input as req with data.sockproxy.config.allow_privileged as true
	count(sockproxy.deny) == 0 with input as object.union(exec(ok), {"target": {"kind": "container", "id": "abc", "privileged": false}})
}

test_exec_unresolved_user_refused if {
	u := {"raw": "bob", "source": "request", "value": "bob", "uid": -1, "gid": -1, "root": false, "resolved": false}
	sockproxy.deny == {`exec user "bob" cannot be resolved to a uid: set User to a numeric uid[:gid]`} with input as exec(object.union(ok, {"user": u}))
}

test_exec_without_facts_refused if {
	sockproxy.deny == {"exec.create without normalized facts (input.exec): refused"} with input as f.request("exec.create")
}
