# Helpers shared by the library's rule packages.
package sockproxy.lib.util

# The settings in force for this caller (base settings with the caller's
# profile merged over them), computed once per decision by the profile
# package: imported, not copied into a rule here, which every decision
# would evaluate again.
import data.sockproxy.lib.profile.settings

# list_text renders an allowlist for a message: "a, b" or "none".
list_text(xs) := concat(", ", [sprintf("%v", [x]) | some x in xs]) if count(xs) > 0

else := "none"

# user_text names a user for a message: "root", "1000:1000".
user_text(u) := u.value if u.value != ""

else := "root"

# user_origin explains where an effective user came from.
user_origin(u) := ", the image's default" if {
	u.source == "image"
} else := ", the container's user" if {
	u.source == "container"
} else := ", the exec instance's user" if {
	u.source == "exec"
} else := ""

# The user a judged operation runs its process as, and how messages name it.
subject := {"user": input.container.user, "prefix": "user"} if input.operation == "container.create"

subject := {"user": input.exec.user, "prefix": "exec user"} if input.operation in {"exec.create", "exec.start"}

# on(key): the boolean setting at key (a name, or a path as an array) is
# true. An empty YAML value passes the data's validation as null, which
# `not settings.allow_x` would read as set (only false and undefined
# fail): refusals test `not on(...)`, so null, false and absent allow nothing.
on(key) if object.get(settings, key, false) == true

# user_deny are the refusals of the user rules, shared by container.create
# and exec.create.
user_deny contains msg if {
	settings.require_non_root
	subject.user.root
	msg := sprintf("%s %s (uid 0%s) not allowed: set User to a non-root uid", [subject.prefix, user_text(subject.user), user_origin(subject.user)])
}

user_deny contains msg if {
	subject.user.resolved == false
	subject.user.root == false
	not on("allow_unresolved_users")
	msg := sprintf("%s %q%s cannot be resolved to a uid: set User to a numeric uid[:gid]", [subject.prefix, subject.user.value, user_origin(subject.user)])
}

user_deny contains msg if {
	count(settings.allowed_uids) > 0
	not subject.user.uid in settings.allowed_uids
	msg := sprintf("%s %s (uid %d) is not in allowed_uids: %s", [subject.prefix, user_text(subject.user), subject.user.uid, list_text(settings.allowed_uids)])
}

user_deny contains msg if {
	count(settings.allowed_gids) > 0
	not subject.user.gid in settings.allowed_gids
	msg := sprintf("%s %s (gid %d) is not in allowed_gids: %s", [subject.prefix, user_text(subject.user), subject.user.gid, list_text(settings.allowed_gids)])
}

# root_user(s): the user string s ("user[:group]") runs as uid 0: empty,
# "root", or a number that is zero in any spelling ("0", "00", "+0").
root_user(s) if {
	u := split(s, ":")[0]
	u in {"", "root"}
}

root_user(s) if {
	u := split(s, ":")[0]
	regex.match(`^[+-]?0+$`, u)
}

# image_ref(repo, tag) is the reference dockerd writes for repo and tag
# query parameters: the tag defaults to latest unless repo carries one; a
# tag parameter replaces any tag or digest repo carries (reference.WithTag).
image_ref(repo, "") := repo if has_tag(repo)

else := concat("", [repo, ":latest"])

image_ref(repo, tag) := concat("", [repo_name(repo), ":", tag]) if tag != ""

# repo_name(repo) is repo without its tag and digest. A colon in the last
# path segment starts the tag; one in the first is a registry's port.
repo_name(repo) := name if {
	no_digest := split(repo, "@")[0]
	parts := split(no_digest, "/")
	last := parts[count(parts) - 1]
	base := split(last, ":")[0]
	name := concat("/", array.concat(array.slice(parts, 0, count(parts) - 1), [base]))
}

has_tag(repo) if contains(repo, "@")

has_tag(repo) if {
	parts := split(repo, "/")
	contains(parts[count(parts) - 1], ":")
}

# glob_any(patterns, s): s matches one of the globs (* crosses slashes).
glob_any(patterns, s) if {
	some p in patterns
	glob.match(p, null, s)
}

# option_text(k, v) is "k=v" for a refusal message, with the value of a
# secret-looking key (a CIFS password=, a token) and such pairs inside a
# comma-separated value (o=addr=srv,password=p) redacted: refusal messages
# reach the client, the audit log and the decision logs. The same rule as
# the audit facts' redaction (policy/facts.go RedactOptions).
option_text(k, v) := sprintf("%s=<redacted>", [k]) if secret_key(k)

else := sprintf("%s=%s", [k, redacted_pairs(v)])

redacted_pairs(v) := concat(",", [redacted_pair(part) | some part in split(v, ",")])

redacted_pair(part) := sprintf("%s=<redacted>", [kv[0]]) if {
	kv := split(part, "=")
	count(kv) > 1
	secret_key(kv[0])
} else := part

secret_key(k) if regex.match(`(?i)pass|secret|token|cred|auth|api[_.-]?key|private[_.-]?key|access[_.-]?key`, k)
