package input

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/sockproxy/sockproxy/proxy"
)

// Options configure Build.
type Options struct {
	// Daemon answers lookups (image default user, volumes_from, networks,
	// volumes). Nil means no lookups: such facts are reported unresolved.
	Daemon Daemon
	// HostFS is where the host's filesystem is visible to the proxy.
	HostFS HostFS
	// DefaultAPIVersion is the version dockerd applies to unversioned paths
	// (its own API version); "" means DefaultAPIVersion.
	DefaultAPIVersion string
	// MinAPIVersion is the floor below which requests of judged operations
	// are refused; "" or anything below MinAPIVersion means MinAPIVersion.
	MinAPIVersion string
	// CgroupV2 says whether the host uses cgroup v2 (the default cgroup
	// namespace mode depends on it). Nil means: detect through HostFS, and
	// assume v1 (host cgroupns by default, the less safe reading) when the
	// host's filesystem cannot be seen.
	CgroupV2 *bool
	// OwnerLabels makes Build write the owner labels (OwnerUIDLabel,
	// OwnerUserLabel: the caller's uid and user name) into the canonical
	// body of container.create, network.create and volume.create, replacing
	// any the client sent; the library's ownership rules read them back.
	OwnerLabels bool
}

type ownerLabelsKey struct{}

// WithOwnerLabels returns ctx asking Build to write owner labels as
// Options.OwnerLabels does: the policy engine sets it per request while the
// policy in force enables ownership, so that a reload turns labels on or
// off whatever Builder it uses.
func WithOwnerLabels(ctx context.Context) context.Context {
	return context.WithValue(ctx, ownerLabelsKey{}, true)
}

func ownerLabelsFrom(ctx context.Context) bool {
	on, _ := ctx.Value(ownerLabelsKey{}).(bool)
	return on
}

func (o Options) defaultVersion() string {
	if o.DefaultAPIVersion == "" {
		return DefaultAPIVersion
	}
	return o.DefaultAPIVersion
}

func (o Options) floor() string {
	if o.MinAPIVersion == "" || versionBelow(o.MinAPIVersion, MinAPIVersion) {
		return MinAPIVersion
	}
	return o.MinAPIVersion
}

func (o Options) cgroupV2() bool {
	if o.CgroupV2 != nil {
		return *o.CgroupV2
	}
	if o.HostFS.Unavailable {
		return false
	}
	root := o.HostFS.Root
	if root == "" {
		root = "/"
	}
	_, err := os.Stat(filepath.Join(root, "sys/fs/cgroup/cgroup.controllers"))
	return err == nil
}

// Build turns a classified request into the policy input. For operations
// whose body is judged it decodes the body the way dockerd will, refusing
// (a *RequestError with Status 400) anything dockerd could read differently,
// and returns the canonical body: when non-nil, exactly those bytes (maybe
// none) must be forwarded instead of the original body. Errors from daemon
// lookups other than "not found" are returned as a *RequestError with
// Status 502: the request cannot be judged.
func Build(ctx context.Context, req *proxy.Request, opts Options) (*Input, []byte, error) {
	op := req.Operation
	in := &Input{
		Operation:  op.Name,
		Method:     op.Method,
		Path:       op.Path,
		APIVersion: op.APIVersion,
		Versioned:  op.APIVersion != "",
		Query:      map[string][]string(op.Query),
		Vars:       op.Vars,
		Caller:     req.Caller,
	}
	if in.Query == nil {
		in.Query = map[string][]string{}
	}
	if in.Vars == nil {
		in.Vars = map[string]string{}
	}
	if !in.Versioned {
		in.APIVersion = opts.defaultVersion()
	}
	if !validVersion(in.APIVersion) {
		return nil, nil, badRequest("invalid API version %q", in.APIVersion)
	}
	if op.JudgeBody {
		in.BodySize = len(req.Body)
	}
	in.FormBody = isFormBody(&requestView{method: op.Method, header: req.Header, knownEmpty: op.JudgeBody && len(req.Body) == 0})
	n := &normalizer{ctx: ctx, opts: opts, version: in.APIVersion}
	if !op.JudgeBody {
		if err := n.resolveTarget(in, nil); err != nil {
			return nil, nil, err
		}
		return in, nil, nil
	}
	if versionBelow(in.APIVersion, opts.floor()) {
		return nil, nil, badRequest("API version %s is below %s, the oldest this proxy judges %s requests for (older versions give the request other meanings); use a newer client API version", in.APIVersion, opts.floor(), op.Name)
	}

	body := req.Body
	blank := isBlank(body)
	if op.Name == "container.start" {
		// dockerd (API >= 1.24) refuses a start body longer than 7 bytes
		// and ignores a shorter one: forward none.
		if len(body) > 7 {
			return nil, nil, badRequest("starting a container with a request body was removed in API 1.24; send no body")
		}
		if err := n.resolveTarget(in, nil); err != nil {
			return nil, nil, err
		}
		return in, []byte{}, nil
	}
	spec, known := bodySpecs[op.Name]
	if blank {
		if known && !spec.emptyOK {
			return nil, nil, badRequest("%s needs a JSON body", op.Name)
		}
		if err := n.resolveTarget(in, nil); err != nil {
			return nil, nil, err
		}
		if len(body) > 0 {
			return in, []byte{}, nil // whitespace only: dockerd would read EOF
		}
		return in, nil, nil
	}
	if !known {
		// An operation without a moby body type: a JSON body is checked
		// for duplicate keys and trailing data and shown to the policy as
		// sent; other bodies are not shown.
		if checkJSONContentType(req.Header) != nil {
			return in, nil, nil
		}
		v, err := decodeGeneric(op.Name, body)
		if err != nil {
			return nil, nil, err
		}
		in.Body = v
		if err := n.resolveTarget(in, nil); err != nil {
			return nil, nil, err
		}
		return in, nil, nil
	}
	if err := checkJSONContentType(req.Header); err != nil {
		return nil, nil, err
	}
	typed, err := decodeStrict(op.Name, spec, body)
	if err != nil {
		return nil, nil, err
	}
	if opts.OwnerLabels || ownerLabelsFrom(ctx) {
		injectOwner(op.Name, typed, in)
	}
	canon, err := canonicalJSON(typed)
	if err != nil {
		return nil, nil, &RequestError{Status: http.StatusInternalServerError, Message: fmt.Sprintf("%s body: cannot re-encode: %v", op.Name, err)}
	}
	// The body is the canonical document itself: it marshals to exactly
	// the bytes forwarded, and is not decoded twice.
	in.Body = json.RawMessage(canon)
	if err := n.resolveTarget(in, typed); err != nil {
		return nil, nil, err
	}
	switch op.Name {
	case "container.create":
		cr := typed.(*container.CreateRequest)
		if cr.Config == nil {
			return nil, nil, badRequest("%v", errNoConfig)
		}
		facts, err := n.containerFacts(cr, op.Query.Get("name"))
		if err != nil {
			return nil, nil, err
		}
		in.Container = facts
	case "exec.create":
		facts, err := n.execFacts(typed.(*container.ExecOptions), op.Vars["name"])
		if err != nil {
			return nil, nil, err
		}
		in.Exec = facts
	case "network.connect":
		in.Connect = connectFacts(typed.(*network.ConnectOptions))
	case "container.commit":
		if cr := typed.(*container.CreateRequest); cr.Config != nil {
			in.Commit = &CommitFacts{User: cr.Config.User}
		} else {
			in.Commit = &CommitFacts{}
		}
	case "network.create":
		in.NetworkCreate = networkCreateFacts(typed.(*network.CreateRequest))
	case "volume.create":
		in.VolumeCreate = volumeCreateFacts(typed.(*volume.CreateOptions))
	case "container.update":
		in.Update = updateFacts(typed.(*container.UpdateConfig))
	}
	return in, canon, nil
}

// lookupError turns a daemon error other than not-found into the error
// Build returns: the request cannot be judged.
func lookupError(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &RequestError{Status: http.StatusServiceUnavailable, Message: fmt.Sprintf("cannot judge the request: looking up %s: %v", what, err)}
	}
	return &RequestError{Status: http.StatusBadGateway, Message: fmt.Sprintf("cannot judge the request: looking up %s: %v", what, err)}
}
