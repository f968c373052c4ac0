package input

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Mirrors moby's TestLinuxParseMountRaw and TestLinuxParseMountRawSplit
// (volume/mounts/linux_parser_test.go).
func TestParseBind(t *testing.T) {
	valid := map[string]Bind{
		"/home":                                   {Type: "volume", Target: "/home"},
		"/home:/home":                             {Type: "bind", Source: "/home", Target: "/home"},
		"/home:/something/else":                   {Type: "bind", Source: "/home", Target: "/something/else"},
		"/with space":                             {Type: "volume", Target: "/with space"},
		"/home:/with space":                       {Type: "bind", Source: "/home", Target: "/with space"},
		"relative:/absolute-path":                 {Type: "volume", Source: "relative", Target: "/absolute-path"},
		"hostPath:/containerPath:ro":              {Type: "volume", Source: "hostPath", Target: "/containerPath", Mode: "ro", ReadOnly: true},
		"/hostPath:/containerPath:rw":             {Type: "bind", Source: "/hostPath", Target: "/containerPath", Mode: "rw"},
		"/rw:/ro":                                 {Type: "bind", Source: "/rw", Target: "/ro"},
		"/hostPath:/containerPath:shared":         {Type: "bind", Source: "/hostPath", Target: "/containerPath", Mode: "shared", Propagation: "shared"},
		"/hostPath:/containerPath:rslave":         {Type: "bind", Source: "/hostPath", Target: "/containerPath", Mode: "rslave", Propagation: "rslave"},
		"/hostPath:/containerPath:ro,z,shared":    {Type: "bind", Source: "/hostPath", Target: "/containerPath", Mode: "ro,z,shared", ReadOnly: true, Relabel: "z", Propagation: "shared"},
		"/hostPath:/containerPath:slave,Z,ro":     {Type: "bind", Source: "/hostPath", Target: "/containerPath", Mode: "slave,Z,ro", ReadOnly: true, Relabel: "Z", Propagation: "slave"},
		"/hostPath:/containerPath:ro,Z,rprivate":  {Type: "bind", Source: "/hostPath", Target: "/containerPath", Mode: "ro,Z,rprivate", ReadOnly: true, Relabel: "Z", Propagation: "rprivate"},
		"/tmp:/tmp1":                              {Type: "bind", Source: "/tmp", Target: "/tmp1"},
		"/tmp:/tmp2:ro":                           {Type: "bind", Source: "/tmp", Target: "/tmp2", Mode: "ro", ReadOnly: true},
		"name:/named1":                            {Type: "volume", Source: "name", Target: "/named1"},
		"name:/named3:ro":                         {Type: "volume", Source: "name", Target: "/named3", Mode: "ro", ReadOnly: true},
		"local/name:/tmp:rw":                      {Type: "volume", Source: "local/name", Target: "/tmp", Mode: "rw"},
		"name:/named4:nocopy":                     {Type: "volume", Source: "name", Target: "/named4", Mode: "nocopy", NoCopy: true},
		"/a/../etc/./x/:/t/../u/":                 {Type: "bind", Source: "/etc/x", Target: "/u"},
		"/src:/dst:cached":                        {Type: "bind", Source: "/src", Target: "/dst", Mode: "cached", Consistency: "cached"},
		"/hostPath:/containerPath:Z,ro,slave":     {Type: "bind", Source: "/hostPath", Target: "/containerPath", Mode: "Z,ro,slave", ReadOnly: true, Relabel: "Z", Propagation: "slave"},
		"/hostPath:/containerPath:rslave,ro,Z":    {Type: "bind", Source: "/hostPath", Target: "/containerPath", Mode: "rslave,ro,Z", ReadOnly: true, Relabel: "Z", Propagation: "rslave"},
		"/hostPath:/containerPath:ro,rshared,Z":   {Type: "bind", Source: "/hostPath", Target: "/containerPath", Mode: "ro,rshared,Z", ReadOnly: true, Relabel: "Z", Propagation: "rshared"},
		"/hostPath:/containerPath:ro,private":     {Type: "bind", Source: "/hostPath", Target: "/containerPath", Mode: "ro,private", ReadOnly: true, Propagation: "private"},
		"/hostPath:/containerPath:rw,rprivate,z":  {Type: "bind", Source: "/hostPath", Target: "/containerPath", Mode: "rw,rprivate,z", Relabel: "z", Propagation: "rprivate"},
		"/hostPath:/containerPath:delegated,ro,Z": {Type: "bind", Source: "/hostPath", Target: "/containerPath", Mode: "delegated,ro,Z", ReadOnly: true, Relabel: "Z", Consistency: "delegated"},
	}
	for raw, want := range valid {
		got, err := ParseBind(raw)
		if err != nil {
			t.Errorf("ParseBind(%q): %v", raw, err)
			continue
		}
		if got != want {
			t.Errorf("ParseBind(%q) = %+v, want %+v", raw, got, want)
		}
	}
	invalid := []string{
		"", "./", "../", "/:../", "/:path", ":", "/tmp:", ":test", ":/test", "tmp:", ":test:", "::", ":::",
		"/tmp:::", ":/tmp::", "/path:rw", "/path:ro", "/rw:rw", "path:ro", "/path:/path:sw", "/path:/path:rwz",
		"/path:/path:ro,rshared,rslave", "/path:/path:ro,z,rshared,rslave", "/path:shared", "/path:slave",
		"/path:private", "name:/absolute-path:shared", "name:/absolute-path:rshared", "name:/absolute-path:slave",
		"name:/absolute-path:rslave", "name:/absolute-path:private", "name:/absolute-path:rprivate",
		"/tmp:/tmp4:foo", "/src:/", "/src:/../", "/src:/dst:ro,rw", "/src:/dst:nocopy", "a:b:c:d", "/src:relative",
	}
	for _, raw := range invalid {
		if b, err := ParseBind(raw); err == nil {
			t.Errorf("ParseBind(%q) accepted: %+v", raw, b)
		}
	}
}

func createFacts(t *testing.T, version, body string, opts Options) *ContainerFacts {
	t.Helper()
	in, _, err := Build(context.Background(), request("container.create", version, body), opts)
	if err != nil {
		t.Fatal(err)
	}
	return in.Container
}

func TestMountFacts(t *testing.T) {
	fd := newFakeDaemon()
	fd.volumes["bindvol"] = &VolumeInfo{Name: "bindvol", Driver: "local", Options: map[string]string{"type": "none", "o": "bind", "device": "/etc"}}
	fd.volumes["plain"] = &VolumeInfo{Name: "plain", Driver: "local", Options: map[string]string{}}
	fd.volumes["nfsvol"] = &VolumeInfo{Name: "nfsvol", Driver: "local", Options: map[string]string{"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export"}}
	fd.containers["donor"] = &ContainerInfo{ID: "d1", Name: "donor", Mounts: []ContainerMount{
		{Type: "bind", Source: "/var/run/docker.sock", Destination: "/sock", RW: true},
		{Type: "volume", Name: "bindvol", Driver: "local", Destination: "/etc-copy", RW: true},
	}}
	opts := Options{Daemon: fd, HostFS: HostFS{Unavailable: true}}
	body := minimalCreate + `,"HostConfig":{
		"VolumesFrom":["donor:ro"],
		"Binds":["/srv/data:/data:ro","bindvol:/v","plain:/p","nfsvol:/n"],
		"Mounts":[
			{"Type":"bind","Source":"/srv/x/../y","Target":"/y","ReadOnly":true,"BindOptions":{"NonRecursive":true,"CreateMountpoint":true,"Propagation":"rshared"}},
			{"Type":"bind","Source":"/srv/z","Target":"/z","ReadOnly":true,"BindOptions":{"ReadOnlyNonRecursive":true}},
			{"Type":"volume","Target":"/ov","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"overlay","device":"overlay","o":"lowerdir=/home/a:/home/b,upperdir=/tmp/u,workdir=/tmp/w"}}}},
			{"Type":"volume","Source":"fresh","Target":"/f","VolumeOptions":{"DriverConfig":{"Options":{"type":"ext4","device":"/dev/sda1"}}}},
			{"Type":"tmpfs","Target":"/tmp"}
		],
		"Tmpfs":{"/run":"size=1m"}}, "Volumes":{"/data":{},"/anon":{}}}`
	for _, c := range []struct {
		version       string
		roRecursive   bool
		nonRecursive  bool
		createMountpt bool
	}{{"1.41", false, true, false}, {"1.44", true, true, true}, {"1.39", false, false, false}} {
		f := createFacts(t, c.version, body, opts)
		byTarget := map[string][]Mount{}
		for _, m := range f.Mounts {
			byTarget[m.Target] = append(byTarget[m.Target], m)
		}
		one := func(target string) Mount {
			t.Helper()
			if len(byTarget[target]) != 1 {
				t.Fatalf("%s: %d mounts at %s: %+v", c.version, len(byTarget[target]), target, byTarget[target])
			}
			return byTarget[target][0]
		}
		if m := one("/sock"); m.Origin != "volumes_from" || !m.HostBind || m.HostPath != "/var/run/docker.sock" || !m.ReadOnly || m.FromContainer != "donor" {
			t.Errorf("volumes_from bind: %+v", m)
		}
		if m := one("/etc-copy"); !m.HostBind || m.HostPath != "/etc" || m.LocalMount != "bind" || !m.VolumeFound {
			t.Errorf("volumes_from o=bind volume: %+v", m)
		}
		if m := one("/data"); m.Type != "bind" || !m.ReadOnly || m.ReadOnlyRecursive != c.roRecursive || m.Propagation != "rprivate" {
			t.Errorf("%s ro bind: %+v", c.version, m)
		}
		if m := one("/v"); !m.HostBind || m.HostPath != "/etc" || m.HostPathOption != "device" || m.Type != "volume" {
			t.Errorf("named o=bind volume: %+v", m)
		}
		if m := one("/p"); m.HostBind || !m.VolumeFound || m.LocalMount != "" {
			t.Errorf("plain volume: %+v", m)
		}
		if m := one("/n"); m.HostBind || m.LocalMount != "network" {
			t.Errorf("nfs volume: %+v", m)
		}
		if m := one("/y"); m.Source != "/srv/y" || m.NonRecursive != c.nonRecursive || m.CreateMountpoint != c.createMountpt || m.Propagation != "rshared" || m.ReadOnlyRecursive != c.roRecursive {
			t.Errorf("%s Mounts bind: %+v", c.version, m)
		}
		if m := one("/z"); m.ReadOnlyRecursive {
			t.Errorf("ReadOnlyNonRecursive bind reported recursive: %+v", m)
		}
		ov := byTarget["/ov"]
		if len(ov) != 4 || ov[0].HostPath != "/home/a" || !ov[0].ReadOnly || ov[1].HostPath != "/home/b" || ov[2].HostPath != "/tmp/u" || ov[2].ReadOnly || ov[2].HostPathOption != "upperdir" {
			t.Errorf("overlay volume: %+v", ov)
		}
		if m := one("/f"); !m.HostBind || m.LocalMount != "device" || m.HostPath != "/dev/sda1" || m.VolumeFound {
			t.Errorf("device volume: %+v", m)
		}
		if m := one("/tmp"); m.Type != "tmpfs" || m.HostBind {
			t.Errorf("tmpfs mount: %+v", m)
		}
		if m := one("/run"); m.Origin != "tmpfs" {
			t.Errorf("Tmpfs: %+v", m)
		}
		if m := one("/anon"); m.Origin != "volumes" || m.Source != "" || m.Driver != "local" {
			t.Errorf("Config.Volumes: %+v", m)
		}
	}
	// A volumes_from container that does not exist cannot be judged.
	f := createFacts(t, "1.41", minimalCreate+`,"HostConfig":{"VolumesFrom":["ghost"]}}`, opts)
	if len(f.Mounts) != 1 || f.Mounts[0].Type != "unknown" || !f.Mounts[0].HostBind || f.Mounts[0].PathStatus != PathUnresolvable {
		t.Errorf("unknown volumes_from: %+v", f.Mounts)
	}
	// Bad binds are refused as dockerd would.
	_, _, err := Build(context.Background(), request("container.create", "1.41", minimalCreate+`,"HostConfig":{"Binds":["/a:/"]}}`), opts)
	wantRefused(t, err, "Binds")
}

func TestHostPathResolution(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "home/alice/projects"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(os.Symlink("/etc", filepath.Join(root, "home/alice/link")))             // absolute: inside the host root
	must(os.Symlink("../alice/projects", filepath.Join(root, "home/alice/rel"))) // relative
	must(os.Symlink("loop", filepath.Join(root, "home/alice/loop")))
	h := HostFS{Root: root}
	for _, c := range []struct{ in, real, status string }{
		{"/home/alice/projects", "/home/alice/projects", PathResolved},
		{"/home/alice/link", "/etc", PathResolved},
		{"/home/alice/link/passwd", "/etc/passwd", PathMissing},
		{"/home/alice/rel/sub", "/home/alice/projects/sub", PathMissing},
		{"/home/alice/rel", "/home/alice/projects", PathResolved},
		{"/home/alice/loop", "", PathUnresolvable},
		{"relative", "", PathUnresolvable},
	} {
		real, status := h.resolve(c.in)
		if real != c.real || status != c.status {
			t.Errorf("resolve(%q) = %q %q, want %q %q", c.in, real, status, c.real, c.status)
		}
	}
	if _, s := (HostFS{Unavailable: true}).resolve("/etc"); s != PathUnresolvable {
		t.Error("unavailable host fs resolved a path")
	}
	f := createFacts(t, "1.41", minimalCreate+`,"HostConfig":{"Binds":["/home/alice/link:/x"]}}`, Options{HostFS: h})
	if m := f.Mounts[0]; !m.PathDiffers || m.RealPath != "/etc" || m.PathStatus != PathResolved {
		t.Errorf("symlinked bind: %+v", m)
	}
}

func TestUserFacts(t *testing.T) {
	for raw, want := range map[string]UserFacts{
		"":          {UID: 0, GID: 0, Root: true, Resolved: true},
		"0":         {Value: "0", UID: 0, GID: 0, Root: true, Resolved: true},
		"00":        {Value: "00", UID: 0, GID: 0, Root: true, Resolved: true},
		"+0":        {Value: "+0", UID: 0, GID: 0, Root: true, Resolved: true},
		"-0":        {Value: "-0", UID: 0, GID: 0, Root: true, Resolved: true},
		"root":      {Value: "root", UID: 0, GID: 0, Root: true, Resolved: true},
		"0:1000":    {Value: "0:1000", UID: 0, GID: 1000, Root: true, Resolved: true},
		"root:x":    {Value: "root:x", UID: 0, GID: -1, Root: true, Resolved: true},
		":1000":     {Value: ":1000", UID: 0, GID: 1000, Root: true, Resolved: true},
		"1000":      {Value: "1000", UID: 1000, GID: -1, Resolved: true},
		"1000:1000": {Value: "1000:1000", UID: 1000, GID: 1000, Resolved: true},
		"1000:0":    {Value: "1000:0", UID: 1000, GID: 0, Resolved: true},
		"1000:root": {Value: "1000:root", UID: 1000, GID: 0, Resolved: true},
		"alice":     {Value: "alice", UID: -1, GID: -1},
		"1000:1:2":  {Value: "1000:1:2", UID: 1000, GID: 1, Resolved: true},
	} {
		if got := parseUser(raw); got != want {
			t.Errorf("parseUser(%q) = %+v, want %+v", raw, got, want)
		}
	}
	fd := newFakeDaemon()
	opts := Options{Daemon: fd}
	f := createFacts(t, "1.41", `{"Image":"nonroot:latest"}`, opts)
	if u := f.User; u.Source != "image" || u.UID != 1000 || u.Root || u.Value != "1000:1000" {
		t.Errorf("image default user: %+v", u)
	}
	f = createFacts(t, "1.41", `{"Image":"docker.openhands.dev/openhands/runtime:0.62-nikolaik"}`, opts)
	if u := f.User; u.Source != "image" || !u.Root {
		t.Errorf("image default root: %+v", u)
	}
	f = createFacts(t, "1.41", `{"Image":"missing:latest"}`, opts)
	if u := f.User; u.Resolved || u.Root || u.UID != -1 {
		t.Errorf("unknown image: %+v", u)
	}
	// A daemon that cannot answer makes the request unjudgeable (502).
	_, _, err := Build(context.Background(), request("container.create", "1.41", `{"Image":"x"}`), Options{Daemon: &fakeDaemon{fail: errors.New("connection refused")}})
	var re *RequestError
	if !errors.As(err, &re) || re.Status != http.StatusBadGateway {
		t.Errorf("daemon failure: %v", err)
	}
}

func TestExecFacts(t *testing.T) {
	fd := newFakeDaemon()
	fd.containers["c1"] = &ContainerInfo{ID: "c1", User: "1000:1000"}
	fd.containers["c2"] = &ContainerInfo{ID: "c2", User: ""}
	opts := Options{Daemon: fd}
	run := func(ref, body string) *ExecFacts {
		t.Helper()
		req := request("exec.create", "1.41", body)
		req.Operation.Vars["name"] = ref
		in, _, err := Build(context.Background(), req, opts)
		if err != nil {
			t.Fatal(err)
		}
		return in.Exec
	}
	if e := run("c1", `{"Cmd":["id"]}`); e.User.Source != "container" || e.User.UID != 1000 || e.User.Root {
		t.Errorf("exec inherits: %+v", e.User)
	}
	if e := run("c2", `{"Cmd":["id"]}`); !e.User.Root {
		t.Errorf("exec inherits root: %+v", e.User)
	}
	if e := run("c1", `{"Cmd":["id"],"User":"0:0","Privileged":true}`); !e.User.Root || e.User.Source != "request" || !e.Privileged || !reflect.DeepEqual(e.Cmd, []string{"id"}) {
		t.Errorf("exec as root: %+v", e)
	}
	// An unknown container is answered 404 before judging, as dockerd would.
	req := request("exec.create", "1.41", `{"Cmd":["id"]}`)
	req.Operation.Vars["name"] = "ghost"
	var re *RequestError
	if _, _, err := Build(context.Background(), req, opts); !errors.As(err, &re) || re.Status != 404 || re.Message != "No such container: ghost" {
		t.Errorf("exec in unknown container: %v", err)
	}
}

func TestPortFacts(t *testing.T) {
	body := minimalCreate + `,"HostConfig":{"PublishAllPorts":true,"PortBindings":{
		"1/tcp":[{"HostIp":""}],"2":[{"HostIp":"0.0.0.0"}],"3/udp":[{"HostIp":"::"}],"4/tcp":[{"HostIp":"0"}],
		"5/tcp":[{"HostIp":"::0"}],"6/tcp":[{"HostIp":"0:0:0:0:0:0:0:0"}],"7/tcp":[{"HostIp":"localhost"}],
		"8/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}],"9/tcp":[{"HostIp":"127.1.2.3"}],"10/tcp":[{"HostIp":"::1"}],
		"11/tcp":[{"HostIp":"192.168.1.5"}],"12/tcp":[null],"13/sctp":[],"14/tcp":[{"HostIp":"0177.0.0.1"}],"15/tcp":[{"HostIp":"::ffff:127.0.0.1"}]}}}`
	f := createFacts(t, "1.41", body, Options{})
	if !f.PublishAll {
		t.Error("publish_all not set")
	}
	want := map[string][2]bool{ // port: all_interfaces, loopback
		"1": {true, false}, "2": {true, false}, "3": {true, false}, "4": {true, false}, "5": {true, false}, "6": {true, false},
		"7": {true, false}, "8": {false, true}, "9": {false, true}, "10": {false, true}, "11": {false, false}, "12": {true, false},
		"14": {true, false}, "15": {false, true},
	}
	if len(f.Ports) != len(want) {
		t.Fatalf("%d ports: %+v", len(f.Ports), f.Ports)
	}
	for _, p := range f.Ports {
		w, ok := want[p.ContainerPort]
		if !ok || p.AllInterfaces != w[0] || p.Loopback != w[1] {
			t.Errorf("port %+v, want all=%v loopback=%v", p, w[0], w[1])
		}
		if p.ContainerPort == "2" && p.Protocol != "tcp" || p.ContainerPort == "3" && p.Protocol != "udp" {
			t.Errorf("protocol: %+v", p)
		}
	}
}

func TestNetworkAndNamespaceFacts(t *testing.T) {
	fd := newFakeDaemon()
	fd.containers["onhost"] = &ContainerInfo{ID: "h1", NetworkMode: "host", PidMode: "host"}
	fd.containers["plain"] = &ContainerInfo{ID: "p1", NetworkMode: "bridge"}
	opts := Options{Daemon: fd, CgroupV2: new(bool)}
	f := createFacts(t, "1.44", minimalCreate+`,"HostConfig":{"NetworkMode":"4444"},"NetworkingConfig":{"EndpointsConfig":{"4444":{"Aliases":["a"]},"openhands-network":{"IPAMConfig":{"IPv4Address":"10.0.0.5"}},"bridge":{}}}}`, opts)
	if len(f.Networks) != 2 || f.Networks[0].Name != "openhands-network" || f.Networks[0].Mode != "named" || f.Networks[0].IPv4 != "10.0.0.5" || f.Networks[1].Mode != "bridge" {
		t.Errorf("networks by ID prefix: %+v", f.Networks)
	}
	// A network ID prefix that names the host network is the host's namespace.
	f = createFacts(t, "1.41", minimalCreate+`,"HostConfig":{"NetworkMode":"2222"}}`, opts)
	if !f.Namespaces.Network.Host || f.Networks[0].Driver != "host" {
		t.Errorf("host network by prefix: %+v %+v", f.Networks, f.Namespaces.Network)
	}
	f = createFacts(t, "1.41", minimalCreate+`,"HostConfig":{"NetworkMode":"default"},"NetworkingConfig":{"EndpointsConfig":{"default":{"Aliases":["x"]}}}}`, opts)
	if len(f.Networks) != 1 || f.Networks[0].Mode != "default" || f.Networks[0].Name != "bridge" || len(f.Networks[0].Aliases) != 1 {
		t.Errorf("default network: %+v", f.Networks)
	}
	f = createFacts(t, "1.41", minimalCreate+`,"HostConfig":{"NetworkMode":"nope"}}`, opts)
	if f.Networks[0].Found {
		t.Errorf("unknown network found: %+v", f.Networks)
	}
	f = createFacts(t, "1.41", minimalCreate+`,"HostConfig":{"NetworkMode":"container:onhost","PidMode":"container:onhost","IpcMode":"host","UTSMode":"host","UsernsMode":"host","CgroupnsMode":"host"}}`, opts)
	ns := f.Namespaces
	if !ns.Network.Host || ns.Network.Container != "onhost" || !ns.PID.Host || !ns.IPC.Host || !ns.UTS.Host || !ns.User.Host || !ns.Cgroup.Host || ns.Cgroup.Default {
		t.Errorf("host namespaces: %+v", ns)
	}
	f = createFacts(t, "1.41", minimalCreate+`,"HostConfig":{"NetworkMode":"container:plain","PidMode":"container:plain"}}`, opts)
	if f.Namespaces.Network.Host || f.Namespaces.PID.Host || f.Namespaces.PID.Container != "plain" {
		t.Errorf("container namespaces: %+v", f.Namespaces)
	}
	// Version-dependent defaults.
	f = createFacts(t, "1.39", minimalCreate+`}`, opts)
	if f.Namespaces.IPC.Mode != "shareable" || !f.Namespaces.IPC.Default || f.Namespaces.Cgroup.Mode != "host" || f.Namespaces.Cgroup.Host {
		t.Errorf("1.39 defaults: %+v", f.Namespaces)
	}
	v2 := true
	f = createFacts(t, "1.41", minimalCreate+`}`, Options{CgroupV2: &v2})
	if f.Namespaces.IPC.Mode != "private" || f.Namespaces.Cgroup.Mode != "private" {
		t.Errorf("1.41 defaults on cgroup v2: %+v", f.Namespaces)
	}
}

func TestPrivilegeFacts(t *testing.T) {
	body := minimalCreate + `,"HostConfig":{"Privileged":true,"CapAdd":["net_admin","CAP_SYS_ADMIN","all"],"CapDrop":"chown",
		"SecurityOpt":["seccomp:unconfined","apparmor=unconfined","label:disable","systempaths=unconfined","no-new-privileges=false","writable-cgroups=true"],
		"MaskedPaths":[],"Devices":[{"PathOnHost":"/dev/kmsg","PathInContainer":"/dev/kmsg","CgroupPermissions":"rwm"}],
		"DeviceRequests":[{"Driver":"nvidia","Count":-1,"Capabilities":[["gpu"]]}],"Runtime":"runc","CgroupParent":"/x","Sysctls":{"net.ipv4.ip_forward":"1"},
		"LogConfig":{"Type":"syslog","Config":{"syslog-address":"tcp://1.2.3.4:514"}},"Links":["a:b"],"ExtraHosts":["h:1.2.3.4"],"Annotations":{"a":"b"},"GroupAdd":["0"],"Cgroup":"container:x"}}`
	p := createFacts(t, "1.43", body, Options{}).Privileges
	if !p.Privileged || !reflect.DeepEqual(p.CapAdd, []string{"NET_ADMIN", "SYS_ADMIN", "ALL"}) || !reflect.DeepEqual(p.CapDrop, []string{"CHOWN"}) {
		t.Errorf("caps: %+v", p)
	}
	if want := []string{"apparmor", "label", "no-new-privileges=false", "seccomp", "systempaths", "writable-cgroups"}; !reflect.DeepEqual(p.Unconfined, want) {
		t.Errorf("unconfined %v, want %v", p.Unconfined, want)
	}
	if !p.MaskedPathsOverride || p.ReadonlyPathsOverride || p.Seccomp != "unconfined" || p.AppArmor != "unconfined" || p.NoNewPrivileges == nil || *p.NoNewPrivileges {
		t.Errorf("security: %+v", p)
	}
	if !reflect.DeepEqual(p.Devices, []string{"/dev/kmsg"}) || len(p.DeviceRequests) != 1 || p.DeviceRequests[0]["driver"] != "nvidia" {
		t.Errorf("devices: %+v", p)
	}
	if p.Runtime != "runc" || p.CgroupParent != "/x" || p.LogDriver != "syslog" || p.Sysctls["net.ipv4.ip_forward"] != "1" || p.Annotations["a"] != "b" || p.Cgroup != "container:x" || p.GroupAdd[0] != "0" {
		t.Errorf("others: %+v", p)
	}
	// Annotations are ignored by dockerd below 1.43.
	if p := createFacts(t, "1.42", body, Options{}).Privileges; len(p.Annotations) != 0 {
		t.Errorf("annotations at 1.42: %v", p.Annotations)
	}
	// The bare "disable" spelling and a custom seccomp profile.
	p = createFacts(t, "1.41", minimalCreate+`,"HostConfig":{"SecurityOpt":["disable","seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}","no-new-privileges"]}}`, Options{}).Privileges
	if !reflect.DeepEqual(p.Unconfined, []string{"label"}) || p.Seccomp != "custom" || p.NoNewPrivileges == nil || !*p.NoNewPrivileges {
		t.Errorf("bare disable / custom seccomp: %+v", p)
	}
}
