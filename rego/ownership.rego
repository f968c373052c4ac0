# Ownership (opt-in: ownership.enabled). Containers, networks and volumes
# created through the proxy carry owner labels naming the caller's uid
# (written by the input builder into the body dockerd receives). A caller
# may act only on what it owns; admins (ownership.admin_uids,
# ownership.admin_groups) on everything. Objects without an owner label
# (created before the proxy, or by an anonymous caller) are the admins'
# unless ownership.unowned is "anyone". Operations in
# ownership.shared_operations (reads such as logs and stats) and reads that
# name no resolved target (inspect, lists) are open to everyone: an agent
# runtime inspects every container.
package sockproxy.lib.ownership

import data.sockproxy.lib.profile

own := profile.settings.ownership

uid_label := "io.sockproxy.owner.uid"

admin if {
	input.caller.known
	input.caller.uid in own.admin_uids
}

admin if {
	input.caller.known
	some g in input.caller.groups
	g in own.admin_groups
}

# The object whose owner decides: for network.connect and
# network.disconnect the container (the network is judged by
# allowed_networks or its own owner, in the network rules).
object := input.target.container if {
	input.operation in {"network.connect", "network.disconnect"}
} else := input.target if {
	not input.operation in {"network.connect", "network.disconnect"}
	input.target.kind in {"container", "network", "volume"}
}

# owns(o): the caller may act on object o as its owner.
owns(o) if {
	o.owner.known
	input.caller.known
	o.owner.uid == input.caller.uid
}

owns(o) if {
	not o.owner.known
	own.unowned == "anyone"
}

deny contains msg if {
	own.enabled
	not input.operation in own.shared_operations
	o := object
	not admin
	not owns(o)
	msg := sprintf("%s %s %s: only its owner or an admin may %s it", [o.kind, object_text(o), owner_text(o), input.operation])
}

object_text(o) := o.ref if o.ref == o.name

else := sprintf("%s (%s)", [o.ref, o.name]) if o.name != ""

else := o.ref

owner_text(o) := sprintf("belongs to uid %d (%s)", [o.owner.uid, o.owner.user]) if {
	o.owner.known
	o.owner.user != ""
} else := sprintf("belongs to uid %d", [o.owner.uid]) if {
	o.owner.known
} else := "has no owner label"

# filter: for list and event operations, what the proxy keeps of the
# response when ownership is on (see docs/ownership.md): objects whose
# owner uid label is one of values, and with include_unowned those without
# an owner (no uid label, or one that names no uid). Undefined (keep
# everything) for admins and other operations.
list_operations := {"container.list", "network.list", "volume.list", "system.events"}

filter := {
	"label": uid_label,
	"values": caller_values,
	"include_unowned": own.unowned == "anyone",
} if {
	own.enabled
	input.operation in list_operations
	not admin
}

caller_values := [sprintf("%d", [input.caller.uid])] if input.caller.known

else := []
