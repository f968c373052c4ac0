# Helpers shared by the library's rule packages.
package sockproxy.lib.util

# within(p, root): p is root or lies below it, compared path segment by
# segment (/data2 is not within /data). Both are clean absolute paths.
within(p, root) if p == root

within(_, "/")

within(p, root) if {
	root != "/"
	startswith(p, concat("", [root, "/"]))
}

# list_text renders an allowlist for a message: "a, b" or "none".
list_text(xs) := "none" if count(xs) == 0

list_text(xs) := concat(", ", [sprintf("%v", [x]) | some x in xs]) if count(xs) > 0

# user_text names a user for a message: "root", "1000:1000", "the image's default user root".
user_text(u) := "root" if u.value == ""

user_text(u) := u.value if u.value != ""

# user_origin explains where an effective user came from.
user_origin(u) := ", the image's default" if u.source == "image"

user_origin(u) := ", the container's user" if u.source == "container"

user_origin(u) := "" if not u.source in {"image", "container"}

# user_denials are the refusals of the user rules, shared by container.create
# and exec.create; prefix is "user" or "exec user".
user_denials(u, prefix) := (({m | m := root_denial(u, prefix)} | {m | m := unresolved_denial(u, prefix)}) | {m | m := uid_denial(u, prefix)}) | {m | m := gid_denial(u, prefix)}

root_denial(u, prefix) := msg if {
	data.sockproxy.config.require_non_root
	u.root
	msg := sprintf("%s %s (uid 0%s) not allowed: set User to a non-root uid", [prefix, user_text(u), user_origin(u)])
}

unresolved_denial(u, prefix) := msg if {
	not u.root
	not u.resolved
	not data.sockproxy.config.allow_unresolved_users
	msg := sprintf("%s %q%s cannot be resolved to a uid: set User to a numeric uid[:gid]", [prefix, u.value, user_origin(u)])
}

uid_denial(u, prefix) := msg if {
	count(data.sockproxy.config.allowed_uids) > 0
	not u.uid in data.sockproxy.config.allowed_uids
	msg := sprintf("%s %s (uid %d) is not in allowed_uids: %s", [prefix, user_text(u), u.uid, list_text(data.sockproxy.config.allowed_uids)])
}

gid_denial(u, prefix) := msg if {
	count(data.sockproxy.config.allowed_gids) > 0
	not u.gid in data.sockproxy.config.allowed_gids
	msg := sprintf("%s %s (gid %d) is not in allowed_gids: %s", [prefix, user_text(u), u.gid, list_text(data.sockproxy.config.allowed_gids)])
}
