package input

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
)

// build runs Build on op/body at API 1.41 with the fake daemon.
func build(t *testing.T, op, body string, mutate ...func(*http.Header)) (*Input, []byte, error) {
	t.Helper()
	req := request(op, "1.41", body)
	for _, m := range mutate {
		m(&req.Header)
	}
	return Build(context.Background(), req, Options{Daemon: newFakeDaemon(), HostFS: HostFS{Unavailable: true}})
}

func wantRefused(t *testing.T, err error, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want refusal containing %q", contains)
	}
	var re *RequestError
	if !errors.As(err, &re) || re.Status != http.StatusBadRequest {
		t.Fatalf("error %v (%T); want a *RequestError with status 400", err, err)
	}
	if !strings.Contains(re.Message, contains) {
		t.Fatalf("message %q does not contain %q", re.Message, contains)
	}
}

const minimalCreate = `{"Image":"busybox","Cmd":["true"]`

func TestStrictDecodingTraps(t *testing.T) {
	cases := []struct {
		name, op, body, refused string
	}{
		{"lower-case field in HostConfig", "container.create", minimalCreate + `,"HostConfig":{"privileged":true}}`, `"privileged" in "HostConfig" must be spelled "Privileged"`},
		{"upper-case field", "container.create", minimalCreate + `,"HostConfig":{"PRIVILEGED":true}}`, `must be spelled "Privileged"`},
		{"long s folds to s", "container.create", minimalCreate + `,"HostConfig":{"ſecurityOpt":["seccomp=unconfined"]}}`, `must be spelled "SecurityOpt"`},
		{"kelvin sign folds to k", "container.create", minimalCreate + `,"HostConfig":{"Lin\u212As":["x:y"]}}`, `must be spelled "Links"`},
		{"underscore spelling", "container.create", minimalCreate + `,"HostConfig":{"Cap_Add":["ALL"]}}`, `must be spelled "CapAdd"`},
		{"lower-case HostConfig wrapper", "container.create", minimalCreate + `,"hostconfig":{"Privileged":true}}`, `must be spelled "HostConfig"`},
		{"lower-case field at depth", "container.create", minimalCreate + `,"HostConfig":{"Mounts":[{"Type":"bind","source":"/","Target":"/host"}]}}`, `must be spelled "Source"`},
		{"lower-case key in endpoint settings", "container.create", minimalCreate + `,"NetworkingConfig":{"EndpointsConfig":{"n":{"ipamconfig":{}}}}}`, `must be spelled "IPAMConfig"`},
		{"top-level HostConfig field (dockerd < 27 honours it)", "container.create", minimalCreate + `,"Binds":["/:/host"]}`, `unknown top-level key "Binds"`},
		{"top-level Privileged", "container.create", minimalCreate + `,"Privileged":true}`, `unknown top-level key "Privileged"`},
		{"top-level Cpuset (20.10 wrapper field)", "container.create", minimalCreate + `,"Cpuset":"0"}`, `unknown top-level key "Cpuset"`},
		{"duplicate HostConfig objects merge", "container.create", minimalCreate + `,"HostConfig":{"Binds":[]},"HostConfig":{"Privileged":true}}`, `duplicate key "HostConfig"`},
		{"duplicate key at depth", "container.create", minimalCreate + `,"HostConfig":{"Privileged":false,"Privileged":true}}`, `duplicate key "Privileged" in "HostConfig"`},
		{"duplicate map key", "container.create", minimalCreate + `,"HostConfig":{"PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1"}],"80/tcp":[{"HostIp":"0.0.0.0"}]}}}`, `duplicate key "80/tcp"`},
		{"duplicate key deep in a list", "container.create", minimalCreate + `,"HostConfig":{"Mounts":[{"Type":"bind","Source":"/a","Source":"/","Target":"/x"}]}}`, `duplicate key "Source"`},
		{"duplicate after UTF-8 repair", "container.create", minimalCreate + ",\"Labels\":{\"\xff\":\"a\",\"\xfe\":\"b\"}}", `duplicate key`},
		{"duplicate inside an ignored key", "container.create", minimalCreate + `,"HostConfig":{"X":{"a":1,"a":2}}}`, `duplicate key "a"`},
		{"second JSON value", "container.create", minimalCreate + `} {"HostConfig":{"Privileged":true}}`, `unexpected data after the JSON value`},
		{"trailing brace (dockerd's More() misses it)", "container.create", minimalCreate + `}}`, `unexpected data after the JSON value`},
		{"invalid JSON", "container.create", `{"Image":`, `unexpected end of JSON`},
		{"type mismatch", "container.create", minimalCreate + `,"HostConfig":{"Privileged":"yes"}}`, `invalid JSON for the Engine API`},
		{"null create", "container.create", `null`, `config cannot be empty`},
		{"empty object create", "container.create", `{}`, `config cannot be empty`},
		{"empty create", "container.create", ``, `needs a JSON body`},
		{"exec lower-case user", "exec.create", `{"Cmd":["id"],"user":"0"}`, `must be spelled "User"`},
		{"exec unknown top-level key", "exec.create", `{"Cmd":["id"],"Foo":1}`, `unknown top-level key "Foo"`},
		{"connect lower-case container", "network.connect", `{"container":"x"}`, `must be spelled "Container"`},
		{"network create duplicate option", "network.create", `{"Name":"n","Driver":"macvlan","Options":{"parent":"eth0","parent":"eth1"}}`, `duplicate key "parent"`},
		{"volume create folded key", "volume.create", `{"Name":"v","driveropts":{"o":"bind"}}`, `must be spelled "DriverOpts"`},
		{"update duplicate", "container.update", `{"Memory":1,"Memory":2}`, `duplicate key "Memory"`},
		{"commit top-level HostConfig field", "container.commit", `{"Privileged":true}`, `unknown top-level key "Privileged"`},
		{"exec start folded", "exec.start", `{"detach":true}`, `must be spelled "Detach"`},
		{"start with a body", "container.start", `{"Binds":["/:/h"]}`, `removed in API 1.24`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := build(t, c.op, c.body)
			wantRefused(t, err, c.refused)
		})
	}
}

func TestContentType(t *testing.T) {
	body := minimalCreate + `}`
	for _, ct := range []string{"application/json", "Application/JSON", "application/json; charset=utf-8", "APPLICATION/JSON ; foo=bar"} {
		if _, _, err := build(t, "container.create", body, func(h *http.Header) { h.Set("Content-Type", ct) }); err != nil {
			t.Errorf("Content-Type %q refused: %v", ct, err)
		}
	}
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/jsonx", "application/json/x", "application/json; =bad"} {
		_, _, err := build(t, "container.create", body, func(h *http.Header) { h.Set("Content-Type", ct) })
		if err == nil {
			t.Errorf("Content-Type %q accepted", ct)
		}
	}
	// No body: dockerd does not look at the type; nothing is forwarded.
	req := request("network.connect", "1.41", "")
	req.Header.Set("Content-Type", "text/plain")
	if _, canon, err := Build(context.Background(), req, Options{}); err != nil || canon != nil {
		t.Errorf("empty body: canon %q, err %v", canon, err)
	}
}

func TestUnknownNestedKeysDropped(t *testing.T) {
	in, canon, err := build(t, "container.create", minimalCreate+`,"HostConfig":{"Foo":{"Privileged":true},"NetworkMode":"openhands-network"},"NetworkingConfig":{"openhands-network":null}}`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(canon), "Foo") || strings.Contains(string(canon), `"openhands-network":null`) {
		t.Fatalf("unknown keys reached the canonical body: %s", canon)
	}
	if in.Container.Privileges.Privileged {
		t.Fatal("an ignored nested key set Privileged")
	}
	if len(in.Container.Networks) != 1 || in.Container.Networks[0].Name != "openhands-network" {
		t.Fatalf("networks %+v", in.Container.Networks)
	}
}

func TestEscapedKeyIsTheField(t *testing.T) {
	// encoding/json unescapes keys before matching, and so does the walk.
	in, canon, err := build(t, "container.create", minimalCreate+`,"HostConfig":{"Privil\u0065ged":true}}`)
	if err != nil {
		t.Fatal(err)
	}
	if !in.Container.Privileges.Privileged || !strings.Contains(string(canon), `"Privileged":true`) {
		t.Fatalf("escaped key not read as Privileged: %s", canon)
	}
}

func TestStartBody(t *testing.T) {
	for _, body := range []string{"", "{}", "null", "  {}  "} {
		in, canon, err := build(t, "container.start", body)
		if err != nil || canon == nil || len(canon) != 0 || in.Body != nil {
			t.Errorf("start body %q: canon %q err %v", body, canon, err)
		}
	}
}

func TestVersionFloor(t *testing.T) {
	body := minimalCreate + `}`
	for _, c := range []struct {
		version, floor string
		ok             bool
	}{
		{"1.23", "", false},
		{"1.24", "", true},
		{"1.12", "1.0", false}, // the floor is never below 1.24
		{"1.30", "1.35", false},
		{"1.35", "1.35", true},
		{"1.100", "1.35", true}, // parts compare as integers
	} {
		req := request("container.create", c.version, body)
		_, _, err := Build(context.Background(), req, Options{MinAPIVersion: c.floor})
		if (err == nil) != c.ok {
			t.Errorf("version %s floor %q: err %v", c.version, c.floor, err)
		}
	}
	// Unversioned paths take the default version.
	req := request("container.create", "", body)
	in, _, err := Build(context.Background(), req, Options{DefaultAPIVersion: "1.41"})
	if err != nil || in.APIVersion != "1.41" || in.Versioned {
		t.Fatalf("unversioned: %+v %v", in, err)
	}
	in, _, _ = Build(context.Background(), req, Options{})
	if in.APIVersion != DefaultAPIVersion {
		t.Fatalf("default version %q", in.APIVersion)
	}
}

// roundTripCases are bodies whose fields encode asymmetrically in moby's
// types; each must decode identically from the canonical bytes.
var roundTripCases = map[string]string{
	"openhands":                 "",
	"shell empty (omitempty)":   minimalCreate + `,"Shell":[]}`,
	"cmd as a string":           `{"Image":"busybox","Cmd":"echo hi","Entrypoint":"sh"}`,
	"entrypoint empty vs null":  minimalCreate + `,"Entrypoint":[]}`,
	"entrypoint null":           minimalCreate + `,"Entrypoint":null}`,
	"hostconfig null":           minimalCreate + `,"HostConfig":null}`,
	"hostconfig empty":          minimalCreate + `,"HostConfig":{}}`,
	"mounts empty":              minimalCreate + `,"HostConfig":{"Mounts":[]}}`,
	"masked paths empty":        minimalCreate + `,"HostConfig":{"MaskedPaths":[],"ReadonlyPaths":[]}}`,
	"tmpfs sysctls empty":       minimalCreate + `,"HostConfig":{"Tmpfs":{},"Sysctls":{},"StorageOpt":{},"Annotations":{}}}`,
	"healthcheck empty test":    minimalCreate + `,"Healthcheck":{"Test":[],"Interval":0,"StartInterval":5}}`,
	"healthcheck none":          minimalCreate + `,"Healthcheck":{"Test":["NONE"]}}`,
	"exposed ports empty":       minimalCreate + `,"ExposedPorts":{}}`,
	"volumes with null value":   minimalCreate + `,"Volumes":{"/a":null,"/b":{}}}`,
	"mac address deprecated":    minimalCreate + `,"MacAddress":"02:42:ac:11:00:02","NetworkingConfig":{"EndpointsConfig":{"bridge":{"MacAddress":""}}}}`,
	"endpoints config empty":    minimalCreate + `,"NetworkingConfig":{"EndpointsConfig":{}}}`,
	"endpoints config null":     minimalCreate + `,"NetworkingConfig":{"EndpointsConfig":null}}`,
	"endpoint null":             minimalCreate + `,"NetworkingConfig":{"EndpointsConfig":{"n":null}}}`,
	"networking config null":    minimalCreate + `,"NetworkingConfig":null}`,
	"init false vs absent":      minimalCreate + `,"HostConfig":{"Init":false,"OomKillDisable":false,"PidsLimit":0}}`,
	"bind options empty":        minimalCreate + `,"HostConfig":{"Mounts":[{"Type":"bind","Source":"/tmp","Target":"/t","BindOptions":{}}]}}`,
	"volume options labels":     minimalCreate + `,"HostConfig":{"Mounts":[{"Type":"volume","Target":"/t","VolumeOptions":{"Labels":{},"DriverConfig":{"Options":{}}}}]}}`,
	"tmpfs options":             minimalCreate + `,"HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"Options":[],"Mode":448}}]}}`,
	"console size":              minimalCreate + `,"HostConfig":{"ConsoleSize":[24,80]}}`,
	"device requests":           minimalCreate + `,"HostConfig":{"DeviceRequests":[{"Driver":"nvidia","Count":-1,"Capabilities":[["gpu"]],"Options":{}}]}}`,
	"ulimits":                   minimalCreate + `,"HostConfig":{"Ulimits":[{"Name":"nofile","Soft":1024,"Hard":2048}]}}`,
	"strings needing escapes":   `{"Image":"busybox","Env":["A=<&>\u2028\u0001\"\\é"],"Labels":{"\u00e9":"\ud83d\ude00"}}`,
	"big numbers":               minimalCreate + `,"HostConfig":{"Memory":9223372036854775807,"IOMaximumBandwidth":18446744073709551615}}`,
	"port binding null entries": minimalCreate + `,"HostConfig":{"PortBindings":{"80":[null],"81/udp":[],"82/tcp":null}}}`,
	"stop timeout zero":         minimalCreate + `,"StopTimeout":0}`,
	"whitespace around":         " \n" + minimalCreate + "}\r\n\t ",
}

func TestRoundTripCreate(t *testing.T) {
	for name, body := range roundTripCases {
		if body == "" {
			body = string(readTestdata(t, "openhands-create.json"))
		}
		t.Run(name, func(t *testing.T) {
			_, canon, err := build(t, "container.create", body)
			if err != nil {
				t.Fatal(err)
			}
			var orig, again container.CreateRequest
			if err := json.Unmarshal([]byte(body), &orig); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(canon, &again); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(orig, again) {
				t.Fatalf("canonical body decodes differently\noriginal:  %s\ncanonical: %s", body, canon)
			}
			// Canonical bytes are a fixed point.
			_, canon2, err := build(t, "container.create", string(canon))
			if err != nil || string(canon2) != string(canon) {
				t.Fatalf("canonical bytes are not stable: %v\n%s\n%s", err, canon, canon2)
			}
		})
	}
}

// TestOmitEmptyKept pins the one place the canonical encoder differs from
// json.Marshal: json.Marshal would drop "Shell":[] and dockerd would read nil.
func TestOmitEmptyKept(t *testing.T) {
	var cr container.CreateRequest
	if err := json.Unmarshal([]byte(minimalCreate+`,"Shell":[],"HostConfig":{"Mounts":[]}}`), &cr); err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(&cr)
	var viaPlain container.CreateRequest
	_ = json.Unmarshal(plain, &viaPlain)
	if viaPlain.Shell != nil {
		t.Fatal("json.Marshal kept the empty Shell; the special case is no longer needed")
	}
	canon, err := canonicalJSON(&cr)
	if err != nil {
		t.Fatal(err)
	}
	var viaCanon container.CreateRequest
	_ = json.Unmarshal(canon, &viaCanon)
	if viaCanon.Shell == nil || viaCanon.HostConfig.Mounts == nil {
		t.Fatalf("canonical encoding lost an empty list: %s", canon)
	}
}

func TestOtherOperationsRoundTrip(t *testing.T) {
	cases := map[string]string{
		"exec.create":        `{"User":"0:0","Privileged":true,"Cmd":["sh"],"Env":[],"ConsoleSize":[1,2],"AttachStdout":true}`,
		"exec.start":         `{"Detach":false,"Tty":true,"ConsoleSize":null}`,
		"network.create":     `{"Name":"n","Driver":"macvlan","Options":{"parent":"eth0"},"IPAM":{"Config":[{"Subnet":"10.9.0.0/24"}]},"CheckDuplicate":true,"EnableIPv6":false}`,
		"network.connect":    `{"Container":"c","EndpointConfig":{}}`,
		"network.disconnect": `{"Container":"c","Force":true}`,
		"volume.create":      `{"Name":"v","Driver":"local","DriverOpts":{"type":"none","o":"bind","device":"/etc"},"Labels":{}}`,
		"container.update":   `{"Memory":1048576,"RestartPolicy":{"Name":"always"},"PidsLimit":null}`,
		"container.commit":   `{"Cmd":["x"],"Labels":{"a":"b"}}`,
	}
	for op, body := range cases {
		t.Run(op, func(t *testing.T) {
			in, canon, err := build(t, op, body)
			if err != nil {
				t.Fatal(err)
			}
			typ := bodySpecs[op].typ
			a, b := reflect.New(typ), reflect.New(typ)
			_ = json.Unmarshal([]byte(body), a.Interface())
			_ = json.Unmarshal(canon, b.Interface())
			if !reflect.DeepEqual(a.Interface(), b.Interface()) {
				t.Fatalf("canonical differs:\n%s\n%s", body, canon)
			}
			if in.Body == nil {
				t.Fatal("body missing from the input")
			}
		})
	}
}
