# The built-in policy of sockproxy. A request is allowed when data.sockproxy.deny
# is empty; user modules in package sockproxy add to the same deny and warn sets.
#
# Every operation gets its action from the operations table of the settings
# in force (data.sockproxy.config, with the caller's profile merged over it):
#   allow - forwarded, subject only to the rules that hold for every
#           operation (ownership, form bodies),
#   deny  - refused,
#   judge - the library's rules for that operation decide as well.
# An operation missing from the table is refused, so a new route never falls
# through silently.
package sockproxy

import data.sockproxy.lib.container
import data.sockproxy.lib.create
import data.sockproxy.lib.exec
import data.sockproxy.lib.image
import data.sockproxy.lib.network
import data.sockproxy.lib.ownership
import data.sockproxy.lib.profile
import data.sockproxy.lib.volume

# The operations the library has rules for: "judge" means nothing for others.
judged_operations := {
	"container.create", "container.start", "container.update", "container.archive.put", "container.commit",
	"exec.create", "exec.start", "network.connect", "network.create", "volume.create",
	"image.create", "image.tag", "image.push", "image.build",
}

action := profile.settings.operations[input.operation]

deny contains "request has no operation: refused" if {
	not input.operation
}

# The refusals of the action itself (none, deny, or not a known action)
# are reached through one rule whose first expression fails for the
# actions that go on (allow, judge): every request pays for the rules
# here, so the allowed path evaluates as few of them as it can.
deny contains msg if {
	not action_goes_on
	some msg in action_deny
}

# A helper rule rather than `not action in {...}` in the rule above: that
# form does not hold when action is undefined (no operation, or one missing
# from the table), which must be refused.
action_goes_on if action in {"allow", "judge"}

action_deny contains msg if {
	input.operation
	not profile.settings.operations[input.operation]
	msg := sprintf("operation %s is not allowed by the default policy", [input.operation])
}

action_deny contains msg if {
	action == "deny"
	msg := sprintf("operation %s is refused by the policy (operations: deny)", [input.operation])
}

action_deny contains msg if {
	a := action
	not a in {"allow", "deny", "judge"}
	msg := sprintf("operation %s has action %q in the operations table: use allow, deny or judge", [input.operation, action])
}

deny contains msg if {
	action == "judge"
	not input.operation in judged_operations
	msg := sprintf("operation %s is set to judge but the library has no rules for it: set it to allow or deny", [input.operation])
}

# Rules that hold for every operation that is not refused outright.

# dockerd's handlers parse a form-encoded body (Go's ParseForm) and its
# values override the query: the policy judged the query, so such a body
# is never forwarded.
deny contains msg if {
	input.form_body == true
	msg := sprintf("%s with a form-encoded body (Content-Type: application/x-www-form-urlencoded): its parameters would override the query the policy judged; send them in the query", [input.operation])
}

deny contains msg if {
	action in {"allow", "judge"}
	some msg in ownership.deny
}

# filter tells the proxy what to keep of a list or event response (see
# data.sockproxy.lib.ownership.filter); undefined means everything.
filter := ownership.filter

# Rules of judged operations.

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
	input.operation in {"exec.create", "exec.start"}
	action == "judge"
	some msg in exec.deny
}

deny contains msg if {
	input.operation in {"network.connect", "network.create"}
	action == "judge"
	some msg in network.deny
}

deny contains msg if {
	input.operation == "volume.create"
	action == "judge"
	some msg in volume.deny
}

deny contains msg if {
	input.operation in {"container.start", "container.update", "container.archive.put", "container.commit"}
	action == "judge"
	some msg in container.deny
}

deny contains msg if {
	input.operation in {"image.create", "image.tag", "image.push", "image.build", "container.commit"}
	action == "judge"
	some msg in image.deny
}
