# Break-glass accountability: the library's settings (the profile in
# data.yaml) decide what break-glass may do; these rules make every use
# visible and tie its containers to an incident.
package sockproxy

import data.sockproxy.lib.profile

# warn messages are logged (level warn) and written to the audit record of
# the request; they never refuse it.
warn contains msg if {
	profile.name == "break-glass"
	msg := sprintf("break-glass: %s %s by uid %d (pid %d)", [input.operation, input.path, input.caller.uid, input.caller.pid])
}

deny contains msg if {
	profile.name == "break-glass"
	input.operation == "container.create"
	not break_glass_incident_named
	label := object.get(break_glass_data, "incident_label", "(data.break_glass.incident_label missing)")
	pattern := object.get(break_glass_data, "incident_pattern", "(data.break_glass.incident_pattern missing)")
	msg := sprintf("break-glass containers need the label %s=<incident ID> matching %s (e.g. docker run --label %s=INC-1234)", [label, pattern, label])
}

# data.break_glass, {} when missing (object.get(data, ...) would read all
# of data, this package's deny included).
break_glass_data := d if {
	d := data.break_glass
	is_object(d)
} else := {}

# A helper rule rather than `not regex.match(pattern, value)` in the rule
# above: that form does not refuse when an operand is undefined (data
# missing) or the call fails (a pattern that does not compile); this rule
# is then false and the create refused.
break_glass_incident_named if {
	value := input.container.labels[data.break_glass.incident_label]
	regex.match(data.break_glass.incident_pattern, value)
}
