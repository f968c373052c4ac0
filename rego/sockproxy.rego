# The built-in policy of sockproxy. A request is allowed when data.sockproxy.deny
# is empty; user modules in package sockproxy add to the same deny and warn sets.
#
# Every operation gets its action from data.sockproxy.config.operations:
#   allow - forwarded without further rules,
#   deny  - refused,
#   judge - the library's rules for that operation decide.
# An operation missing from the table is refused, so a new route never falls
# through silently.
package sockproxy

import data.sockproxy.config
import data.sockproxy.lib.create
import data.sockproxy.lib.exec
import data.sockproxy.lib.image
import data.sockproxy.lib.network

# The operations the library has rules for: "judge" means nothing for others.
judged_operations := {"container.create", "exec.create", "network.connect", "image.create"}

action := config.operations[input.operation]

deny contains "request has no operation: refused" if {
	not input.operation
}

deny contains msg if {
	input.operation
	not config.operations[input.operation]
	msg := sprintf("operation %s is not allowed by the default policy", [input.operation])
}

deny contains msg if {
	action == "deny"
	msg := sprintf("operation %s is refused by the policy (operations: deny)", [input.operation])
}

deny contains msg if {
	a := action
	not a in {"allow", "deny", "judge"}
	msg := sprintf("operation %s has action %q in the operations table: use allow, deny or judge", [input.operation, action])
}

deny contains msg if {
	action == "judge"
	not input.operation in judged_operations
	msg := sprintf("operation %s is set to judge but the library has no rules for it: set it to allow or deny", [input.operation])
}

deny contains msg if {
	input.operation == "container.create"
	action == "judge"
	some msg in create.deny
}

warn contains msg if {
	input.operation == "container.create"
	action == "judge"
	some msg in create.warn
}

deny contains msg if {
	input.operation == "exec.create"
	action == "judge"
	some msg in exec.deny
}

deny contains msg if {
	input.operation == "network.connect"
	action == "judge"
	some msg in network.deny
}

deny contains msg if {
	input.operation == "image.create"
	action == "judge"
	some msg in image.deny
}
