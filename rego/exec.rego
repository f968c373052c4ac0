# Rules for exec.create and exec.start: the exec'd process gets its own user
# and privilege (exec.create), and everything its container reaches of the
# host (both), whatever the container was created with.
package sockproxy.lib.exec

# The settings in force for this caller (base settings with the caller's
# profile merged over them), computed once per decision by the profile
# package: imported, not copied into a rule here, which every decision
# would evaluate again.
import data.sockproxy.lib.profile.settings

import data.sockproxy.lib.create
import data.sockproxy.lib.mounts
import data.sockproxy.lib.util

# --- the exec's own settings (exec.create)

deny contains "exec.create without normalized facts (input.exec): refused" if {
	input.operation == "exec.create"
	not input.exec
}

deny contains "exec privileged is not allowed: it gives the process every capability of the host" if {
	input.exec.privileged == true
	not util.on("allow_privileged")
}

deny contains msg if some msg in util.user_deny

# --- the container's settings (exec.create, exec.start)

# An exec gets the process settings of its container: in a privileged one
# every capability stays in its bounding set, with the host's devices and
# no seccomp or AppArmor confinement, a setuid or file-capability binary
# away from root on the host, whatever the exec's own flags.
deny contains msg if {
	input.target.privileged == true
	not util.on("allow_privileged")
	msg := sprintf("exec into container %s is not allowed: it runs privileged, so every process exec'd in it keeps every capability and device of the host within reach", [container_text])
}

# A container made outside the proxy (by an administrator, before the proxy,
# or under another profile) may share the host's namespaces, hold added
# capabilities or devices, or mount host paths: every exec'd process gets
# them too. It is judged by the create rules with this caller's settings,
# so an exec gives no caller what its own create would be refused.
deny contains msg if {
	some reason in target_deny
	msg := sprintf("exec into container %s shares what this caller may not create: %s", [container_text, reason])
}

# The create rules' refusals with input.container as the container's host
# access (facts in the same shapes).
target_deny contains msg if {
	access := input.target.host_access
	some msg in create.namespace_deny with input.container as access
}

target_deny contains msg if {
	access := input.target.host_access
	some msg in create.privilege_deny with input.container as access
}

target_deny contains msg if {
	access := input.target.host_access
	some msg in mounts.mount_deny with input.container as access
}

# The container as the client named it (exec.create), or by its name
# (exec.start names an exec).
container_text := input.vars.name if input.operation == "exec.create"

else := input.target.name
