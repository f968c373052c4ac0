package input

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Daemon answers the lookups the normalizer needs. Implementations return
// an error wrapping ErrNotFound when the object does not exist, so that a
// missing object is told apart from an unreachable daemon.
type Daemon interface {
	InspectImage(ctx context.Context, ref string) (*ImageInfo, error)
	InspectContainer(ctx context.Context, ref string) (*ContainerInfo, error)
	InspectNetwork(ctx context.Context, ref string) (*NetworkInfo, error)
	InspectVolume(ctx context.Context, name string) (*VolumeInfo, error)
}

// ErrNotFound is wrapped by Daemon errors for objects that do not exist.
var ErrNotFound = errors.New("not found")

// ImageInfo is what the normalizer needs of an image.
type ImageInfo struct {
	ID       string
	User     string // Config.User: the default user of containers made from it
	Labels   map[string]string
	RepoTags []string
}

// ContainerInfo is what the normalizer needs of an existing container.
type ContainerInfo struct {
	ID      string
	Name    string
	User    string // Config.User
	Image   string // Config.Image
	Labels  map[string]string
	Running bool
	Mounts  []ContainerMount
	// NoNewPrivileges: HostConfig.SecurityOpt names no-new-privileges.
	NoNewPrivileges bool
	// Namespace modes and privilege from its HostConfig.
	NetworkMode  string
	PidMode      string
	IpcMode      string
	UTSMode      string
	UsernsMode   string
	CgroupnsMode string
	Privileged   bool
	// What else of HostConfig reaches the host, for the target of an
	// exec (Target.HostAccess): capabilities as stored, device host paths,
	// device cgroup rules and security options.
	CapAdd            []string
	Devices           []string
	DeviceCgroupRules []string
	SecurityOpt       []string
}

// ContainerMount is one entry of a container's inspect "Mounts".
type ContainerMount struct {
	Type        string
	Name        string
	Source      string
	Destination string
	Driver      string
	Mode        string
	RW          bool
	Propagation string
}

// NetworkInfo is what the normalizer needs of a network.
type NetworkInfo struct {
	ID       string
	Name     string
	Driver   string
	Scope    string
	Internal bool
	Options  map[string]string
	Labels   map[string]string
}

// VolumeInfo is what the normalizer needs of a volume.
type VolumeInfo struct {
	Name       string
	Driver     string
	Mountpoint string
	Options    map[string]string
	Labels     map[string]string
	Scope      string
}

// HTTPDaemon looks objects up through the Engine API of the upstream.
type HTTPDaemon struct {
	client     *http.Client
	apiVersion string
}

// NewHTTPDaemon returns a Daemon that sends inspect requests through rt
// (which must reach the upstream dockerd; the URL host is ignored by a
// Unix-socket transport) at the given API version ("" for unversioned).
func NewHTTPDaemon(rt http.RoundTripper, apiVersion string) *HTTPDaemon {
	return &HTTPDaemon{client: &http.Client{Transport: rt}, apiVersion: apiVersion}
}

// escapeRef escapes a reference for one path segment; image references keep
// their slashes (dockerd's image routes take them), but "." and ".."
// segments, which would make the path unclean, are refused.
func escapeRef(ref string, keepSlash bool) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("empty reference: %w", ErrNotFound)
	}
	if !keepSlash {
		return url.PathEscape(ref), nil
	}
	parts := strings.Split(ref, "/")
	for i, p := range parts {
		if p == "" || p == "." || p == ".." {
			return "", fmt.Errorf("invalid reference %q: %w", ref, ErrNotFound)
		}
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/"), nil
}

func (d *HTTPDaemon) get(ctx context.Context, kind, path string, out any) error {
	prefix := ""
	if d.apiVersion != "" {
		prefix = "/v" + d.apiVersion
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+prefix+path, nil)
	if err != nil {
		return err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("looking up %s on the upstream: %w", kind, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading %s from the upstream: %w", kind, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: %w", kind, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		var e struct{ Message string }
		_ = json.Unmarshal(body, &e)
		return fmt.Errorf("looking up %s on the upstream: HTTP %d: %s", kind, resp.StatusCode, e.Message)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decoding %s from the upstream: %w", kind, err)
	}
	return nil
}

// InspectImage implements Daemon.
func (d *HTTPDaemon) InspectImage(ctx context.Context, ref string) (*ImageInfo, error) {
	p, err := escapeRef(ref, true)
	if err != nil {
		return nil, err
	}
	var v struct {
		ID       string `json:"Id"`
		RepoTags []string
		Config   *struct {
			User   string
			Labels map[string]string
		}
	}
	if err := d.get(ctx, fmt.Sprintf("image %q", ref), "/images/"+p+"/json", &v); err != nil {
		return nil, err
	}
	info := &ImageInfo{ID: v.ID, RepoTags: v.RepoTags}
	if v.Config != nil {
		info.User, info.Labels = v.Config.User, v.Config.Labels
	}
	return info, nil
}

// InspectContainer implements Daemon.
func (d *HTTPDaemon) InspectContainer(ctx context.Context, ref string) (*ContainerInfo, error) {
	p, err := escapeRef(ref, false)
	if err != nil {
		return nil, err
	}
	var v struct {
		ID     string `json:"Id"`
		Name   string
		Config *struct {
			User   string
			Image  string
			Labels map[string]string
		}
		State      *struct{ Running bool }
		HostConfig *struct {
			NetworkMode, PidMode, IpcMode, UTSMode, UsernsMode, CgroupnsMode string
			Privileged                                                       bool
			SecurityOpt, CapAdd, DeviceCgroupRules                           []string
			Devices                                                          []struct{ PathOnHost string }
		}
		Mounts []ContainerMount
	}
	if err := d.get(ctx, fmt.Sprintf("container %q", ref), "/containers/"+p+"/json", &v); err != nil {
		return nil, err
	}
	info := &ContainerInfo{ID: v.ID, Name: strings.TrimPrefix(v.Name, "/"), Mounts: v.Mounts}
	if v.Config != nil {
		info.User, info.Image, info.Labels = v.Config.User, v.Config.Image, v.Config.Labels
	}
	if v.State != nil {
		info.Running = v.State.Running
	}
	if h := v.HostConfig; h != nil {
		info.NetworkMode, info.PidMode, info.IpcMode = h.NetworkMode, h.PidMode, h.IpcMode
		info.UTSMode, info.UsernsMode, info.CgroupnsMode = h.UTSMode, h.UsernsMode, h.CgroupnsMode
		info.Privileged = h.Privileged
		info.CapAdd, info.DeviceCgroupRules, info.SecurityOpt = h.CapAdd, h.DeviceCgroupRules, h.SecurityOpt
		for _, d := range h.Devices {
			info.Devices = append(info.Devices, d.PathOnHost)
		}
		for _, o := range h.SecurityOpt {
			switch o {
			case "no-new-privileges", "no-new-privileges:true", "no-new-privileges=true":
				info.NoNewPrivileges = true
			}
		}
	}
	return info, nil
}

// InspectNetwork implements Daemon.
func (d *HTTPDaemon) InspectNetwork(ctx context.Context, ref string) (*NetworkInfo, error) {
	p, err := escapeRef(ref, false)
	if err != nil {
		return nil, err
	}
	var v struct {
		ID       string `json:"Id"`
		Name     string
		Driver   string
		Scope    string
		Internal bool
		Options  map[string]string
		Labels   map[string]string
	}
	if err := d.get(ctx, fmt.Sprintf("network %q", ref), "/networks/"+p, &v); err != nil {
		return nil, err
	}
	return &NetworkInfo{ID: v.ID, Name: v.Name, Driver: v.Driver, Scope: v.Scope, Internal: v.Internal, Options: v.Options, Labels: v.Labels}, nil
}

// InspectVolume implements Daemon.
func (d *HTTPDaemon) InspectVolume(ctx context.Context, name string) (*VolumeInfo, error) {
	p, err := escapeRef(name, false)
	if err != nil {
		return nil, err
	}
	var v VolumeInfo
	if err := d.get(ctx, fmt.Sprintf("volume %q", name), "/volumes/"+p, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// InspectExec implements ExecInspector.
func (d *HTTPDaemon) InspectExec(ctx context.Context, id string) (*ExecInfo, error) {
	p, err := escapeRef(id, false)
	if err != nil {
		return nil, err
	}
	var v struct {
		ID            string
		ContainerID   string
		ProcessConfig *struct {
			User       string   `json:"user"`
			Privileged *bool    `json:"privileged"`
			Entrypoint string   `json:"entrypoint"`
			Arguments  []string `json:"arguments"`
		}
	}
	if err := d.get(ctx, fmt.Sprintf("exec %q", id), "/exec/"+p+"/json", &v); err != nil {
		return nil, err
	}
	if v.ContainerID == "" {
		return nil, fmt.Errorf("exec %q: the daemon named no container", id)
	}
	if v.ProcessConfig == nil || v.ProcessConfig.Privileged == nil {
		return nil, fmt.Errorf("exec %q: the daemon did not say how it runs (ProcessConfig)", id)
	}
	pc := v.ProcessConfig
	return &ExecInfo{ID: v.ID, ContainerID: v.ContainerID, User: pc.User, Privileged: *pc.Privileged,
		Cmd: append([]string{pc.Entrypoint}, pc.Arguments...)}, nil
}
