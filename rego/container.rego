# Rules for operations on an existing container that can undo its
# create-time policy: start (a body replaces the HostConfig below API 1.24),
# update (resources and restart policy), archive put (files written into
# it) and commit (an image made from it).
package sockproxy.lib.container

# The settings in force for this caller (base settings with the caller's
# profile merged over them), computed once per decision by the profile
# package: imported, not copied into a rule here, which every decision
# would evaluate again.
import data.sockproxy.lib.profile.settings

import data.sockproxy.lib.util

# --- container.start

deny contains "container.start with a request body: below API 1.24 it replaces the container's HostConfig (dockerd >= 1.24 refuses bodies over 7 bytes); send none" if {
	input.operation == "container.start"
	input.body_size > 7
}

# --- container.update: only the fields dockerd applies, within bounds

limits := settings.update_limits

upd := input.update

deny contains "container.update without a body: nothing to judge, refused" if {
	input.operation == "container.update"
	not input.update
}

deny contains msg if {
	input.operation == "container.update"
	some f in upd.other
	msg := sprintf("container.update sets %s: only Memory, MemoryReservation, MemorySwap, NanoCpus, CpuShares, CpuPeriod, CpuQuota, CpusetCpus, CpusetMems, BlkioWeight, PidsLimit and RestartPolicy can be judged", [f])
}

deny contains msg if {
	input.operation == "container.update"
	limits.max_memory > 0
	some key in ["memory", "memory_reservation"]
	upd[key] > limits.max_memory
	msg := sprintf("container.update %s %d is over update_limits.max_memory %d", [key, upd[key], limits.max_memory])
}

# MemorySwap is memory plus swap; -1 lifts the bound altogether.
deny contains msg if {
	input.operation == "container.update"
	limits.max_memory_swap > 0
	upd.memory_swap != 0
	not memory_swap_within(upd.memory_swap)
	msg := sprintf("container.update memory_swap %d is not within update_limits.max_memory_swap %d (-1 means unlimited)", [upd.memory_swap, limits.max_memory_swap])
}

memory_swap_within(v) if {
	v > 0
	v <= limits.max_memory_swap
}

deny contains msg if {
	input.operation == "container.update"
	limits.max_nano_cpus > 0
	upd.nano_cpus > limits.max_nano_cpus
	msg := sprintf("container.update nano_cpus %d is over update_limits.max_nano_cpus %d", [upd.nano_cpus, limits.max_nano_cpus])
}

# With a CPU bound, quota and period would set the CPU share around it.
deny contains msg if {
	input.operation == "container.update"
	limits.max_nano_cpus > 0
	some key in ["cpu_quota", "cpu_period"]
	upd[key] != 0
	msg := sprintf("container.update %s is not allowed while update_limits.max_nano_cpus is set: use NanoCpus", [key])
}

deny contains msg if {
	input.operation == "container.update"
	limits.max_cpu_shares > 0
	upd.cpu_shares > limits.max_cpu_shares
	msg := sprintf("container.update cpu_shares %d is over update_limits.max_cpu_shares %d", [upd.cpu_shares, limits.max_cpu_shares])
}

deny contains msg if {
	input.operation == "container.update"
	limits.max_pids > 0
	upd.pids_limit != null
	not pids_within(upd.pids_limit)
	msg := sprintf("container.update pids_limit %d is not within update_limits.max_pids %d (0 and -1 mean unlimited)", [upd.pids_limit, limits.max_pids])
}

pids_within(n) if {
	n > 0
	n <= limits.max_pids
}

deny contains msg if {
	input.operation == "container.update"
	upd.restart_policy.name != ""
	not upd.restart_policy.name in restart_policies
	msg := sprintf("container.update restart policy %s is not allowed: update_limits.restart_policies are %s", [upd.restart_policy.name, util.list_text(restart_policies)])
}

# update_limits.restart_policies; none when update_limits or the list is
# null (an empty YAML value passes the data's validation), where `not x in`
# the undefined list would not refuse. (Null bounds are no bound, as 0.)
restart_policies := p if {
	p := limits.restart_policies
	is_array(p)
} else := []

deny contains msg if {
	input.operation == "container.update"
	limits.max_restart_retries > 0
	upd.restart_policy.maximum_retry_count > limits.max_restart_retries
	msg := sprintf("container.update restart retries %d are over update_limits.max_restart_retries %d", [upd.restart_policy.maximum_retry_count, limits.max_restart_retries])
}

# --- container.archive.put: files written into a container (a setuid
# shell, /etc/passwd) can make a later non-root exec root inside it, unless
# the container runs with no-new-privileges.

deny contains msg if {
	input.operation == "container.archive.put"
	settings.require_non_root
	not input.target.no_new_privileges
	msg := sprintf("archive put into container %s is not allowed: it does not run with no-new-privileges, so files written into it (setuid binaries) could make an exec root; create it with SecurityOpt no-new-privileges", [input.vars.name])
}

# An archive is written as root with the owners and modes it carries:
# setuid root binaries and device nodes land as such. In a writable host
# bind, host users can run or open them, whatever the container's
# no-new-privileges or device cgroup. Judged by the container, not by the
# path: a symlink inside the container can lead any path into the bind.
deny contains msg if {
	input.operation == "container.archive.put"
	some m in input.target.mounts
	m.type == "bind"
	not m.read_only
	msg := sprintf("archive put into container %s is not allowed: host path %s is mounted writable at %s, and an archive is written there as root with the owners and modes it carries (setuid binaries, device nodes) for host users to run or open; write the files on the host instead", [input.vars.name, m.source, m.destination])
}

# The same through a writable volume that reaches the host: a local volume
# whose options bind or overlay a host path, or mount a device or a network
# share; or a volume of another driver, which may put it anywhere.
deny contains msg if {
	input.operation == "container.archive.put"
	some m in input.target.mounts
	m.type == "volume"
	not m.read_only
	what := volume_reach(m)
	msg := sprintf("archive put into container %s is not allowed: volume %s, mounted writable at %s, %s, and an archive is written there as root with the owners and modes it carries (setuid binaries, device nodes); write the files on the host instead", [input.vars.name, m.name, m.destination, what])
}

volume_reach(m) := sprintf("%s (local driver options)", [data.sockproxy.lib.volume.kind_text[m.local_mount]]) if {
	m.local_mount in {"bind", "overlay", "device", "network"}
}

volume_reach(m) := sprintf("has driver %s, which may keep it anywhere", [m.driver]) if {
	m.driver
	m.driver != "local"
}

# --- container.commit: the image's config (body) and Dockerfile changes

deny contains msg if {
	input.operation == "container.commit"
	settings.require_non_root
	input.commit.user != ""
	util.root_user(input.commit.user)
	msg := sprintf("commit with User %s (uid 0) not allowed: the image's containers would run as root", [input.commit.user])
}

# dockerd reads every `changes` value as one Dockerfile instruction.
changes := object.get(input.query, "changes", [])

deny contains msg if {
	input.operation == "container.commit"
	some line in changes
	instr := instruction(line)
	not instr.name in settings.allowed_commit_changes
	msg := sprintf("commit change %q is not allowed: allowed_commit_changes are %s", [line, util.list_text(settings.allowed_commit_changes)])
}

deny contains msg if {
	input.operation == "container.commit"
	settings.require_non_root
	some line in changes
	instr := instruction(line)
	instr.name == "USER"
	util.root_user(instr.arg)
	msg := sprintf("commit change %q makes the image's user root: not allowed", [line])
}

# dockerd joins the changes with line breaks and reads them as one
# Dockerfile (a trailing backslash continues a line): a change holding a
# line break carries instructions its first word does not name.
deny contains msg if {
	input.operation == "container.commit"
	some line in changes
	regex.match(`[\r\n]`, line)
	msg := sprintf("commit change %q holds a line break: dockerd reads every line as an instruction; send one instruction per change", [line])
}

# dockerd expands quotes, backslash escapes and variables (of the
# container's environment and earlier ENV changes) in USER: `USER "root"`,
# `USER ro\ot` and `USER $X` with X=0 are root. Only a plain user[:group]
# can be judged.
deny contains msg if {
	input.operation == "container.commit"
	some line in changes
	instr := instruction(line)
	instr.name == "USER"
	not regex.match(`^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$`, instr.arg)
	msg := sprintf("commit change %q: the user is not a plain name or uid[:gid] (dockerd would expand quotes, escapes and variables in it): not allowed", [line])
}

instruction(line) := {"name": upper(parts[0]), "arg": trim_space(substring(t, count(parts[0]), -1))} if {
	t := trim_space(line)
	parts := regex.split(`\s+`, t)
}
