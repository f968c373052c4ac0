package policy

import (
	"fmt"

	"github.com/sockproxy/sockproxy/policy/input"
)

// facts are the key facts of a decision for the audit record: what a
// reviewer needs to see at a glance (image, mounts with modes, user, ports,
// networks), and the policy's warnings.
func facts(in *input.Input, res Result) map[string]any {
	f := map[string]any{}
	if c := in.Container; c != nil {
		f["image"] = c.Image
		f["user"] = userFact(&c.User)
		if len(c.Mounts) > 0 {
			mounts := make([]string, len(c.Mounts))
			for i := range c.Mounts {
				mounts[i] = mountFact(&c.Mounts[i])
			}
			f["mounts"] = mounts
		}
		if len(c.Ports) > 0 {
			ports := make([]string, len(c.Ports))
			for i, p := range c.Ports {
				host := p.HostIP
				if host == "" {
					host = "*"
				}
				ports[i] = fmt.Sprintf("%s:%s->%s/%s", host, p.HostPort, p.ContainerPort, p.Protocol)
			}
			f["ports"] = ports
		}
		if c.PublishAll {
			f["publish_all"] = true
		}
		if len(c.Networks) > 0 {
			nets := make([]string, len(c.Networks))
			for i, n := range c.Networks {
				nets[i] = networkFact(n)
			}
			f["networks"] = nets
		}
		if c.Privileges.Privileged {
			f["privileged"] = true
		}
	}
	if x := in.Exec; x != nil {
		f["exec_user"] = userFact(&x.User)
		if x.Privileged {
			f["privileged"] = true
		}
	}
	if len(res.Warn) > 0 {
		f["warnings"] = res.Warn
	}
	return f
}

func userFact(u *input.UserFacts) string {
	v := u.Value
	if v == "" {
		v = "root"
	}
	switch {
	case u.Root:
		v += " (uid 0)"
	case !u.Resolved:
		v += " (unresolved)"
	}
	if u.Source != "" && u.Source != "request" {
		v += " from " + u.Source
	}
	return v
}

// mountFact renders a mount as source:target:mode, with the real host path
// where a symlink leads elsewhere.
func mountFact(m *input.Mount) string {
	mode := "rw"
	if m.ReadOnly {
		mode = "ro"
	}
	src := m.Source
	if m.HostBind {
		src = m.HostPath
		if m.PathDiffers {
			src += "=>" + m.RealPath
		}
	}
	s := fmt.Sprintf("%s %s:%s:%s", m.Type, src, m.Target, mode)
	if m.FromContainer != "" {
		s += " from " + m.FromContainer
	}
	return s
}

func networkFact(n input.Network) string {
	switch {
	case n.Mode == "container":
		return "container:" + n.Container
	case n.Name != "":
		return n.Name
	}
	return n.Ref
}
