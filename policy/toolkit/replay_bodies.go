package toolkit

import (
	"math"
	"reflect"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// Bodies rebuilt from the facts of network.create, network.connect,
// volume.create and container.update records (policy/facts.go writes them):
// each fact field goes back to the body field it was read from, so that the
// input facts of the rebuilt body are the recorded ones.

func factMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func factString(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func factBool(m map[string]any, key string) bool {
	b, _ := m[key].(bool)
	return b
}

// factStrings is a list fact; an absent one is empty, not null.
func factStrings(m map[string]any, key string) []string {
	out := stringList(m[key])
	if out == nil {
		out = []string{}
	}
	return out
}

func factStringMap(m map[string]any, key string) map[string]string {
	out := map[string]string{}
	for k, v := range factMap(m[key]) {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

func networkCreateBody(f map[string]any) map[string]any {
	configs := []map[string]any{}
	// Subnets merge subnets, IP ranges, gateways and auxiliary addresses
	// (as /32 or /128): each comes back as a subnet of its own, which the
	// library judges alike (every range must lie in allowed_network_subnets).
	for _, s := range factStrings(f, "subnets") {
		configs = append(configs, map[string]any{"Subnet": s})
	}
	body := map[string]any{
		"Name": factString(f, "name"), "Driver": factString(f, "driver"), "Scope": factString(f, "scope"),
		"Internal": factBool(f, "internal"), "Attachable": factBool(f, "attachable"), "Ingress": factBool(f, "ingress"),
		"ConfigOnly": factBool(f, "config_only"),
		"Options":    factStringMap(f, "options"), "Labels": factStringMap(f, "labels"),
		"IPAM": map[string]any{"Driver": factString(f, "ipam_driver"), "Options": factStringMap(f, "ipam_options"), "Config": configs},
	}
	if from := factString(f, "config_from"); from != "" {
		body["ConfigFrom"] = map[string]any{"Network": from}
	}
	return body
}

func connectBody(f map[string]any) map[string]any {
	return map[string]any{
		"Container": factString(f, "container"),
		"EndpointConfig": map[string]any{
			"Aliases": factStrings(f, "aliases"),
			"IPAMConfig": map[string]any{
				"IPv4Address": factString(f, "ipv4"), "IPv6Address": factString(f, "ipv6"),
				"LinkLocalIPs": factStrings(f, "link_local_ips"),
			},
			"MacAddress": factString(f, "mac_address"),
			"DriverOpts": factStringMap(f, "driver_opts"),
			"Links":      factStrings(f, "links"),
		},
	}
}

func volumeCreateBody(f map[string]any) map[string]any {
	body := map[string]any{
		"Name": factString(f, "name"), "Driver": factString(f, "driver"),
		"DriverOpts": factStringMap(f, "options"), "Labels": factStringMap(f, "labels"),
	}
	if factBool(f, "cluster") {
		body["ClusterVolumeSpec"] = map[string]any{}
	}
	return body
}

// updateFields maps update facts to the body fields dockerd reads them from.
var updateFields = map[string]string{
	"memory": "Memory", "memory_reservation": "MemoryReservation", "memory_swap": "MemorySwap",
	"nano_cpus": "NanoCpus", "cpu_shares": "CpuShares", "cpu_period": "CpuPeriod", "cpu_quota": "CpuQuota",
	"blkio_weight": "BlkioWeight", "cpuset_cpus": "CpusetCpus", "cpuset_mems": "CpusetMems", "pids_limit": "PidsLimit",
}

func updateBody(f map[string]any) map[string]any {
	body := map[string]any{}
	for fact, field := range updateFields {
		if v, ok := f[fact]; ok {
			body[field] = int64Fact(v)
		}
	}
	if rp := factMap(f["restart_policy"]); rp != nil {
		body["RestartPolicy"] = map[string]any{"Name": factString(rp, "name"), "MaximumRetryCount": int64Fact(rp["maximum_retry_count"])}
	}
	// The record names the other Resources fields the request set, not
	// their values: each is set to a non-zero value of its type, which the
	// library refuses alike (it judges their names).
	rt := reflect.TypeFor[container.Resources]()
	for _, name := range stringList(f["other"]) {
		for i := range rt.NumField() {
			sf := rt.Field(i)
			tag, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if tag == name || (tag == "" && sf.Name == name) {
				body[name] = nonZero(sf.Type, 0)
				break
			}
		}
	}
	return body
}

// int64Fact: a number decoded from the log as float64 goes back as an
// integer; one at the top of int64's range (a memory limit of MaxInt64)
// rounds to 2^63 in float64 and is clamped, not overflowed.
func int64Fact(v any) any {
	f, ok := v.(float64)
	switch {
	case !ok:
		return v
	case f >= math.MaxInt64:
		return int64(math.MaxInt64)
	case f <= math.MinInt64:
		return int64(math.MinInt64)
	}
	return int64(f)
}

// nonZero is a JSON value that decodes into a non-zero value of type t.
func nonZero(t reflect.Type, depth int) any {
	if depth > 4 {
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		return "x"
	case reflect.Bool:
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return 1
	case reflect.Pointer:
		return nonZero(t.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		return []any{nonZero(t.Elem(), depth+1)}
	case reflect.Map:
		return map[string]any{"x": nonZero(t.Elem(), depth+1)}
	case reflect.Struct:
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			return map[string]any{name: nonZero(sf.Type, depth+1)}
		}
		return map[string]any{}
	}
	return nil
}
