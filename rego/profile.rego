# Per-caller profiles. data.sockproxy.config.profiles is a list of
# {name, match: {uids, gids, users, groups}, config: {...}}; the first
# profile whose match names the caller (any of its lists: uid, primary gid,
# user name, or one of the caller's groups) has its config merged over the
# base settings: objects key by key (operations, ownership), lists and
# scalars replaced. Callers the kernel could not identify (TCP) match no
# profile. Every rule of the library reads `settings`; user modules may
# read `settings` and `name` too.
package sockproxy.lib.profile

# The base settings: imported rather than copied into a rule, which every
# decision would evaluate again.
import data.sockproxy.config as base

# Indexes of the profiles matching the caller, in order.
matching := [i |
	some i, p in base.profiles
	matches(p.match)
]

# name is the matching profile's name ("" when none matches).
name := object.get(base.profiles[matching[0]], "name", sprintf("profiles[%d]", [matching[0]])) if count(matching) > 0

else := ""

# base.profiles[0] first: without profiles (the usual case) the settings
# are the base, found without evaluating matching.
settings := object.union(base, base.profiles[matching[0]].config) if {
	base.profiles[0]
	count(matching) > 0
} else := base

matches(m) if {
	input.caller.known
	input.caller.uid in object.get(m, "uids", [])
}

matches(m) if {
	input.caller.known
	input.caller.gid in object.get(m, "gids", [])
}

matches(m) if {
	input.caller.known
	input.caller.user != ""
	input.caller.user in object.get(m, "users", [])
}

matches(m) if {
	input.caller.known
	some g in input.caller.groups
	g in object.get(m, "groups", [])
}
