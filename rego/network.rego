# Rules for network.connect: a runtime joins its sandbox network after start,
# so network membership is judged here as well as at create.
package sockproxy.lib.network

# One read of the settings per decision: references into a rule value are
# cheaper than reads from the store.
settings := data.sockproxy.config

import data.sockproxy.lib.util

# The network as the daemon resolved it (input.target, when the normalizer
# looked it up), else the reference from the path.
ref := input.vars.id if input.vars.id

else := ""

name := input.target.name if input.target.name

else := ref

id := input.target.id if input.target.id

else := ""

deny contains "network.connect without a network reference: refused" if ref == ""

deny contains msg if {
	ref != ""
	not allowed
	msg := sprintf("network %s is not allowed: only %s allowed", [text, util.list_text(settings.allowed_networks)])
}

allowed if name in settings.allowed_networks

allowed if {
	id != ""
	id in settings.allowed_networks
}

# "default" is the bridge network's other name.
allowed if {
	name == "bridge"
	"default" in settings.allowed_networks
}

text := ref if ref == name

text := sprintf("%s (%s)", [ref, name]) if ref != name
