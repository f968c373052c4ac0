package input

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
)

// Bind is one HostConfig.Binds entry parsed like moby's Linux mount parser.
type Bind struct {
	Type        string // "bind" (absolute source) or "volume" (named or anonymous)
	Source      string // bind: path.Clean'ed host path; volume: name ("" for anonymous)
	Target      string // path.Clean'ed container path
	Mode        string // the raw mode field
	ReadOnly    bool
	Propagation string // "" when not given (dockerd then uses rprivate)
	Relabel     string // "", "z", "Z"
	NoCopy      bool
	Consistency string
}

var (
	rwModes          = map[string]bool{"rw": true, "ro": true}
	labelModes       = map[string]bool{"z": true, "Z": true}
	propagationModes = map[string]bool{"private": true, "rprivate": true, "slave": true, "rslave": true, "shared": true, "rshared": true}
	consistencyModes = map[string]bool{"consistent": true, "cached": true, "delegated": true}
)

// validMountMode is moby's linuxValidMountMode: a comma list with at most
// one of each kind of option.
func validMountMode(mode string) bool {
	if mode == "" {
		return true
	}
	var rw, label, prop, cp, cons int
	for _, o := range strings.Split(mode, ",") {
		switch {
		case rwModes[o]:
			rw++
		case labelModes[o]:
			label++
		case propagationModes[o]:
			prop++
		case o == "nocopy":
			cp++
		case consistencyModes[o]:
			cons++
		default:
			return false
		}
	}
	return rw <= 1 && label <= 1 && prop <= 1 && cp <= 1 && cons <= 1
}

func validateTarget(p string) error {
	s := strings.ReplaceAll(p, `\`, `/`)
	if path.Clean(s) == "/" {
		return errors.New("invalid specification: destination can't be '/'")
	}
	if !path.IsAbs(s) {
		return fmt.Errorf("invalid mount path: '%s' mount path must be absolute", s)
	}
	return nil
}

// ParseBind parses a Binds entry ("src:dst[:mode]", or "dst" for an
// anonymous volume) exactly as dockerd's Linux parser does, refusing what
// it refuses.
func ParseBind(raw string) (Bind, error) {
	invalid := func(why string) (Bind, error) {
		if why != "" {
			return Bind{}, fmt.Errorf("invalid volume specification: '%s': %s", raw, why)
		}
		return Bind{}, fmt.Errorf("invalid volume specification: '%s'", raw)
	}
	arr := strings.SplitN(raw, ":", 4)
	if arr[0] == "" {
		return invalid("")
	}
	var b Bind
	var src string
	switch len(arr) {
	case 1:
		b.Target = arr[0]
	case 2:
		if validMountMode(arr[1]) {
			return invalid("") // "/path:ro": a mode where the target should be
		}
		src, b.Target = arr[0], arr[1]
	case 3:
		src, b.Target, b.Mode = arr[0], arr[1], arr[2]
	default:
		return invalid("")
	}
	if !validMountMode(b.Mode) {
		return Bind{}, fmt.Errorf("invalid mode: %s", b.Mode)
	}
	if path.IsAbs(src) {
		b.Type = "bind"
	} else {
		b.Type = "volume"
	}
	hasProp := false
	for _, o := range strings.Split(b.Mode, ",") {
		switch {
		case o == "ro":
			b.ReadOnly = true
		case labelModes[o]:
			b.Relabel = o
		case propagationModes[o]:
			b.Propagation, hasProp = o, true
		case o == "nocopy":
			b.NoCopy = true
		case consistencyModes[o]:
			b.Consistency = o
		}
	}
	if err := validateTarget(b.Target); err != nil {
		return invalid(err.Error())
	}
	switch b.Type {
	case "bind":
		if b.NoCopy {
			return invalid("field VolumeOptions must not be specified")
		}
		b.Source = path.Clean(src)
	case "volume":
		if hasProp {
			return invalid("field BindOptions must not be specified")
		}
		b.Source = src
	}
	b.Target = path.Clean(b.Target)
	return b, nil
}

// mounts lists every mount the container will get: VolumesFrom, Binds,
// Mounts, Tmpfs and Config.Volumes, with version-dependent defaults applied.
func (n *normalizer) mounts(cfg *container.Config, hc *container.HostConfig) ([]Mount, error) {
	out := []Mount{}
	roRecursiveAPI := !versionBelow(n.version, "1.44")

	for _, spec := range hc.VolumesFrom {
		ms, err := n.volumesFrom(spec)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}

	for _, raw := range hc.Binds {
		b, err := ParseBind(raw)
		if err != nil {
			return nil, badRequest("HostConfig.Binds: %v", err)
		}
		m := Mount{Origin: "binds", Type: b.Type, Source: b.Source, Target: b.Target, ReadOnly: b.ReadOnly,
			Propagation: b.Propagation, Relabel: b.Relabel, NoCopy: b.NoCopy}
		if b.Type == "bind" {
			m.ReadOnlyRecursive = b.ReadOnly && roRecursiveAPI
			if m.Propagation == "" {
				m.Propagation = "rprivate"
			}
			// A missing source directory is created by dockerd (as root).
			out = append(out, n.hostBind(m))
			continue
		}
		ms, err := n.volume(m, hc.VolumeDriver, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}

	for _, mt := range hc.Mounts {
		ms, err := n.mountSpec(mt, roRecursiveAPI)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}

	tmpfs := make([]string, 0, len(hc.Tmpfs))
	for target := range hc.Tmpfs {
		tmpfs = append(tmpfs, target)
	}
	sort.Strings(tmpfs)
	for _, target := range tmpfs {
		out = append(out, Mount{Origin: "tmpfs", Type: "tmpfs", Target: path.Clean(target), DriverOptions: map[string]string{"options": hc.Tmpfs[target]}})
	}

	// Config.Volumes: anonymous volumes, unless something else is mounted there.
	taken := map[string]bool{}
	for _, m := range out {
		taken[m.Target] = true
	}
	vols := make([]string, 0, len(cfg.Volumes))
	for target := range cfg.Volumes {
		vols = append(vols, target)
	}
	sort.Strings(vols)
	for _, target := range vols {
		if taken[path.Clean(target)] {
			continue
		}
		ms, err := n.volume(Mount{Origin: "volumes", Type: "volume", Target: path.Clean(target)}, hc.VolumeDriver, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	for i := range out {
		if out[i].DriverOptions == nil {
			out[i].DriverOptions = map[string]string{}
		}
	}
	return out, nil
}

func (n *normalizer) mountSpec(mt mount.Mount, roRecursiveAPI bool) ([]Mount, error) {
	target := path.Clean(mt.Target)
	switch mt.Type {
	case mount.TypeBind:
		if mt.Source == "" || !path.IsAbs(mt.Source) {
			return nil, badRequest("HostConfig.Mounts: a bind mount needs an absolute Source")
		}
		m := Mount{Origin: "mounts", Type: "bind", Source: path.Clean(mt.Source), Target: target, ReadOnly: mt.ReadOnly, Propagation: "rprivate"}
		nonRecursiveRO := !roRecursiveAPI
		if bo := mt.BindOptions; bo != nil {
			if bo.Propagation != "" {
				m.Propagation = string(bo.Propagation)
			}
			m.NonRecursive = bo.NonRecursive && !versionBelow(n.version, "1.40")
			m.CreateMountpoint = bo.CreateMountpoint && !versionBelow(n.version, "1.42")
			m.ReadOnlyForceRecursive = bo.ReadOnlyForceRecursive
			if bo.ReadOnlyNonRecursive {
				nonRecursiveRO = true
			}
		}
		m.ReadOnlyRecursive = m.ReadOnly && (!nonRecursiveRO || m.ReadOnlyForceRecursive)
		return []Mount{n.hostBind(m)}, nil
	case mount.TypeVolume:
		m := Mount{Origin: "mounts", Type: "volume", Source: mt.Source, Target: target, ReadOnly: mt.ReadOnly}
		var reqDriver string
		var reqOpts map[string]string
		if vo := mt.VolumeOptions; vo != nil {
			m.NoCopy, m.Subpath = vo.NoCopy, vo.Subpath
			if vo.DriverConfig != nil {
				reqDriver, reqOpts = vo.DriverConfig.Name, vo.DriverConfig.Options
			}
		}
		m.Driver = reqDriver
		// The container-wide VolumeDriver does not apply to Mounts.
		return n.volume(m, "", reqOpts)
	case mount.TypeTmpfs:
		return []Mount{{Origin: "mounts", Type: "tmpfs", Target: target, ReadOnly: mt.ReadOnly}}, nil
	case mount.TypeImage:
		m := Mount{Origin: "mounts", Type: "image", Source: mt.Source, Target: target, ReadOnly: true}
		if mt.ImageOptions != nil {
			m.Subpath = mt.ImageOptions.Subpath
		}
		return []Mount{m}, nil
	case mount.TypeNamedPipe, mount.TypeCluster:
		return []Mount{{Origin: "mounts", Type: string(mt.Type), Source: mt.Source, Target: target, ReadOnly: mt.ReadOnly}}, nil
	}
	return nil, badRequest("HostConfig.Mounts: mount type %q unknown", mt.Type)
}

// hostBind fills the host path facts of a bind.
func (n *normalizer) hostBind(m Mount) Mount {
	m.HostBind = true
	m.HostPath = m.Source
	m.RealPath, m.PathStatus = n.opts.HostFS.resolve(m.HostPath)
	m.PathDiffers = m.PathStatus != PathUnresolvable && m.RealPath != m.HostPath
	return m
}

// volume fills the facts of a volume mount: the driver and options of an
// existing named volume (looked up: dockerd uses it as it is), else those
// the request gives (dockerd creates it), and what the local driver's
// options expose of the host. It may return several entries for one
// volume: one per host path it exposes.
func (n *normalizer) volume(m Mount, defaultDriver string, reqOpts map[string]string) ([]Mount, error) {
	if m.Driver == "" {
		m.Driver = defaultDriver
	}
	m.DriverOptions = reqOpts
	if m.Source != "" && n.opts.Daemon != nil {
		v, err := n.opts.Daemon.InspectVolume(n.ctx, m.Source)
		switch {
		case err == nil:
			m.VolumeFound, m.Driver, m.DriverOptions = true, v.Driver, v.Options
		case errors.Is(err, ErrNotFound):
		default:
			return nil, lookupError("volume "+m.Source, err)
		}
	}
	if m.Driver == "" {
		m.Driver = "local"
	}
	if m.DriverOptions == nil {
		m.DriverOptions = map[string]string{}
	}
	if m.Driver != "local" {
		return []Mount{m}, nil
	}
	kind, parts := localMount(m.DriverOptions)
	m.LocalMount = kind
	if len(parts) == 0 {
		return []Mount{m}, nil
	}
	out := make([]Mount, 0, len(parts))
	for _, p := range parts {
		e := m
		e.HostPathOption = p.option
		if p.readOnly {
			e.ReadOnly = true
		}
		e = n.hostBindPath(e, p.path)
		out = append(out, e)
	}
	return out, nil
}

func (n *normalizer) hostBindPath(m Mount, hostPath string) Mount {
	m.HostBind = true
	m.HostPath = hostPath
	if path.IsAbs(hostPath) {
		m.HostPath = path.Clean(hostPath)
		m.RealPath, m.PathStatus = n.opts.HostFS.resolve(m.HostPath)
	} else {
		m.PathStatus = PathUnresolvable
	}
	m.PathDiffers = m.PathStatus != PathUnresolvable && m.RealPath != m.HostPath
	return m
}

type hostPathPart struct {
	option   string // "device", "lowerdir", "upperdir", "workdir"
	path     string
	readOnly bool
}

// localMount classifies the local volume driver's options, which it passes
// to mount(2) as mount(device, volume dir, type, o):
//   - "" no type nor device: a plain volume under dockerd's root;
//   - "bind": o has bind/rbind (or type none): device is a host path;
//   - "overlay": lowerdir/upperdir/workdir in o are host paths;
//   - "network": nfs/cifs/smb3 shares;
//   - "tmpfs": tmpfs/ramfs in memory;
//   - "device": any other filesystem type mounting device (a host block device).
func localMount(opts map[string]string) (string, []hostPathPart) {
	typ, device, o := opts["type"], opts["device"], opts["o"]
	if typ == "" && device == "" {
		return "", nil
	}
	var bind, ro bool
	var overlay []hostPathPart
	for _, opt := range strings.Split(o, ",") {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "bind", "rbind":
			bind = true
		case "ro":
			ro = true
		case "lowerdir":
			for _, d := range strings.Split(v, ":") {
				if d != "" {
					overlay = append(overlay, hostPathPart{option: "lowerdir", path: d, readOnly: true})
				}
			}
		case "upperdir", "workdir":
			overlay = append(overlay, hostPathPart{option: k, path: v})
		}
	}
	for i := range overlay {
		overlay[i].readOnly = overlay[i].readOnly || ro
	}
	switch {
	case bind || typ == "none":
		return "bind", append([]hostPathPart{{option: "device", path: device, readOnly: ro}}, overlay...)
	case typ == "overlay" || len(overlay) > 0:
		return "overlay", overlay
	case typ == "nfs" || typ == "nfs4" || typ == "cifs" || typ == "smb3":
		return "network", nil
	case typ == "tmpfs" || typ == "ramfs":
		return "tmpfs", nil
	}
	return "device", []hostPathPart{{option: "device", path: device, readOnly: ro}}
}

// volumesFrom resolves "container[:ro|rw]" to the other container's mounts.
func (n *normalizer) volumesFrom(spec string) ([]Mount, error) {
	ref, mode, _ := strings.Cut(spec, ":")
	if spec == "" || (mode != "" && mode != "ro" && mode != "rw" && !validVolumesFromMode(mode)) {
		return nil, badRequest("HostConfig.VolumesFrom: invalid entry %q", spec)
	}
	readOnly := false
	for _, o := range strings.Split(mode, ",") {
		if o == "ro" {
			readOnly = true
		}
	}
	c, err := n.container(ref)
	if err != nil {
		return nil, err
	}
	if c == nil {
		// Unknown now; whatever it is when dockerd looks cannot be judged.
		return []Mount{{Origin: "volumes_from", Type: "unknown", FromContainer: ref, HostBind: true, PathStatus: PathUnresolvable, ReadOnly: readOnly, DriverOptions: map[string]string{}}}, nil
	}
	var out []Mount
	for _, cm := range c.Mounts {
		m := Mount{Origin: "volumes_from", Type: cm.Type, Target: cm.Destination, ReadOnly: !cm.RW || readOnly,
			Propagation: cm.Propagation, FromContainer: ref}
		switch cm.Type {
		case "bind":
			m.Source = cm.Source
			// Submount read-only-ness is not in inspect: assume the weaker.
			out = append(out, n.hostBind(m))
		case "volume":
			m.Source, m.Driver = cm.Name, cm.Driver
			ms, err := n.volume(m, "", nil)
			if err != nil {
				return nil, err
			}
			out = append(out, ms...)
		default:
			m.Source = cm.Source
			out = append(out, m)
		}
	}
	return out, nil
}

// validVolumesFromMode: moby's ParseVolumesFrom accepts a valid mount mode
// without propagation or copy options.
func validVolumesFromMode(mode string) bool {
	if !validMountMode(mode) {
		return false
	}
	for _, o := range strings.Split(mode, ",") {
		if propagationModes[o] || o == "nocopy" {
			return false
		}
	}
	return true
}
