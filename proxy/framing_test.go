package proxy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sockproxy/sockproxy/proxy"
)

// framedProxy is a proxy in front of a fake upstream, with a recording
// decider and audit log.
func framedProxy(t *testing.T, limit int64) (sock string, dec *recorder, up *fakeUpstream, audit *auditLog) {
	t.Helper()
	upSock := filepath.Join(shortDir(t), "up.sock")
	up = startFakeUpstream(t, upSock)
	dec, audit = &recorder{}, &auditLog{}
	sock, _ = startProxy(t, proxy.Config{Decider: dec, Auditor: audit, Upstream: proxy.Upstream{Address: "unix://" + upSock}, BodyLimit: limit})
	return sock, dec, up, audit
}

func jsonMessage(t *testing.T, resp *http.Response) string {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var m struct{ Message string }
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &m); err != nil || m.Message == "" {
		t.Fatalf("body %q is not a Docker-style error: %v", body, err)
	}
	return m.Message
}

func TestChunkedBodyIsJudgedAndForwardedWithLength(t *testing.T) {
	sock, dec, up, _ := framedProxy(t, 0)
	raw := "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
		chunked(`{"Ima`, `ge":"busy"}`)
	resps := rawExchange(t, sock, raw)
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Fatalf("responses: %v", resps)
	}
	reqs := dec.requests()
	if len(reqs) != 1 || string(reqs[0].Body) != `{"Image":"busy"}` {
		t.Fatalf("decider saw %+v, want the de-chunked body", reqs)
	}
	want := `POST /v1.41/containers/create CL=16 TE=[] {"Image":"busy"}`
	if got := up.requests(); len(got) != 1 || got[0] != want {
		t.Fatalf("upstream got %q, want %q", got, want)
	}
}

// CVE-2024-41110: Content-Length: 0 must not hide a chunked body.
func TestZeroLengthPlusChunkedIsJudgedWhole(t *testing.T) {
	sock, dec, up, _ := framedProxy(t, 0)
	raw := "POST /containers/create HTTP/1.1\r\nHost: d\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n" +
		chunked(`{"HostConfig":{"Privil`, `eged":true}}   `)
	resps := rawExchange(t, sock, raw)
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Fatalf("responses: %s", describe(resps))
	}
	wantBody := `{"HostConfig":{"Privileged":true}}   `
	if reqs := dec.requests(); len(reqs) != 1 || string(reqs[0].Body) != wantBody {
		t.Fatalf("decider saw %+v, want %q", reqs, wantBody)
	}
	want := `POST /containers/create CL=37 TE=[] ` + wantBody
	if got := up.requests(); len(got) != 1 || got[0] != want {
		t.Fatalf("upstream got %q, want %q", got, want)
	}
}

func TestExpectContinueBodyIsJudged(t *testing.T) {
	sock, dec, up, _ := framedProxy(t, 0)
	raw := "POST /containers/abc/exec HTTP/1.1\r\nHost: d\r\nConnection: close\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 12\r\n\r\n{\"Cmd\":[\"x\"]"
	resps := rawExchange(t, sock, raw)
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Fatalf("responses: %v", resps)
	}
	if reqs := dec.requests(); len(reqs) != 1 || string(reqs[0].Body) != `{"Cmd":["x"]` {
		t.Fatalf("decider saw %+v", reqs)
	}
	if got := up.requests(); len(got) != 1 || !strings.HasSuffix(got[0], `CL=12 TE=[] {"Cmd":["x"]`) {
		t.Fatalf("upstream got %q", got)
	}
}

func TestOverCapBodyIsRefusedAndNotForwarded(t *testing.T) {
	for _, framing := range []string{"length", "chunked"} {
		t.Run(framing, func(t *testing.T) {
			sock, dec, up, audit := framedProxy(t, 64)
			body := `{"Image":"` + strings.Repeat("a", 100) + `"}`
			raw := "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
			if framing == "length" {
				raw += "Content-Length: 112\r\n\r\n" + body
			} else {
				raw += "Transfer-Encoding: chunked\r\n\r\n" + chunked(body[:50], body[50:])
			}
			resps := rawExchange(t, sock, raw)
			if len(resps) != 1 || resps[0].StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("responses: %v, want one 413", resps)
			}
			if msg := jsonMessage(t, resps[0]); !strings.Contains(msg, "64-byte limit") {
				t.Errorf("message %q does not name the limit", msg)
			}
			if n := len(dec.requests()); n != 0 {
				t.Errorf("decider was asked %d times", n)
			}
			if got := up.requests(); len(got) != 0 {
				t.Errorf("upstream got %q", got)
			}
			if evs := audit.all(); len(evs) != 1 || evs[0].Outcome != "error" || evs[0].Status != 413 {
				t.Errorf("audit: %+v", evs)
			}
		})
	}
}

func TestInvalidChunkedBodyIsRefused(t *testing.T) {
	sock, dec, up, audit := framedProxy(t, 0)
	raw := "POST /containers/create HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
	resps := rawExchange(t, sock, raw)
	if len(resps) != 1 || resps[0].StatusCode != http.StatusBadRequest {
		t.Fatalf("responses: %v, want one 400", resps)
	}
	jsonMessage(t, resps[0])
	if len(dec.requests()) != 0 || len(up.requests()) != 0 {
		t.Errorf("decider %v / upstream %v should have seen nothing", dec.requests(), up.requests())
	}
	if evs := audit.all(); len(evs) != 1 || evs[0].Outcome != "error" {
		t.Errorf("audit: %+v", evs)
	}
}

func TestPipelinedRequestsAreEachDecided(t *testing.T) {
	sock, dec, up, audit := framedProxy(t, 0)
	dec.verdict = func(r *proxy.Request) proxy.Decision {
		if r.Operation.Name == "container.create" {
			return proxy.Decision{Reasons: []string{"no creates"}}
		}
		return proxy.Decision{Allow: true}
	}
	raw := "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n" +
		"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}" +
		"GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
	resps := rawExchange(t, sock, raw)
	if len(resps) != 3 {
		t.Fatalf("got %d responses, want 3", len(resps))
	}
	if resps[0].StatusCode != 200 || resps[1].StatusCode != 403 || resps[2].StatusCode != 200 {
		t.Fatalf("statuses %d %d %d, want 200 403 200", resps[0].StatusCode, resps[1].StatusCode, resps[2].StatusCode)
	}
	if msg := jsonMessage(t, resps[1]); msg != "sockproxy refused container.create: no creates" {
		t.Errorf("refusal message %q", msg)
	}
	var names []string
	for _, r := range dec.requests() {
		names = append(names, r.Operation.Name)
	}
	if strings.Join(names, ",") != "system.ping,container.create,container.list" {
		t.Errorf("decided %v", names)
	}
	if got := up.requests(); len(got) != 2 || !strings.HasPrefix(got[0], "GET /_ping") || !strings.HasPrefix(got[1], "GET /v1.41/containers/json") {
		t.Errorf("upstream got %q", got)
	}
	if evs := audit.all(); len(evs) != 3 || evs[1].Outcome != "deny" || evs[1].Status != 403 || evs[0].Outcome != "allow" || evs[0].Status != 200 {
		t.Errorf("audit: %+v", evs)
	}
}

func TestRouteErrorIsRefused(t *testing.T) {
	sock, dec, up, _ := framedProxy(t, 0)
	resps := rawExchange(t, sock, "GET /v1.41/nope HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 404 {
		t.Fatalf("responses %v, want one 404", resps)
	}
	if msg := jsonMessage(t, resps[0]); msg != "page not found" {
		t.Errorf("message %q", msg)
	}
	if len(dec.requests()) != 0 || len(up.requests()) != 0 {
		t.Error("an unclassified request reached the decider or the upstream")
	}
}

func TestDecisionBodyReplacesForwardedBody(t *testing.T) {
	sock, dec, up, audit := framedProxy(t, 0)
	dec.verdict = func(*proxy.Request) proxy.Decision {
		return proxy.Decision{Allow: true, Body: []byte(`{"Image":"canonical"}`)}
	}
	resps := rawExchange(t, sock, "POST /containers/create HTTP/1.1\r\nHost: d\r\nConnection: close\r\nContent-Length: 13\r\n\r\n{\"image\":\"x\"}")
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Fatalf("responses %v", resps)
	}
	if got := up.requests(); len(got) != 1 || got[0] != `POST /containers/create CL=21 TE=[] {"Image":"canonical"}` {
		t.Errorf("upstream got %q", got)
	}
	if evs := audit.all(); len(evs) != 1 || evs[0].BodySHA256 != sha256hex(`{"Image":"canonical"}`) {
		t.Errorf("audit: %+v", evs)
	}
}

func TestAuditNotReadyRefuses(t *testing.T) {
	sock, _, up, audit := framedProxy(t, 0)
	audit.err = errors.New("disk full")
	resps := rawExchange(t, sock, "GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("responses %v, want one 503", resps)
	}
	if msg := jsonMessage(t, resps[0]); !strings.Contains(msg, "disk full") {
		t.Errorf("message %q", msg)
	}
	if len(up.requests()) != 0 {
		t.Error("an unaudited request was forwarded")
	}
}

func TestUpstreamDownThenBack(t *testing.T) {
	upSock := filepath.Join(shortDir(t), "up.sock")
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	client := dockerClient(sock)
	resp, err := client.Get("http://d/_ping")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if msg := jsonMessage(t, resp); !strings.Contains(msg, "unix://"+upSock) || !strings.Contains(msg, "dockerd is running") {
		t.Errorf("message %q should name the socket and what to do", msg)
	}
	resp.Body.Close()

	startFakeUpstream(t, upSock)
	resp, err = client.Get("http://d/_ping")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "OK" || resp.Header.Get("Api-Version") != "1.41" {
		t.Fatalf("after recovery: %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func dockerClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func describe(resps []*http.Response) string {
	var b strings.Builder
	for _, r := range resps {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(&b, "[%d %q] ", r.StatusCode, body)
	}
	return b.String()
}

// chunked encodes parts as the chunks of a chunked body.
func chunked(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(p), p)
	}
	return b.String() + "0\r\n\r\n"
}

func TestDryRunForwardsRefusalsButNotPanics(t *testing.T) {
	upSock := filepath.Join(shortDir(t), "up.sock")
	up := startFakeUpstream(t, upSock)
	audit := &auditLog{}
	dec := proxy.DeciderFunc(func(_ context.Context, r *proxy.Request) proxy.Decision {
		if r.Operation.Name == "container.create" {
			panic("broken policy")
		}
		return proxy.Decision{Reasons: []string{"pings are refused"}}
	})
	sock, _ := startProxy(t, proxy.Config{Decider: dec, Auditor: audit, Mode: "dry-run", Upstream: proxy.Upstream{Address: "unix://" + upSock}})
	resps := rawExchange(t, sock, "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"+
		"POST /containers/create HTTP/1.1\r\nHost: d\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
	if len(resps) != 2 || resps[0].StatusCode != 200 || resps[1].StatusCode != 500 {
		t.Fatalf("responses %s, want 200 (dry-run) then 500 (panic)", describe(resps))
	}
	if got := up.requests(); len(got) != 1 || !strings.HasPrefix(got[0], "GET /_ping") {
		t.Errorf("upstream got %q", got)
	}
	evs := audit.all()
	if len(evs) != 2 || evs[0].Mode != "dry-run" || evs[0].Outcome != "allow" || evs[0].Decision.Allow || evs[1].Outcome != "error" {
		t.Errorf("audit %+v", evs)
	}
}

func TestUnknownModeRejected(t *testing.T) {
	if _, err := proxy.New(proxy.Config{Classifier: testClassifier(), Decider: proxy.AllowAll, Mode: "audit"}); err == nil {
		t.Fatal("mode audit accepted")
	}
	if _, err := proxy.New(proxy.Config{Classifier: testClassifier()}); err == nil {
		t.Fatal("a proxy without a decider was built")
	}
}

func TestUpgradeOnlyForHijackingOperations(t *testing.T) {
	var mu sync.Mutex
	var upgradeSeen []string
	up := handlerUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		upgradeSeen = append(upgradeSeen, r.Header.Get("Upgrade"))
		_, _ = io.WriteString(w, "OK")
	})
	sock, _ := startProxy(t, proxy.Config{Decider: proxy.AllowAll, Upstream: proxy.Upstream{Address: "unix://" + up}})
	resps := rawExchange(t, sock, "GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"+
		"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
	if len(resps) != 2 || resps[0].StatusCode != 200 || resps[1].StatusCode != 200 {
		t.Fatalf("responses %s", describe(resps))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(upgradeSeen) != 2 || upgradeSeen[0] != "" {
		t.Errorf("upstream saw Upgrade headers %q, want none", upgradeSeen)
	}
}
