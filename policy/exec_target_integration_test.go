package policy

// Integration test of the exec rules on the target container: containers
// made directly on dockerd (as an administrator would, or before the proxy
// was installed) with settings the caller's create would be refused; a
// non-root exec into them through the proxy is refused naming the setting,
// at exec.create and at exec.start, and leaves no exec instance behind.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/sockproxy/sockproxy/internal/dockertest"
)

func TestExecIntoHostReachingContainers(t *testing.T) {
	sock := dockertest.Require(t)
	api := docker{t: t, c: dockertest.Client(sock)}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "sp-exectarget-" + hex.EncodeToString(b)

	ctr := func(name, hostConfig string) string {
		return runContainer(t, api, prefix+"-"+name, `{"Image": "`+dockertest.NonRootImage+`", "Cmd": ["sleep", "600"], "HostConfig": `+hostConfig+`}`, true)
	}
	hostPID := ctr("pid", `{"PidMode": "host"}`)
	sysAdmin := ctr("cap", `{"CapAdd": ["SYS_ADMIN"]}`)
	rootBind := ctr("root", `{"Binds": ["/:/host"]}`)
	dockerSock := ctr("sock", `{"Binds": ["`+sock+`:/var/run/docker.sock"]}`)
	hardened := ctr("plain", `{"SecurityOpt": ["no-new-privileges"], "CapDrop": ["ALL"], "ReadonlyRootfs": true, "Tmpfs": {"/tmp": ""}}`)
	all := []string{hostPID, sysAdmin, rootBind, dockerSock, hardened}

	execIDs := func() map[string][]string {
		out := map[string][]string{}
		for _, id := range all {
			var c struct{ ExecIDs []string }
			inspect(api, "/containers/"+id+"/json", &c)
			out[id] = c.ExecIDs
		}
		return out
	}
	// runAs1000 creates and starts a non-root exec through px and asserts
	// that it ran as uid 1000.
	runAs1000 := func(t *testing.T, px docker, id string) {
		t.Helper()
		var created struct{ ID string }
		body := `{"Cmd": ["id", "-u"], "AttachStdout": true, "User": "1000:1000"}`
		if err := json.Unmarshal(px.on(t).do("POST", "/containers/"+id+"/exec", []byte(body), http.StatusCreated), &created); err != nil {
			t.Fatal(err)
		}
		out := px.on(t).do("POST", "/exec/"+created.ID+"/start", []byte(`{"Detach": false, "Tty": true}`), http.StatusOK)
		if got := strings.TrimSpace(string(out)); got != "1000" {
			t.Fatalf("exec ran as uid %q, want 1000", got)
		}
	}

	px := startPolicyProxy(t, nil)
	exec := `{"Cmd": ["id", "-u"], "AttachStdout": true, "User": "1000:1000"}`
	before := execIDs()
	expectRefused(t, px, "exec.create", []refusal{
		{name: "pid host", method: "POST", path: "/containers/" + hostPID + "/exec", body: exec,
			want: []string{"exec into container " + hostPID + " shares what this caller may not create: pid namespace host is not allowed"}},
		{name: "cap SYS_ADMIN", method: "POST", path: "/containers/" + sysAdmin + "/exec", body: exec,
			want: []string{"exec into container " + sysAdmin + " shares what this caller may not create: capability SYS_ADMIN is not allowed"}},
		{name: "bind of / read-write", method: "POST", path: "/containers/" + rootBind + "/exec", body: exec,
			want: []string{"exec into container " + rootBind + " shares what this caller may not create: mount /:/host is not under an allowed root"}},
		{name: "docker socket bind", method: "POST", path: "/containers/" + dockerSock + "/exec", body: exec,
			want: []string{"exec into container " + dockerSock + " shares what this caller may not create: mount " + sock + ":/var/run/docker.sock is not under an allowed root"}},
	}, func(t *testing.T) {
		api.t = t
		if now := execIDs(); !reflect.DeepEqual(now, before) {
			t.Fatalf("a refused exec.create made an exec instance: exec IDs %v, were %v", now, before)
		}
	})
	api.t = t

	t.Run("hardened container", func(t *testing.T) { runAs1000(t, px, hardened) })

	// Exec instances made directly on dockerd are judged when they start
	// through the proxy (their container, and their own user and
	// privilege), and do not run.
	direct := func(ctr, body string) string {
		var x struct{ ID string }
		if err := json.Unmarshal(api.do("POST", "/containers/"+ctr+"/exec", []byte(body), http.StatusCreated), &x); err != nil {
			t.Fatal(err)
		}
		return x.ID
	}
	inSysAdmin := direct(sysAdmin, exec)
	asRoot := direct(hardened, `{"Cmd": ["id", "-u"], "User": "0"}`)
	privileged := direct(hardened, `{"Cmd": ["id", "-u"], "User": "1000", "Privileged": true}`)
	start := `{"Detach": false, "Tty": true}`
	expectRefused(t, px, "exec.start", []refusal{
		{name: "exec made on dockerd in a SYS_ADMIN container", method: "POST", path: "/exec/" + inSysAdmin + "/start", body: start,
			want: []string{"exec into container " + prefix + "-cap shares what this caller may not create: capability SYS_ADMIN is not allowed"}},
		{name: "exec made on dockerd as root", method: "POST", path: "/exec/" + asRoot + "/start", body: start,
			want: []string{"exec user 0 (uid 0, the exec instance's user) not allowed"}},
		{name: "privileged exec made on dockerd", method: "POST", path: "/exec/" + privileged + "/start", body: start,
			want: []string{"exec privileged is not allowed"}},
	}, func(t *testing.T) {
		for _, id := range []string{inSysAdmin, asRoot, privileged} {
			var x struct {
				Running bool
				Pid     int
			}
			inspect(api.on(t), "/exec/"+id+"/json", &x)
			if x.Running || x.Pid != 0 {
				t.Fatalf("a refused exec.start ran exec %s: %+v", id, x)
			}
		}
	})

	// The caller's own settings decide: a profile that may create host pid
	// containers may exec into one (dockerd's own label=disable on it is
	// not held against it).
	t.Run("pid host allowed by the caller's settings", func(t *testing.T) {
		runAs1000(t, startPolicyProxy(t, map[string]any{"allowed_host_namespaces": []any{"pid"}}), hostPID)
	})
}
