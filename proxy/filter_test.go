package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockproxy/sockproxy/internal/dockertest"
	"github.com/sockproxy/sockproxy/proxy"
)

// filterDecider allows everything and gives the answers of volume.list,
// system.events and image.list a filter: volumes and event lines naming
// drop are removed; image.list cannot be filtered (its filter fails).
func filterDecider(drop string) proxy.Decider {
	return proxy.DeciderFunc(func(_ context.Context, req *proxy.Request) proxy.Decision {
		d := proxy.Decision{Allow: true}
		switch req.Operation.Name {
		case "volume.list":
			d.Filter = &proxy.ResponseFilter{Whole: func(_ context.Context, body []byte) ([]byte, error) {
				var doc struct {
					Volumes  []map[string]any
					Warnings any
				}
				if err := json.Unmarshal(body, &doc); err != nil {
					return nil, err
				}
				kept := doc.Volumes[:0]
				for _, v := range doc.Volumes {
					if !strings.Contains(fmt.Sprint(v["Name"]), drop) {
						kept = append(kept, v)
					}
				}
				doc.Volumes = kept
				return json.Marshal(doc)
			}}
		case "system.events":
			d.Filter = &proxy.ResponseFilter{Line: func(_ context.Context, line []byte) bool {
				return !strings.Contains(string(line), drop)
			}}
		case "image.list", "container.inspect":
			d.Filter = &proxy.ResponseFilter{Whole: func(context.Context, []byte) ([]byte, error) {
				return nil, errors.New("this answer cannot be filtered")
			}}
		}
		return d
	})
}

// A decision's response filter is applied to dockerd's real answers: a
// list is cut and sent with its new length, an event stream is filtered
// line by line over HTTP/1.1 (chunked) and HTTP/1.0 (until close) and keeps
// streaming live; a filter that fails is a 502, an error answer passes
// unfiltered, and dry-run filters nothing.
func TestResponseFilterOnDockerdAnswers(t *testing.T) {
	upstream := dockertest.Require(t)
	direct := dockertest.Client(upstream)
	sfx := randomSuffix()
	keep, drop := "sp-test-filter-"+sfx+"-keep", "sp-test-filter-"+sfx+"-drop"
	mkVolume := func(name string) {
		t.Helper()
		resp, err := direct.Post("http://d/v1.41/volumes/create", "application/json", strings.NewReader(`{"Name":"`+name+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create volume %s: %d", name, resp.StatusCode)
		}
		t.Cleanup(func() {
			req, _ := http.NewRequest(http.MethodDelete, "http://d/v1.41/volumes/"+name, nil)
			if resp, err := direct.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	since := time.Now().Add(-time.Second).Unix()
	mkVolume(drop)
	mkVolume(keep)
	until := time.Now().Add(time.Second).Unix()

	sock, _ := startProxy(t, proxy.Config{Decider: filterDecider(drop), Upstream: proxy.Upstream{Address: "unix://" + upstream}})
	client := dockertest.Client(sock)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get("http://d/v1.41" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp, string(body)
	}

	resp, body := get("/volumes")
	if resp.StatusCode != 200 || !strings.Contains(body, keep) || strings.Contains(body, drop) {
		t.Errorf("volume list: %d %s", resp.StatusCode, body)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("volume list: Content-Length %d for %d bytes", resp.ContentLength, len(body))
	}

	// Past events, until a time: the stream ends by itself.
	q := "?since=" + strconv.FormatInt(since, 10) + "&until=" + strconv.FormatInt(until, 10) + "&filters=" + url.QueryEscape(`{"type":["volume"]}`)
	checkEvents := func(how, body string) {
		t.Helper()
		if !strings.Contains(body, `"Action":"create"`) || !strings.Contains(body, keep) || strings.Contains(body, drop) || !strings.HasSuffix(body, "}\n") {
			t.Errorf("%s events: %q", how, body)
		}
	}
	resp, body = get("/events" + q)
	if resp.StatusCode != 200 || len(resp.TransferEncoding) == 0 {
		t.Errorf("HTTP/1.1 events: %d, transfer encoding %v", resp.StatusCode, resp.TransferEncoding)
	}
	checkEvents("HTTP/1.1", body)
	res := rawExchange(t, sock, "GET /v1.41/events"+q+" HTTP/1.0\r\n\r\n")
	if len(res) != 1 || res[0].StatusCode != 200 || res[0].ContentLength != -1 {
		t.Fatalf("HTTP/1.0 events: %d answers %v", len(res), res)
	}
	raw, _ := io.ReadAll(res[0].Body)
	checkEvents("HTTP/1.0", string(raw))

	// A live stream: the event of a volume made after one the filter drops
	// arrives while the stream is open, and the dropped one never does.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://d/v1.41/events?filters="+url.QueryEscape(`{"type":["volume"]}`), nil)
	live, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Body.Close()
	keep2, drop2 := keep+"-live", drop+"-live"
	mkVolume(drop2)
	mkVolume(keep2)
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(live.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	guard := time.NewTimer(time.Minute) // a hang guard, not a timed assertion
	defer guard.Stop()
	for done := false; !done; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("the live event stream ended")
			}
			if strings.Contains(line, drop) {
				t.Errorf("live stream relayed a dropped line: %s", line)
			}
			done = strings.Contains(line, keep2)
		case <-guard.C:
			t.Fatal("the live stream did not relay the kept event")
		}
	}
	cancel()

	resp, body = get("/images/json")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "this answer cannot be filtered") {
		t.Errorf("failing filter: %d %s", resp.StatusCode, body)
	}
	resp, body = get("/containers/sp-test-filter-" + sfx + "-none/json")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "No such container") {
		t.Errorf("error answer with a filter: %d %s", resp.StatusCode, body)
	}
	// The connection that carried the filtered answers still works.
	if resp, _ := get("/_ping"); resp.StatusCode != 200 {
		t.Errorf("ping after filtered answers: %d", resp.StatusCode)
	}

	drySock, _ := startProxy(t, proxy.Config{Decider: filterDecider(drop), Mode: "dry-run", Upstream: proxy.Upstream{Address: "unix://" + upstream}})
	dry, err := dockertest.Client(drySock).Get("http://d/v1.41/volumes")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(dry.Body)
	dry.Body.Close()
	if !strings.Contains(string(b), drop) {
		t.Errorf("dry-run filtered the volume list: %s", b)
	}
}
