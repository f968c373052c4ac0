package sockproxy.lib.profile_test

import data.sockproxy
import data.sockproxy.fixtures as f
import data.sockproxy.lib.profile

profiles := [
	{"name": "ci", "match": {"uids": [1500], "groups": ["ci"]}, "config": {"operations": {"image.build": "judge"}, "writable_images": ["ci/*"]}},
	{"name": "monitoring", "match": {"users": ["prometheus"]}, "config": {"operations": {"container.stop": "deny", "container.create": "deny"}}},
	{"name": "late", "match": {"uids": [1500]}, "config": {"operations": {"image.build": "deny"}}},
]

caller(c) := object.union(f.request("image.build"), {"method": "POST", "query": {"networkmode": ["default"], "t": ["ci/app:1"]}, "caller": c})

ci_uid := {"known": true, "uid": 1500, "gid": 1500, "pid": 1, "user": "runner"}

test_first_matching_profile_applies if {
	profile.name == "ci" with input as caller(ci_uid) with data.sockproxy.config.profiles as profiles
	count(sockproxy.deny) == 0 with input as caller(ci_uid) with data.sockproxy.config.profiles as profiles
}

test_profile_merges_key_by_key if {
	s := profile.settings with input as caller(ci_uid) with data.sockproxy.config.profiles as profiles
	s.operations["image.build"] == "judge"
	s.operations["container.create"] == "judge"
	s.writable_images == ["ci/*"]
	s.allowed_host_ips == ["127.0.0.1", "::1"]
}

test_match_by_group if {
	c := {"known": true, "uid": 2000, "gid": 2000, "pid": 1, "user": "bot", "groups": ["bot", "ci"]}
	profile.name == "ci" with input as caller(c) with data.sockproxy.config.profiles as profiles
}

test_other_callers_get_the_base if {
	c := {"known": true, "uid": 1000, "gid": 1000, "pid": 1, "user": "alice"}
	profile.name == "" with input as caller(c) with data.sockproxy.config.profiles as profiles
	sockproxy.deny == {"operation image.build is refused by the policy (operations: deny)"} with input as caller(c)
		with data.sockproxy.config.profiles as profiles
}

test_read_only_profile if {
	c := {"known": true, "uid": 990, "gid": 990, "pid": 1, "user": "prometheus"}
	req := object.union(f.request("container.stop"), {"caller": c, "method": "POST"})
	sockproxy.deny == {"operation container.stop is refused by the policy (operations: deny)"} with input as req
		with data.sockproxy.config.profiles as profiles
	count(sockproxy.deny) == 0 with input as object.union(req, {"operation": "container.list"}) with data.sockproxy.config.profiles as profiles
}

test_anonymous_matches_no_profile if {
	c := {"known": false, "uid": 1500, "gid": 1500, "pid": 0}
	profile.name == "" with input as caller(c) with data.sockproxy.config.profiles as profiles
}
