package sockproxy.lib.image_test

import data.sockproxy
import data.sockproxy.fixtures as f

pull(query) := object.union(f.request("image.create"), {"method": "POST", "query": query})

test_pull_allowed if {
	count(sockproxy.deny) == 0 with input as pull({"fromImage": ["busybox"], "tag": ["latest"]})
}

test_import_refused if {
	sockproxy.deny == {"image import (fromSrc=-) is not allowed: set allow_image_import"} with input as pull({"fromSrc": ["-"], "repo": ["x"]})
	count(sockproxy.deny) == 0 with input as pull({"fromSrc": ["-"]}) with data.sockproxy.config.allow_image_import as true
}

test_pull_checked_against_allowed_images if {
	req := pull({"fromImage": ["docker.openhands.dev/openhands/runtime"], "tag": ["0.62-nikolaik"]})
	count(sockproxy.deny) == 0 with input as req with data.sockproxy.config.allowed_images as ["docker.openhands.dev/openhands/*"]
	sockproxy.deny == {"image docker.openhands.dev/openhands/runtime:0.62-nikolaik is not allowed: allowed_images are busybox:*"} with input as req
		with data.sockproxy.config.allowed_images as ["busybox:*"]
}

test_pull_by_digest if {
	req := pull({"fromImage": ["busybox"], "tag": ["sha256:abc"]})
	count(sockproxy.deny) == 0 with input as req with data.sockproxy.config.allowed_images as ["busybox@sha256:*"]
}

test_first_query_value_counts if {
	req := pull({"fromImage": ["busybox", "evil/image"]})
	count(sockproxy.deny) == 0 with input as req with data.sockproxy.config.allowed_images as ["busybox"]
}

test_empty_create_refused if {
	sockproxy.deny == {"image.create without fromImage or fromSrc: refused"} with input as pull({})
}
