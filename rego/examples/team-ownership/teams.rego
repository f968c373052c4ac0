# Names of team objects: a team's networks and volumes carry its prefix,
# so that allowed_networks entries (team-a-sandboxes) cannot be created by
# another team before the owner does. Unnamed volumes get a random name
# from dockerd and are fine. Callers in no team (admins, other
# users) are not concerned.
package sockproxy

import data.examples.teams

deny contains msg if {
	input.operation in {"network.create", "volume.create"}
	team := teams.caller_team
	name := teams.created_name
	name != "" # dockerd names it: 64 hex digits, no team's prefix
	not teams.prefixed(name, team) # false, so refused, for an entry without a prefix
	msg := sprintf("%s %q: %s may only create names starting with %q", [input.operation, name, object.get(team, "name", "its team"), object.get(team, "prefix", "")])
}
