package toolkit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/audit"
	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
)

// ReplayNote says what a replay from an audit record cannot know.
const ReplayNote = "the audit record keeps no request body: it was rebuilt from the record's facts (image, user, mounts, ports, networks, privileged); capabilities, namespaces, security options, devices and other fields are absent. Give the original body with --body to judge it exactly"

// ReplayNoteExact qualifies a body rebuilt from the facts of a
// network.create, network.connect, volume.create or container.update: they
// hold every field the library judges, so the verdict is the recorded one.
const ReplayNoteExact = "the audit record keeps no request body: it was rebuilt from the record's facts, which hold every field the library judges for this operation"

// ReplayNoteRedacted is added when option values were redacted in the log.
const ReplayNoteRedacted = "option values under secret-looking keys were redacted in the audit log and are judged as " + policy.Redacted + " (the library judges option keys, not these values)"

// rebuildsFromFacts are the operations whose bodies replay rebuilds from
// an audit record's facts.
var rebuildsFromFacts = map[string]bool{
	"container.create": true, "exec.create": true, "network.create": true,
	"network.connect": true, "volume.create": true, "container.update": true,
}

func replayNote(r *audit.Record) string {
	switch r.Operation {
	case "container.create", "exec.create":
		return ReplayNote
	}
	raw, _ := json.Marshal(r.Facts)
	if strings.Contains(string(raw), policy.Redacted) {
		return ReplayNoteExact + "; " + ReplayNoteRedacted
	}
	return ReplayNoteExact
}

// Replayed is an audit record judged again, or why it cannot be.
type Replayed struct {
	Spec RequestSpec
	// Judgement is the verdict on Spec; nil when the request could not be
	// rebuilt (NotReproduced says why).
	Judgement *Judgement
	// NotReproduced says what of the recorded request the replay cannot
	// reproduce, so that its verdict would not be the recorded request's:
	// a judged body the record does not keep, or an object the request
	// named that is gone from the daemon. "" when the replay is a verdict.
	NotReproduced string
	// Notes qualify a verdict (a body rebuilt from facts, a body given
	// that is not the one recorded).
	Notes []string
}

// Replay judges the request of audit record r again with the policy and
// daemon facts of opts. body is the original request body when known
// (nil: rebuilt from the record's facts where it can be). The audit log
// keeps no bodies (they carry secrets: Env, registry credentials), only the
// SHA-256 of a forwarded one: a body given is checked against it.
//
// A replay never turns what it cannot reproduce into a refusal: a request
// judged on a body the record does not keep, or one whose target (or a
// container's image user) is gone from the daemon while it was there when
// recorded, is NotReproduced, with the reason and what to supply.
func (p *Policy) Replay(ctx context.Context, r *audit.Record, body []byte, opts input.Options) (*Replayed, error) {
	spec, rebuilt := ReplaySpec(r, body)
	rp := &Replayed{Spec: spec}
	if rebuilt {
		rp.Notes = append(rp.Notes, replayNote(r))
	}
	if body == nil && !rebuilt {
		if why := missingBody(r, spec); why != "" {
			rp.NotReproduced = why
			return rp, nil
		}
	}
	j, err := p.JudgeSpec(ctx, spec, opts)
	if err != nil {
		return nil, err
	}
	rp.Judgement = j
	if body != nil && r.BodySHA256 != "" {
		fwd := j.Body
		if fwd == nil {
			fwd = body
		}
		if sum := sha256.Sum256(fwd); hex.EncodeToString(sum[:]) != r.BodySHA256 {
			rp.Notes = append(rp.Notes, fmt.Sprintf("the body given is not the one recorded: the proxy would forward a body with SHA-256 %s, the record's body_sha256 is %s; judged as given", short(hex.EncodeToString(sum[:])), short(r.BodySHA256)))
		}
	}
	rp.NotReproduced = gone(r, j, opts.Daemon == nil)
	return rp, nil
}

// missingBody says why a request cannot be replayed without its body: its
// operation is judged on the body, and the record neither keeps it nor
// shows there was none. "" when replaying it without a body is exact.
func missingBody(r *audit.Record, spec RequestSpec) string {
	req, err := Classify(spec)
	if err != nil || !req.Operation.JudgeBody {
		return ""
	}
	forwarded := r.Decision == audit.DecisionAllow || r.Decision == audit.DecisionWouldDeny
	switch {
	case r.Operation == "container.start", r.Operation == "exec.start":
		// Judged without their bodies: a start body is refused or dropped;
		// an exec start's (Detach, Tty, ConsoleSize) reaches nothing.
		return ""
	case forwarded && r.BodySHA256 == "":
		return "" // forwarded with no body: none was sent (or an empty one)
	case forwarded:
		return fmt.Sprintf("%s is judged on its request body, and the audit record keeps only its SHA-256 (body_sha256 %s), not the body: give the body with --body and --request-id %s", r.Operation, short(r.BodySHA256), r.RequestID)
	case rebuildsFromFacts[r.Operation]:
		return fmt.Sprintf("%s is judged on its request body; the audit record keeps no facts of it to rebuild it from (the body was not read or not judged when recorded): give the body with --body and --request-id %s", r.Operation, r.RequestID)
	}
	return fmt.Sprintf("%s is judged on its request body, and the audit record of a refused request keeps neither the body nor its digest: give the body with --body and --request-id %s", r.Operation, r.RequestID)
}

// gone says what the replay found missing on the daemon that the recorded
// request had: its target (answered 404 now, not when recorded), or the
// container or image a user came from. noDaemon: facts were not looked up.
func gone(r *audit.Record, j *Judgement, noDaemon bool) string {
	var re *input.RequestError
	if j.InputError != nil && errors.As(j.InputError, &re) && re.Status == http.StatusNotFound && re.DaemonWords && r.Status != http.StatusNotFound {
		return fmt.Sprintf("the object %s acted on is gone from the daemon (%s); when recorded it was there (the proxy answered %d). Replay judges against the daemon as it is now and cannot judge a request on an object that no longer exists", r.Operation, re.Message, r.Status)
	}
	if j.Input == nil {
		return ""
	}
	lookup := "it is gone from the daemon"
	if noDaemon {
		lookup = "daemon facts were not looked up: give --socket or --facts"
	}
	if x := j.Input.Exec; x != nil && x.User.Source == "container" && !x.User.Resolved && !x.User.Root {
		if rec, ok := r.Facts["exec_user"].(string); ok && !strings.Contains(rec, "(unresolved)") {
			return fmt.Sprintf("the exec's user is its container's (%s when recorded), and replay cannot look the container %s up: %s", rec, x.Container, lookup)
		}
	}
	if c := j.Input.Container; c != nil && c.User.Source == "image" && !c.User.Resolved && !c.User.Root {
		if rec, ok := r.Facts["user"].(string); ok && !strings.Contains(rec, "(unresolved)") {
			return fmt.Sprintf("the container's user is its image's (%s when recorded), and replay cannot look the image %s up: %s", rec, c.Image, lookup)
		}
	}
	if c := j.Input.Container; c != nil {
		recorded := stringList(r.Facts["networks"])
		for _, n := range c.Networks {
			if n.Mode == "named" && !n.Found && slices.Contains(recorded, n.Ref) && !slices.ContainsFunc(r.Reasons, func(s string) bool { return strings.Contains(s, "network "+n.Ref+" does not exist") }) {
				return fmt.Sprintf("the network %s the container was created on cannot be looked up: %s", n.Ref, lookup)
			}
		}
	}
	return ""
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12] + "…"
	}
	return sum
}

// ReplaySpec turns an audit record back into the request it recorded:
// method, path and caller as recorded. The body is body when non-nil, else
// rebuilt from the record's facts for the operations whose bodies carry
// them (rebuildsFromFacts); rebuilt is true then.
func ReplaySpec(r *audit.Record, body []byte) (spec RequestSpec, rebuilt bool) {
	spec = RequestSpec{
		ID:     r.RequestID,
		Method: r.Method,
		Target: r.Path,
		Caller: proxy.Caller{Known: r.Caller.Known, UID: r.Caller.UID, GID: r.Caller.GID, PID: r.Caller.PID,
			User: r.Caller.User, Group: r.Caller.Group, Groups: r.Caller.Groups},
		Body: body,
	}
	if body != nil {
		spec.ContentType = "application/json"
		return spec, false
	}
	var doc map[string]any
	switch {
	case r.Operation == "container.create" && r.Facts["image"] != nil:
		doc = createBody(r.Facts)
	case r.Operation == "network.create" && factMap(r.Facts["network"]) != nil:
		doc = networkCreateBody(factMap(r.Facts["network"]))
	case r.Operation == "network.connect" && factMap(r.Facts["connect"]) != nil:
		doc = connectBody(factMap(r.Facts["connect"]))
	case r.Operation == "volume.create" && factMap(r.Facts["volume"]) != nil:
		doc = volumeCreateBody(factMap(r.Facts["volume"]))
	case r.Operation == "container.update" && factMap(r.Facts["update"]) != nil:
		doc = updateBody(factMap(r.Facts["update"]))
	case r.Operation == "exec.create" && r.Facts["exec_user"] != nil:
		doc = map[string]any{"Cmd": []string{"sh"}}
		if u, ok := r.Facts["exec_user"].(string); ok {
			if v, explicit := userValue(u); explicit {
				doc["User"] = v
			}
		}
		if r.Facts["privileged"] == true {
			doc["Privileged"] = true
		}
	default:
		return spec, false
	}
	raw, _ := json.Marshal(doc)
	spec.Body, spec.ContentType = raw, "application/json"
	return spec, true
}

// userValue recovers Config.User from a user fact; explicit is false when
// the user came from the image or container (User was left empty).
func userValue(fact string) (string, bool) {
	if strings.Contains(fact, " from ") {
		return "", false
	}
	m := userFact.FindStringSubmatch(fact)
	if m == nil {
		return "", false
	}
	return m[1], true
}

func createBody(f map[string]any) map[string]any {
	cfg := map[string]any{}
	hc := map[string]any{}
	if img, ok := f["image"].(string); ok {
		cfg["Image"] = img
	}
	if u, ok := f["user"].(string); ok {
		if v, explicit := userValue(u); explicit {
			cfg["User"] = v
		}
	}
	var binds []string
	var mounts []map[string]any
	for _, m := range stringList(f["mounts"]) {
		m, _, _ = strings.Cut(m, " from ")
		typ, rest, ok := strings.Cut(m, " ")
		if !ok {
			continue
		}
		i := strings.LastIndex(rest, ":")
		j := strings.LastIndex(rest[:max(i, 0)], ":")
		if i < 0 || j < 0 {
			continue
		}
		src, target, mode := rest[:j], rest[j+1:i], rest[i+1:]
		src, _, _ = strings.Cut(src, "=>")
		switch {
		case typ == "bind":
			binds = append(binds, src+":"+target+":"+mode)
		case typ == "volume" || typ == "tmpfs":
			mounts = append(mounts, map[string]any{"Type": typ, "Source": src, "Target": target, "ReadOnly": mode == "ro"})
		}
	}
	if binds != nil {
		hc["Binds"] = binds
	}
	if mounts != nil {
		hc["Mounts"] = mounts
	}
	exposed := map[string]any{}
	bindings := map[string][]map[string]string{}
	for _, p := range stringList(f["ports"]) {
		left, cport, ok := strings.Cut(p, "->")
		i := strings.LastIndex(left, ":")
		if !ok || i < 0 {
			continue
		}
		ip, hport := left[:i], left[i+1:]
		if ip == "*" {
			ip = ""
		}
		exposed[cport] = map[string]any{}
		bindings[cport] = append(bindings[cport], map[string]string{"HostIp": ip, "HostPort": hport})
	}
	if len(bindings) > 0 {
		cfg["ExposedPorts"] = exposed
		hc["PortBindings"] = bindings
	}
	if f["publish_all"] == true {
		hc["PublishAllPorts"] = true
	}
	if f["privileged"] == true {
		hc["Privileged"] = true
	}
	nets := stringList(f["networks"])
	if len(nets) > 0 {
		hc["NetworkMode"] = nets[0]
	}
	if len(nets) > 1 {
		eps := map[string]any{}
		for _, n := range nets[1:] {
			eps[n] = map[string]any{}
		}
		cfg["NetworkingConfig"] = map[string]any{"EndpointsConfig": eps}
	}
	body := cfg
	if nc, ok := cfg["NetworkingConfig"]; ok {
		delete(cfg, "NetworkingConfig")
		body["NetworkingConfig"] = nc
	}
	body["HostConfig"] = hc
	return body
}
