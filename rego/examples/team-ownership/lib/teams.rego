# Helpers of teams.rego, in their own package: package sockproxy holds the
# library's rules too, and a helper there could clash with one of its names.
package examples.teams

# caller_team is the team whose uids include the caller (undefined for
# callers in no team, and for callers the kernel could not name).
caller_team := team if {
	input.caller.known
	some team in data.teams
	input.caller.uid in team.uids
}

# prefixed(name, team): name starts with the team's prefix. A function
# rather than `not startswith(name, team.prefix)` in the rule: that form
# does not refuse when the entry has no prefix (undefined).
prefixed(name, team) if startswith(name, team.prefix)

# created_name is the name a network.create or volume.create asks for
# ("" for a volume dockerd will name itself).
created_name := input.network.name if input.operation == "network.create"

created_name := input.volume.name if input.operation == "volume.create"
