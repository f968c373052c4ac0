package policy

import (
	"strings"
	"testing"

	"github.com/sockproxy/sockproxy/policy/input"
	sprego "github.com/sockproxy/sockproxy/rego"
)

func TestRedactOptions(t *testing.T) {
	got := RedactOptions(map[string]string{
		"o":               "addr=10.0.0.1,username=u,password=p,sec=ntlm",
		"device":          "//10.0.0.1/share",
		"com.x.api_key":   "k",
		"S3_SECRET":       "s",
		"token":           "t",
		"com.docker.mtu":  "1400",
		"nfs-credentials": "c",
	})
	want := map[string]string{
		"o": "addr=10.0.0.1,username=u,password=" + Redacted + ",sec=ntlm", "device": "//10.0.0.1/share",
		"com.x.api_key": Redacted, "S3_SECRET": Redacted, "token": Redacted, "com.docker.mtu": "1400", "nfs-credentials": Redacted,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// The facts of a volume.create carry the redacted options, not the input's.
	in := &input.Input{VolumeCreate: &input.VolumeCreateFacts{Name: "v", Driver: "local", Options: map[string]string{"o": "password=p"}}}
	f := facts(in, Result{})["volume"].(map[string]any)
	if o := f["options"].(map[string]string)["o"]; o != "password="+Redacted || in.VolumeCreate.Options["o"] != "password=p" {
		t.Errorf("volume facts o=%q, input o=%q", o, in.VolumeCreate.Options["o"])
	}
}

// The library's refusal messages redact by the same keys as the audit facts
// (rego/util.rego secret_key), so a credential hidden in one is not shown
// by the other.
func TestRegoRedactsTheSameKeys(t *testing.T) {
	util := sprego.Modules()[sprego.FilePrefix+"util.rego"]
	if want := "regex.match(`" + secretKey.String() + "`, k)"; !strings.Contains(util, want) {
		t.Errorf("rego/util.rego secret_key does not use %s", want)
	}
}
