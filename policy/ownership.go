package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
)

// FilterSpec is data.sockproxy.filter, the library's answer to what a
// caller may see of a list or event response (rego/ownership.rego): the
// objects whose Label has one of Values, and with IncludeUnowned those
// without an owner (no such label, or one that names no uid).
type FilterSpec struct {
	Label          string   `json:"label"`
	Values         []string `json:"values"`
	IncludeUnowned bool     `json:"include_unowned"`
}

// filterOperations are the operations whose answers responseFilter can
// read: only for them does a decision ask for data.sockproxy.filter (the
// rule costs every other decision a few microseconds otherwise).
const filterOperations = `{"container.list", "network.list", "volume.list", "system.events"}`

// OwnershipOn reports whether the revision enables ownership for anyone
// (the base settings or a profile): owner labels are then written into
// every create body, so that the rules have owners to read back; tools that
// judge requests as the engine does (policy eval) build bodies the same way.
func OwnershipOn(lib *LibraryConfig) bool {
	if lib == nil {
		return false
	}
	if lib.Ownership.Enabled {
		return true
	}
	for _, p := range lib.Profiles {
		if own, ok := p.Config["ownership"].(map[string]any); ok && own["enabled"] == true {
			return true
		}
	}
	return false
}

// filterSpec reads the filter binding of a decision: a list holding the
// filter, or empty when the policy filters nothing.
func filterSpec(v any) (*FilterSpec, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("filter: a list was expected, got %T", v)
	}
	if len(list) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(list[0])
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var s FilterSpec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("data.sockproxy.filter %s: %w", raw, err)
	}
	if s.Label == "" {
		return nil, fmt.Errorf("data.sockproxy.filter %s: names no label", raw)
	}
	return &s, nil
}

// ownerMatch decides by an object's labels whether a FilterSpec keeps it.
type ownerMatch struct {
	label          string
	values         map[string]bool
	includeUnowned bool
}

func newOwnerMatch(s *FilterSpec) ownerMatch {
	m := ownerMatch{label: s.Label, values: make(map[string]bool, len(s.Values)), includeUnowned: s.IncludeUnowned}
	for _, v := range s.Values {
		m.values[v] = true
	}
	return m
}

// keeps: the label names a kept value, or the object has no owner (a label
// that is not a uid, as the ownership rules read it) and unowned objects
// are kept.
func (m ownerMatch) keeps(labels map[string]string) bool {
	v, ok := labels[m.label]
	if ok && m.values[v] {
		return true
	}
	return m.includeUnowned && !isUID(v)
}

func isUID(v string) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n >= 0 && strconv.Itoa(n) == v
}

// responseFilter makes the proxy filter that applies spec to the answer of
// op. An operation whose answer it cannot read is an error: the request is
// refused rather than answered unfiltered.
func (e *Engine) responseFilter(op string, spec *FilterSpec) (*proxy.ResponseFilter, error) {
	m := newOwnerMatch(spec)
	switch op {
	case "container.list", "network.list":
		return &proxy.ResponseFilter{Whole: func(_ context.Context, body []byte) ([]byte, error) {
			return filterList(body, m)
		}}, nil
	case "volume.list":
		return &proxy.ResponseFilter{Whole: func(_ context.Context, body []byte) ([]byte, error) {
			return filterVolumes(body, m)
		}}, nil
	case "system.events":
		ev := &eventFilter{match: m, daemon: e.daemon, cache: map[string]bool{}}
		return &proxy.ResponseFilter{Line: ev.keep}, nil
	}
	return nil, fmt.Errorf("the policy asks to filter the answer to %s, which sockproxy cannot filter (only container.list, network.list, volume.list and system.events): refused", op)
}

// labelled is what a filter reads of a listed object.
type labelled struct {
	Labels map[string]string
}

// filterList keeps the elements of a JSON array of objects (containers,
// networks) that m keeps; kept elements are sent byte for byte.
func filterList(body []byte, m ownerMatch) ([]byte, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("not a JSON array of objects: %w", err)
	}
	out := make([]byte, 0, len(body))
	out = append(out, '[')
	n := 0
	for _, it := range items {
		var o labelled
		if err := json.Unmarshal(it, &o); err != nil {
			return nil, fmt.Errorf("an element is not an object with Labels: %w", err)
		}
		if !m.keeps(o.Labels) {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
		n++
	}
	out = append(out, ']', '\n')
	return out, nil
}

// filterVolumes filters the Volumes of a volume list answer
// ({"Volumes": [...], "Warnings": [...]}); other keys are kept.
func filterVolumes(body []byte, m ownerMatch) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("not a volume list object: %w", err)
	}
	if vols, ok := doc["Volumes"]; ok && !bytes.Equal(bytes.TrimSpace(vols), []byte("null")) {
		kept, err := filterList(vols, m)
		if err != nil {
			return nil, fmt.Errorf("its Volumes: %w", err)
		}
		doc["Volumes"] = kept
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// eventLookupTimeout bounds one owner lookup of an event stream's filter.
const eventLookupTimeout = 10 * time.Second

// eventFilter keeps the events of a stream that concern objects the caller
// may see. Container events carry the container's labels; network and
// volume events carry none, so their object is looked up (once per stream)
// and the event kept when the caller may see it or the container it names
// (connect, disconnect, mount, unmount). Events of objects that have no
// owner (images, the daemon, plugins, builds) are kept; a line that is not
// an event is dropped. One filter serves one stream, from one goroutine.
type eventFilter struct {
	match  ownerMatch
	daemon input.Daemon
	cache  map[string]bool // kind/id: kept
}

// event is what the filter reads of a dockerd event.
type event struct {
	Type   string
	Action string
	Actor  struct {
		ID         string
		Attributes map[string]string
	}
}

func (f *eventFilter) keep(ctx context.Context, line []byte) bool {
	var ev event
	if err := json.Unmarshal(line, &ev); err != nil {
		return false
	}
	switch ev.Type {
	case "container":
		return f.match.keeps(ev.Actor.Attributes)
	case "network", "volume":
		kept := f.owned(ctx, ev.Type, ev.Actor.ID)
		if ev.Action == "destroy" {
			// a volume name can be used again, by someone else
			delete(f.cache, ev.Type+"/"+ev.Actor.ID)
		}
		if !kept {
			if c := ev.Actor.Attributes["container"]; c != "" {
				kept = f.owned(ctx, "container", c)
			}
		}
		return kept
	case "":
		return false
	}
	return true
}

// owned reports whether the caller may see the object kind/id, looked up
// through the daemon. An object gone before its first event here reads as
// unowned; a failed lookup hides the event.
func (f *eventFilter) owned(ctx context.Context, kind, id string) bool {
	if id == "" {
		return false
	}
	key := kind + "/" + id
	if v, ok := f.cache[key]; ok {
		return v
	}
	labels, err := f.labels(ctx, kind, id)
	if err != nil && !errors.Is(err, input.ErrNotFound) {
		return false
	}
	v := f.match.keeps(labels)
	if len(f.cache) >= 4096 {
		clear(f.cache)
	}
	f.cache[key] = v
	return v
}

func (f *eventFilter) labels(ctx context.Context, kind, id string) (map[string]string, error) {
	if f.daemon == nil {
		return nil, errors.New("no daemon to look owners up")
	}
	ctx, cancel := context.WithTimeout(ctx, eventLookupTimeout)
	defer cancel()
	switch kind {
	case "container":
		c, err := f.daemon.InspectContainer(ctx, id)
		if err != nil {
			return nil, err
		}
		return c.Labels, nil
	case "network":
		n, err := f.daemon.InspectNetwork(ctx, id)
		if err != nil {
			return nil, err
		}
		return n.Labels, nil
	default:
		v, err := f.daemon.InspectVolume(ctx, id)
		if err != nil {
			return nil, err
		}
		return v.Labels, nil
	}
}
