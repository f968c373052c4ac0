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
	label := data.break_glass.incident_label
	not regex.match(data.break_glass.incident_pattern, object.get(input.container.labels, label, ""))
	msg := sprintf("break-glass containers need the label %s=<incident ID> matching %s (e.g. docker run --label %s=INC-1234)", [label, data.break_glass.incident_pattern, label])
}
