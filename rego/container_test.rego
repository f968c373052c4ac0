package sockproxy.lib.container_test

import data.sockproxy
import data.sockproxy.fixtures as f

req(op, extra) := object.union(object.union(f.request(op), {"method": "POST", "vars": {"name": "sandbox"}}), extra)

# --- container.start

test_start_without_body_allowed if {
	count(sockproxy.deny) == 0 with input as req("container.start", {"body_size": 0})
	count(sockproxy.deny) == 0 with input as req("container.start", {"body_size": 2})
}

test_start_with_body_refused if {
	sockproxy.deny == {"container.start with a request body: below API 1.24 it replaces the container's HostConfig (dockerd >= 1.24 refuses bodies over 7 bytes); send none"} with input as req("container.start", {"body_size": 40})
}

# --- container.update

update(facts) := req("container.update", {"update": object.union(no_update, facts)})

no_update := {
	"memory": 0, "memory_reservation": 0, "memory_swap": 0, "nano_cpus": 0, "cpu_shares": 0,
	"cpu_period": 0, "cpu_quota": 0, "cpuset_cpus": "", "cpuset_mems": "", "blkio_weight": 0,
	"pids_limit": null, "restart_policy": {"name": "", "maximum_retry_count": 0}, "other": [],
}

limits(l) := object.union(data.sockproxy.config.update_limits, l)

test_update_within_defaults_allowed if {
	count(sockproxy.deny) == 0 with input as update({"memory": 1073741824, "restart_policy": {"name": "unless-stopped", "maximum_retry_count": 0}})
}

test_update_unboundable_fields_refused if {
	sockproxy.deny == {
		"container.update sets Devices: only Memory, MemoryReservation, MemorySwap, NanoCpus, CpuShares, CpuPeriod, CpuQuota, CpusetCpus, CpusetMems, BlkioWeight, PidsLimit and RestartPolicy can be judged",
		"container.update sets KernelMemory: only Memory, MemoryReservation, MemorySwap, NanoCpus, CpuShares, CpuPeriod, CpuQuota, CpusetCpus, CpusetMems, BlkioWeight, PidsLimit and RestartPolicy can be judged",
	} with input as update({"other": ["Devices", "KernelMemory"]})
}

test_update_memory_bound if {
	l := limits({"max_memory": 1000})
	sockproxy.deny == {"container.update memory 2000 is over update_limits.max_memory 1000"} with input as update({"memory": 2000})
		with data.sockproxy.config.update_limits as l
	sockproxy.deny == {"container.update memory_reservation 2000 is over update_limits.max_memory 1000"} with input as update({"memory_reservation": 2000})
		with data.sockproxy.config.update_limits as l
	count(sockproxy.deny) == 0 with input as update({"memory": 1000}) with data.sockproxy.config.update_limits as l
}

test_update_memory_swap_bound if {
	l := limits({"max_memory_swap": 2000})
	sockproxy.deny == {"container.update memory_swap -1 is not within update_limits.max_memory_swap 2000 (-1 means unlimited)"} with input as update({"memory_swap": -1})
		with data.sockproxy.config.update_limits as l
	sockproxy.deny == {"container.update memory_swap 4000 is not within update_limits.max_memory_swap 2000 (-1 means unlimited)"} with input as update({"memory_swap": 4000})
		with data.sockproxy.config.update_limits as l
	count(sockproxy.deny) == 0 with input as update({"memory_swap": 2000}) with data.sockproxy.config.update_limits as l
	count(sockproxy.deny) == 0 with input as update({"memory": 1000}) with data.sockproxy.config.update_limits as l
	count(sockproxy.deny) == 0 with input as update({"memory_swap": -1})
}

test_update_cpu_bound if {
	l := limits({"max_nano_cpus": 2000000000, "max_cpu_shares": 1024})
	sockproxy.deny == {"container.update nano_cpus 4000000000 is over update_limits.max_nano_cpus 2000000000"} with input as update({"nano_cpus": 4000000000})
		with data.sockproxy.config.update_limits as l
	sockproxy.deny == {"container.update cpu_quota is not allowed while update_limits.max_nano_cpus is set: use NanoCpus"} with input as update({"cpu_quota": 400000})
		with data.sockproxy.config.update_limits as l
	sockproxy.deny == {"container.update cpu_shares 4096 is over update_limits.max_cpu_shares 1024"} with input as update({"cpu_shares": 4096})
		with data.sockproxy.config.update_limits as l
}

test_update_pids_bound if {
	l := limits({"max_pids": 100})
	sockproxy.deny == {"container.update pids_limit -1 is not within update_limits.max_pids 100 (0 and -1 mean unlimited)"} with input as update({"pids_limit": -1})
		with data.sockproxy.config.update_limits as l
	sockproxy.deny == {"container.update pids_limit 500 is not within update_limits.max_pids 100 (0 and -1 mean unlimited)"} with input as update({"pids_limit": 500})
		with data.sockproxy.config.update_limits as l
	count(sockproxy.deny) == 0 with input as update({"pids_limit": 50}) with data.sockproxy.config.update_limits as l
	count(sockproxy.deny) == 0 with input as update({}) with data.sockproxy.config.update_limits as l
}

test_update_restart_policy if {
	sockproxy.deny == {"container.update restart policy always is not allowed: update_limits.restart_policies are no, on-failure"} with input as update({"restart_policy": {"name": "always", "maximum_retry_count": 0}})
		with data.sockproxy.config.update_limits as limits({"restart_policies": ["no", "on-failure"]})
	sockproxy.deny == {"container.update restart retries 50 are over update_limits.max_restart_retries 5"} with input as update({"restart_policy": {"name": "on-failure", "maximum_retry_count": 50}})
		with data.sockproxy.config.update_limits as limits({"max_restart_retries": 5})
}

test_update_without_facts_refused if {
	sockproxy.deny == {"container.update without a body: nothing to judge, refused"} with input as req("container.update", {})
}

# --- container.archive.put

put(target) := req("container.archive.put", {"method": "PUT", "query": {"path": ["/tmp"]}, "target": target})

test_archive_put_needs_no_new_privileges if {
	sockproxy.deny == {"archive put into container sandbox is not allowed: it does not run with no-new-privileges, so files written into it (setuid binaries) could make an exec root; create it with SecurityOpt no-new-privileges"} with input as put({"kind": "container", "no_new_privileges": false})
	count(sockproxy.deny) == 0 with input as put({"kind": "container", "no_new_privileges": true})
	count(sockproxy.deny) == 0 with input as put({"kind": "container"}) with data.sockproxy.config.require_non_root as false
}

test_archive_put_refused_into_writable_host_binds if {
	bind := {"type": "bind", "source": "/home/alice/projects", "destination": "/workspace", "read_only": false}
	sockproxy.deny == {"archive put into container sandbox is not allowed: host path /home/alice/projects is mounted writable at /workspace, and an archive is written there as root with the owners and modes it carries (setuid binaries, device nodes) for host users to run or open; write the files on the host instead"} with input as put({"kind": "container", "no_new_privileges": true, "mounts": [bind]})
	count(sockproxy.deny) == 0 with input as put({"kind": "container", "no_new_privileges": true, "mounts": [object.union(bind, {"read_only": true})]})
	count(sockproxy.deny) == 0 with input as put({"kind": "container", "no_new_privileges": true, "mounts": [{"type": "volume", "name": "v", "source": "/var/lib/docker/volumes/v/_data", "destination": "/v", "read_only": false}]})
}

test_archive_put_refused_into_writable_volumes_that_reach_the_host if {
	vol := {"type": "volume", "name": "v", "source": "/var/lib/docker/volumes/v/_data", "destination": "/data", "driver": "local", "read_only": false}
	sockproxy.deny == {"archive put into container sandbox is not allowed: volume v, mounted writable at /data, binds a host path (local driver options), and an archive is written there as root with the owners and modes it carries (setuid binaries, device nodes); write the files on the host instead"} with input as put({"kind": "container", "no_new_privileges": true, "mounts": [object.union(vol, {"local_mount": "bind"})]})
	sockproxy.deny == {"archive put into container sandbox is not allowed: volume v, mounted writable at /data, has driver sshfs, which may keep it anywhere, and an archive is written there as root with the owners and modes it carries (setuid binaries, device nodes); write the files on the host instead"} with input as put({"kind": "container", "no_new_privileges": true, "mounts": [object.union(vol, {"driver": "sshfs"})]})
	count(sockproxy.deny) == 0 with input as put({"kind": "container", "no_new_privileges": true, "mounts": [vol, object.union(vol, {"local_mount": "tmpfs"}), object.union(vol, {"local_mount": "bind", "read_only": true})]})
}

test_archive_get_and_export_allowed if {
	count(sockproxy.deny) == 0 with input as req("container.archive.get", {"method": "GET"})
	count(sockproxy.deny) == 0 with input as req("container.export", {"method": "GET"})
}

# --- container.commit

commit(user, changes) := req("container.commit", {"query": {"container": ["sandbox"], "changes": changes}, "commit": {"user": user}})

test_commit_refused_by_default if {
	sockproxy.deny == {"operation container.commit is refused by the policy (operations: deny)"} with input as commit("", [])
}

test_commit_judged if {
	ops := {"container.commit": "judge"}
	count(sockproxy.deny) == 0 with input as commit("1000", ["CMD [\"sh\"]", "ENV A=1"]) with data.sockproxy.config.operations as ops
	sockproxy.deny == {"commit with User 0:0 (uid 0) not allowed: the image's containers would run as root"} with input as commit("0:0", [])
		with data.sockproxy.config.operations as ops
	sockproxy.deny == {`commit change "  user  root" makes the image's user root: not allowed`} with input as commit("", ["  user  root"])
		with data.sockproxy.config.operations as ops
	sockproxy.deny == {`commit change "ONBUILD RUN id" is not allowed: allowed_commit_changes are CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, STOPSIGNAL`} with input as commit("", ["ONBUILD RUN id"])
		with data.sockproxy.config.operations as ops
}

# dockerd reads the changes as one Dockerfile: line breaks, quotes,
# escapes and variables in USER reach root past a plain-text check.
test_commit_user_change_as_dockerd_reads_it if {
	ops := {"container.commit": "judge"}
	sockproxy.deny == {"commit change \"ENV A=1\\nUSER root\" holds a line break: dockerd reads every line as an instruction; send one instruction per change"} with input as commit("", ["ENV A=1\nUSER root"])
		with data.sockproxy.config.operations as ops
	sockproxy.deny == {
		"commit change \"USER r\\\\\\noot\" holds a line break: dockerd reads every line as an instruction; send one instruction per change",
		"commit change \"USER r\\\\\\noot\": the user is not a plain name or uid[:gid] (dockerd would expand quotes, escapes and variables in it): not allowed",
	} with input as commit("", ["USER r\\\noot"])
		with data.sockproxy.config.operations as ops
	every change in ["USER \"root\"", "USER ro\\ot", "USER '0':0", "USER $X", "USER ${X}:0", "user  r''oot"] {
		sockproxy.deny == {sprintf("commit change %q: the user is not a plain name or uid[:gid] (dockerd would expand quotes, escapes and variables in it): not allowed", [change])} with input as commit("", ["ENV X=0", change])
			with data.sockproxy.config.operations as ops
	}
}

test_commit_plain_user_change_allowed if {
	ops := {"container.commit": "judge"}
	count(sockproxy.deny) == 0 with input as commit("", ["USER 1000:1000", "user sandbox", "USER app_1.x:staff-2"])
		with data.sockproxy.config.operations as ops
}

# update_limits null (an empty YAML value passes the data's validation):
# no bounds, as zeros, but no restart policy either, as an empty list.
test_update_restart_policy_with_null_limits if {
	sockproxy.deny == {"container.update restart policy always is not allowed: update_limits.restart_policies are none"} with input as update({"restart_policy": {"name": "always", "maximum_retry_count": 0}})
		with data.sockproxy.config.update_limits as null
	count(sockproxy.deny) == 0 with input as update({"memory": 1073741824})
		with data.sockproxy.config.update_limits as null
}
