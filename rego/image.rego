# Rules for image.create: pulls (fromImage) are allowed, subject to
# allowed_images; imports (fromSrc) turn an arbitrary root filesystem into an
# image and are refused unless allow_image_import.
package sockproxy.lib.image

# One read of the settings per decision: references into a rule value are
# cheaper than reads from the store.
settings := data.sockproxy.config

import data.sockproxy.lib.util

query := input.query if input.query

else := {}

# dockerd reads the first value of a repeated query key.
first(key) := query[key][0]

deny contains msg if {
	src := first("fromSrc")
	src != ""
	not settings.allow_image_import
	msg := sprintf("image import (fromSrc=%s) is not allowed: set allow_image_import", [src])
}

deny contains "image.create without fromImage or fromSrc: refused" if {
	not nonempty("fromImage")
	not nonempty("fromSrc")
}

nonempty(key) if first(key) != ""

# The reference dockerd pulls: fromImage, with tag appended unless it is a
# digest or already carries one.
reference := ref if {
	image := first("fromImage")
	tag := object.get(query, ["tag", 0], "")
	ref := with_tag(image, tag)
}

with_tag(image, "") := image

with_tag(image, tag) := sprintf("%s@%s", [image, tag]) if startswith(tag, "sha256:")

with_tag(image, tag) := sprintf("%s:%s", [image, tag]) if {
	tag != ""
	not startswith(tag, "sha256:")
}

deny contains msg if {
	count(settings.allowed_images) > 0
	nonempty("fromImage")
	not allowed(reference)
	msg := sprintf("image %s is not allowed: allowed_images are %s", [reference, util.list_text(settings.allowed_images)])
}

allowed(ref) if {
	some pattern in settings.allowed_images
	glob.match(pattern, null, ref)
}
