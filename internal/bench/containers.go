package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// fixtureCount is how many idle containers exist while list and inspect are
// measured, so that list answers carry more than one entry.
const fixtureCount = 3

// preflight checks both sockets answer, learns the API version from the
// daemon (as the docker CLI does from /_ping), checks the image exists and
// starts the idle fixture containers.
func (b *bencher) preflight(ctx context.Context) error {
	for i, s := range b.sides {
		cctx, cancel := b.callCtx(ctx)
		_, hdr, err := s.do(cctx, http.MethodGet, "/_ping", nil)
		cancel()
		if err != nil {
			return fmt.Errorf("bench: the %s socket %s does not answer /_ping; is it running? %w", s.name, s.socket, err)
		}
		if i == 0 {
			b.apiVersion = hdr.Get("Api-Version")
		}
	}
	if b.apiVersion == "" {
		return fmt.Errorf("bench: the direct socket %s gave no API-Version header on /_ping; is it a Docker daemon?", b.cfg.Direct)
	}
	for _, s := range b.sides {
		s.api = "/v" + b.apiVersion
	}
	direct := b.sides[0]
	cctx, cancel := b.callCtx(ctx)
	defer cancel()
	if _, _, err := direct.do(cctx, http.MethodGet, direct.api+"/images/"+url.PathEscape(b.cfg.Image)+"/json", nil); err != nil {
		return fmt.Errorf("bench: image %s is needed on the daemon (scripts/testenv.sh up imports it): %w", b.cfg.Image, err)
	}
	if !b.cfg.wants(GroupList) && !b.cfg.wants(GroupInspect) && !b.cfg.wants(GroupExec) && !b.cfg.wants(GroupRSS) {
		return nil
	}
	for n := range fixtureCount {
		id, err := b.runContainer(cctx, "idle-"+strconv.Itoa(n), []string{"sleep", "3600"}, false)
		if err != nil {
			b.cleanup()
			return fmt.Errorf("bench: starting idle fixture containers: %w", err)
		}
		if n == 0 {
			b.idle = id
		}
	}
	return nil
}

// cleanup removes every container the run created and did not remove yet.
// It does not use the run's context: an interrupted run must still clean up.
func (b *bencher) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, id := range slices.Clone(b.fixtures) {
		if err := b.remove(ctx, b.sides[0], id); err != nil {
			b.log.Warn("could not remove a bench container; remove it by hand", "id", id, "err", err)
		}
	}
	b.fixtures = nil
}

var nameOnce sync.Once
var runTag string

// containerName gives every container a unique, recognisable name, since the
// daemon is shared.
func (b *bencher) containerName(role string) string {
	nameOnce.Do(func() {
		var r [4]byte
		_, _ = rand.Read(r[:])
		runTag = hex.EncodeToString(r[:])
	})
	var r [3]byte
	_, _ = rand.Read(r[:])
	return b.cfg.NamePrefix + runTag + "-" + role + "-" + hex.EncodeToString(r[:])
}

func (b *bencher) create(ctx context.Context, s *side, name string, body []byte) (string, error) {
	out, _, err := s.do(ctx, http.MethodPost, s.api+"/containers/create?name="+url.QueryEscape(name), body)
	if err != nil {
		return "", err
	}
	var created struct{ ID string }
	if err := json.Unmarshal(out, &created); err != nil || created.ID == "" {
		return "", fmt.Errorf("%s: create %s: no container id in the answer %q", s.name, name, out)
	}
	return created.ID, nil
}

// remove force-removes a container and forgets it for cleanup.
func (b *bencher) remove(ctx context.Context, s *side, id string) error {
	if _, _, err := s.do(ctx, http.MethodDelete, s.api+"/containers/"+id+"?force=1&v=1", nil); err != nil {
		return err
	}
	b.fixtures = slices.DeleteFunc(b.fixtures, func(f string) bool { return f == id })
	return nil
}

func dialUnix(ctx context.Context, path string) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// runContainer creates (through the direct socket) and starts a fixture
// container; with wait it also waits for it to exit with status 0. The
// container is registered for cleanup.
func (b *bencher) runContainer(ctx context.Context, role string, cmd []string, wait bool) (string, error) {
	direct := b.sides[0]
	body, _ := json.Marshal(map[string]any{
		"Image":  b.cfg.Image,
		"Cmd":    cmd,
		"Labels": map[string]string{"org.sockproxy.bench": "fixture"},
	})
	id, err := b.create(ctx, direct, b.containerName(role), body)
	if err != nil {
		return "", err
	}
	b.fixtures = append(b.fixtures, id)
	if _, _, err := direct.do(ctx, http.MethodPost, direct.api+"/containers/"+id+"/start", nil); err != nil {
		return "", err
	}
	if !wait {
		return id, nil
	}
	out, _, err := direct.do(ctx, http.MethodPost, direct.api+"/containers/"+id+"/wait", nil)
	if err != nil {
		return "", err
	}
	var res struct{ StatusCode int }
	if err := json.Unmarshal(out, &res); err != nil {
		return "", fmt.Errorf("direct: wait %s: unreadable answer %q", id, out)
	}
	if res.StatusCode != 0 {
		return "", fmt.Errorf("fixture container %s (%v) exited with status %d", id, cmd, res.StatusCode)
	}
	return id, nil
}

// freePorts returns n TCP port numbers free on 127.0.0.1 right now. The
// created containers are never started, so the ports only need to look real.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// HardenedCreateBody is the create request an AI-agent sandbox runtime sends
// (OpenHands through docker-py), adapted to the local test image: non-root
// user, ports published on 127.0.0.1 only, and bind mounts of a workspace (rw)
// and a data directory (ro) under bindRoot when bindRoot is not empty.
func HardenedCreateBody(image string, ports [2]int, bindRoot string) []byte {
	p0, p1 := strconv.Itoa(ports[0]), strconv.Itoa(ports[1])
	var session [4]byte
	_, _ = rand.Read(session[:])
	binds := []string{}
	if bindRoot != "" {
		binds = []string{
			filepath.Join(bindRoot, "workspace") + ":/workspace:rw",
			filepath.Join(bindRoot, "data") + ":/data:ro",
		}
	}
	body, _ := json.Marshal(map[string]any{
		"ExposedPorts": map[string]any{p0 + "/tcp": struct{}{}, p1 + "/tcp": struct{}{}},
		"Env":          []string{"port=" + p0, "PYTHONUNBUFFERED=1", "OPENHANDS_SESSION_ID=" + hex.EncodeToString(session[:])},
		"Cmd": []string{"/bin/sh", "-c", "exec sleep 3600", "action_execution_server",
			p0, "--working-dir", "/workspace", "--user-id", "1000"},
		"Image":      image,
		"User":       "1000:1000",
		"Volumes":    map[string]any{"/workspace": struct{}{}, "/data": struct{}{}},
		"Entrypoint": []string{},
		"WorkingDir": "/workspace",
		"HostConfig": map[string]any{
			"NetworkMode": "default",
			"Binds":       binds,
			"PortBindings": map[string]any{
				p0 + "/tcp": []map[string]string{{"HostIp": "127.0.0.1", "HostPort": p0}},
				p1 + "/tcp": []map[string]string{{"HostIp": "127.0.0.1", "HostPort": p1}},
			},
			"Mounts": []any{},
		},
	})
	return body
}
