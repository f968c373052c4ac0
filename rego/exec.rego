# Rules for exec.create: the exec'd process gets its own user and privilege,
# whatever the container was created with.
package sockproxy.lib.exec

# One read of the settings per decision: references into a rule value are
# cheaper than reads from the store.
settings := data.sockproxy.config

import data.sockproxy.lib.util

deny contains "exec.create without normalized facts (input.exec): refused" if {
	not input.exec
}

deny contains "exec privileged is not allowed: it gives the process every capability of the host" if {
	input.exec.privileged == true
	not settings.allow_privileged
}

deny contains msg if some msg in util.user_deny
