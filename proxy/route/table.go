package route

// OperationSpec is one route of the Engine API: what dockerd registers, with
// the operation name the proxy gives it and how the proxy must carry it.
type OperationSpec struct {
	// Name is the operation, "<group>.<action>" (e.g. "container.create").
	// A few routes share a name: GET and HEAD /_ping, GET /networks and
	// /networks/, which dockerd serves with one handler each.
	Name string
	// Method is the one HTTP method dockerd serves on Path.
	Method string
	// Path is the gorilla/mux template dockerd registers, without the
	// "/v{version:[0-9.]+}" prefix it registers every route with as well.
	Path string
	// JudgeBody, Hijack and Stream become the Operation's flags.
	JudgeBody bool
	Hijack    bool
	Stream    bool
}

// Flags of a spec, combined with |.
const (
	judgeBody = 1 << iota
	hijack
	stream
)

func spec(name, method, path string, flags int) OperationSpec {
	return OperationSpec{
		Name:      name,
		Method:    method,
		Path:      path,
		JudgeBody: flags&judgeBody != 0,
		Hijack:    flags&hijack != 0,
		Stream:    flags&stream != 0,
	}
}

// table lists every route dockerd 28.5 (API 1.51) registers, in the order it
// registers them: mux answers with the first registered route that matches,
// so the order decides, for example, that DELETE /containers/create deletes a
// container named "create" while POST /containers/create creates one.
// Source: moby api/server/router/*/ and buildRouters in cmd/dockerd/daemon.go.
//
// Left out on purpose: POST /containers/{name:.*}/copy (dockerd before 25
// routes it, but answers 404 at API >= 1.24, the lowest this proxy accepts by
// default; newer dockerd does not route it). Refused as an unknown route.
var table = []OperationSpec{
	// Checkpoints come first in dockerd, or DELETE /containers/{name:.*}
	// would mask their DELETE. Experimental: dockerd routes them and answers
	// "experimental feature is disabled" unless started with --experimental.
	spec("checkpoint.list", "GET", "/containers/{name:.*}/checkpoints", 0),
	// The body names a CheckpointDir on the host.
	spec("checkpoint.create", "POST", "/containers/{name:.*}/checkpoints", judgeBody),
	spec("checkpoint.delete", "DELETE", "/containers/{name}/checkpoints/{checkpoint}", 0),

	// Containers.
	spec("container.archive.head", "HEAD", "/containers/{name:.*}/archive", 0),
	spec("container.list", "GET", "/containers/json", 0),
	spec("container.export", "GET", "/containers/{name:.*}/export", stream),
	spec("container.changes", "GET", "/containers/{name:.*}/changes", 0),
	spec("container.inspect", "GET", "/containers/{name:.*}/json", 0),
	spec("container.top", "GET", "/containers/{name:.*}/top", 0),
	spec("container.logs", "GET", "/containers/{name:.*}/logs", stream),
	spec("container.stats", "GET", "/containers/{name:.*}/stats", stream),
	spec("container.attach.ws", "GET", "/containers/{name:.*}/attach/ws", hijack|stream),
	spec("exec.inspect", "GET", "/exec/{id:.*}/json", 0),
	spec("container.archive.get", "GET", "/containers/{name:.*}/archive", stream),
	spec("container.create", "POST", "/containers/create", judgeBody),
	spec("container.kill", "POST", "/containers/{name:.*}/kill", 0),
	spec("container.pause", "POST", "/containers/{name:.*}/pause", 0),
	spec("container.unpause", "POST", "/containers/{name:.*}/unpause", 0),
	spec("container.restart", "POST", "/containers/{name:.*}/restart", 0),
	// Below API 1.24 a start body replaces the HostConfig: always judge it.
	spec("container.start", "POST", "/containers/{name:.*}/start", judgeBody),
	spec("container.stop", "POST", "/containers/{name:.*}/stop", 0),
	spec("container.wait", "POST", "/containers/{name:.*}/wait", stream),
	spec("container.resize", "POST", "/containers/{name:.*}/resize", 0),
	spec("container.attach", "POST", "/containers/{name:.*}/attach", hijack|stream),
	spec("exec.create", "POST", "/containers/{name:.*}/exec", judgeBody),
	// The body holds only Detach/Tty/ConsoleSize, but it is small and
	// judging it costs nothing.
	spec("exec.start", "POST", "/exec/{name:.*}/start", judgeBody|hijack|stream),
	spec("exec.resize", "POST", "/exec/{name:.*}/resize", 0),
	spec("container.rename", "POST", "/containers/{name:.*}/rename", 0),
	spec("container.update", "POST", "/containers/{name:.*}/update", judgeBody),
	spec("container.prune", "POST", "/containers/prune", 0),
	// The body is a container Config applied to the new image.
	spec("container.commit", "POST", "/commit", judgeBody),
	// A tar archive, streamed.
	spec("container.archive.put", "PUT", "/containers/{name:.*}/archive", 0),
	spec("container.delete", "DELETE", "/containers/{name:.*}", 0),

	// Images.
	spec("image.list", "GET", "/images/json", 0),
	spec("image.search", "GET", "/images/search", 0),
	spec("image.get.all", "GET", "/images/get", stream),
	spec("image.get", "GET", "/images/{name:.*}/get", stream),
	spec("image.history", "GET", "/images/{name:.*}/history", 0),
	spec("image.inspect", "GET", "/images/{name:.*}/json", 0),
	// A tar archive, streamed.
	spec("image.load", "POST", "/images/load", stream),
	// Pull (fromImage) and import (fromSrc, the body is then a tar archive).
	spec("image.create", "POST", "/images/create", stream),
	spec("image.push", "POST", "/images/{name:.*}/push", stream),
	spec("image.tag", "POST", "/images/{name:.*}/tag", 0),
	spec("image.prune", "POST", "/images/prune", 0),
	spec("image.delete", "DELETE", "/images/{name:.*}", 0),

	// System. OPTIONS is served on every path (an empty 200, CORS preflight).
	spec("system.options", "OPTIONS", "/{anyroute:.*}", 0),
	spec("system.ping", "GET", "/_ping", 0),
	spec("system.ping", "HEAD", "/_ping", 0),
	spec("system.events", "GET", "/events", stream),
	spec("system.info", "GET", "/info", 0),
	spec("system.version", "GET", "/version", 0),
	spec("system.df", "GET", "/system/df", 0),
	// The body holds registry credentials; it is not the policy's business.
	spec("system.auth", "POST", "/auth", 0),

	// Volumes.
	spec("volume.list", "GET", "/volumes", 0),
	spec("volume.inspect", "GET", "/volumes/{name:.*}", 0),
	spec("volume.create", "POST", "/volumes/create", judgeBody),
	spec("volume.prune", "POST", "/volumes/prune", 0),
	// Cluster volumes (API 1.42).
	spec("volume.update", "PUT", "/volumes/{name:.*}", judgeBody),
	spec("volume.delete", "DELETE", "/volumes/{name:.*}", 0),

	// Build. The body is the build context (a tar archive), streamed; the
	// query carries the options the policy judges.
	spec("image.build", "POST", "/build", stream),
	spec("image.build.prune", "POST", "/build/prune", 0),
	spec("image.build.cancel", "POST", "/build/cancel", 0),

	// BuildKit session: upgrades to h2c.
	spec("session", "POST", "/session", hijack|stream),

	// Swarm.
	spec("swarm.init", "POST", "/swarm/init", judgeBody),
	spec("swarm.join", "POST", "/swarm/join", judgeBody),
	spec("swarm.leave", "POST", "/swarm/leave", 0),
	spec("swarm.inspect", "GET", "/swarm", 0),
	spec("swarm.unlockkey", "GET", "/swarm/unlockkey", 0),
	spec("swarm.update", "POST", "/swarm/update", judgeBody),
	// The body holds the unlock key.
	spec("swarm.unlock", "POST", "/swarm/unlock", 0),
	spec("service.list", "GET", "/services", 0),
	spec("service.inspect", "GET", "/services/{id}", 0),
	spec("service.create", "POST", "/services/create", judgeBody),
	spec("service.update", "POST", "/services/{id}/update", judgeBody),
	spec("service.delete", "DELETE", "/services/{id}", 0),
	spec("service.logs", "GET", "/services/{id}/logs", stream),
	spec("node.list", "GET", "/nodes", 0),
	spec("node.inspect", "GET", "/nodes/{id}", 0),
	spec("node.delete", "DELETE", "/nodes/{id}", 0),
	spec("node.update", "POST", "/nodes/{id}/update", judgeBody),
	spec("task.list", "GET", "/tasks", 0),
	spec("task.inspect", "GET", "/tasks/{id}", 0),
	spec("task.logs", "GET", "/tasks/{id}/logs", stream),
	spec("secret.list", "GET", "/secrets", 0),
	spec("secret.create", "POST", "/secrets/create", judgeBody),
	spec("secret.delete", "DELETE", "/secrets/{id}", 0),
	spec("secret.inspect", "GET", "/secrets/{id}", 0),
	spec("secret.update", "POST", "/secrets/{id}/update", judgeBody),
	spec("config.list", "GET", "/configs", 0),
	spec("config.create", "POST", "/configs/create", judgeBody),
	spec("config.delete", "DELETE", "/configs/{id}", 0),
	spec("config.inspect", "GET", "/configs/{id}", 0),
	spec("config.update", "POST", "/configs/{id}/update", judgeBody),

	// Plugins. Pull, upgrade and set carry the privileges or settings the
	// plugin gets; create's body is a tar archive, streamed.
	spec("plugin.list", "GET", "/plugins", 0),
	spec("plugin.inspect", "GET", "/plugins/{name:.*}/json", 0),
	spec("plugin.privileges", "GET", "/plugins/privileges", 0),
	spec("plugin.delete", "DELETE", "/plugins/{name:.*}", 0),
	spec("plugin.enable", "POST", "/plugins/{name:.*}/enable", 0),
	spec("plugin.disable", "POST", "/plugins/{name:.*}/disable", 0),
	spec("plugin.pull", "POST", "/plugins/pull", judgeBody|stream),
	spec("plugin.push", "POST", "/plugins/{name:.*}/push", stream),
	spec("plugin.upgrade", "POST", "/plugins/{name:.*}/upgrade", judgeBody|stream),
	spec("plugin.set", "POST", "/plugins/{name:.*}/set", judgeBody),
	spec("plugin.create", "POST", "/plugins/create", 0),

	// Distribution.
	spec("distribution.inspect", "GET", "/distribution/{name:.*}/json", 0),

	// Networks.
	spec("network.list", "GET", "/networks", 0),
	spec("network.list", "GET", "/networks/", 0),
	spec("network.inspect", "GET", "/networks/{id:.+}", 0),
	spec("network.create", "POST", "/networks/create", judgeBody),
	spec("network.connect", "POST", "/networks/{id:.*}/connect", judgeBody),
	spec("network.disconnect", "POST", "/networks/{id:.*}/disconnect", judgeBody),
	spec("network.prune", "POST", "/networks/prune", 0),
	spec("network.delete", "DELETE", "/networks/{id:.*}", 0),

	// Debug (expvar and pprof). dockerd 28 registers them like any route;
	// dockerd 20.10 registers them bare only, for every method.
	spec("debug.vars", "GET", "/debug/vars", 0),
	spec("debug.pprof.index", "GET", "/debug/pprof/", 0),
	spec("debug.pprof.cmdline", "GET", "/debug/pprof/cmdline", 0),
	spec("debug.pprof.profile", "GET", "/debug/pprof/profile", stream),
	spec("debug.pprof.symbol", "GET", "/debug/pprof/symbol", 0),
	spec("debug.pprof.trace", "GET", "/debug/pprof/trace", stream),
	spec("debug.pprof.lookup", "GET", "/debug/pprof/{name}", 0),

	// BuildKit's gRPC API: upgrades to h2c.
	spec("grpc", "POST", "/grpc", hijack|stream),
}

// Operations returns every route the classifier knows, in dockerd's
// registration order. The slice is a copy.
func Operations() []OperationSpec {
	return append([]OperationSpec(nil), table...)
}

// OperationNames returns the distinct operation names, in table order.
func OperationNames() []string {
	seen := make(map[string]bool, len(table))
	var names []string
	for _, s := range table {
		if !seen[s.Name] {
			seen[s.Name] = true
			names = append(names, s.Name)
		}
	}
	return names
}
