# The monitoring profile is read-only: any operation outside
# data.monitoring.read_operations is refused for callers the profile
# matches. Rules in package sockproxy add to the library's deny set; they
# cannot remove its refusals.
package sockproxy

import data.sockproxy.lib.profile

deny contains msg if {
	profile.name == "monitoring"
	not input.operation in monitoring_read_operations
	msg := sprintf("operation %s is not allowed for the read-only monitoring profile (data.monitoring.read_operations)", [input.operation])
}

# data.monitoring.read_operations, none when it is missing or not a list (a
# misspelt key, an empty YAML value): `not op in` an undefined list would
# refuse nothing.
monitoring_read_operations := r if {
	r := data.monitoring.read_operations
	is_array(r)
} else := []
