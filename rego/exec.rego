# Rules for exec.create: the exec'd process gets its own user and privilege,
# whatever the container was created with.
package sockproxy.lib.exec

# The settings in force for this caller (base settings with the caller's
# profile merged over them), read once per decision.
settings := data.sockproxy.lib.profile.settings

import data.sockproxy.lib.util

deny contains "exec.create without normalized facts (input.exec): refused" if {
	not input.exec
}

deny contains "exec privileged is not allowed: it gives the process every capability of the host" if {
	input.exec.privileged == true
	not settings.allow_privileged
}

deny contains msg if some msg in util.user_deny

# An exec gets the process settings of its container: in a privileged one
# every capability stays in its bounding set, with the host's devices and
# no seccomp or AppArmor confinement, a setuid or file-capability binary
# away from root on the host, whatever the exec's own flags.
deny contains msg if {
	input.target.privileged == true
	not settings.allow_privileged
	msg := sprintf("exec into container %s is not allowed: it runs privileged, so every process exec'd in it keeps every capability and device of the host within reach", [input.vars.name])
}
