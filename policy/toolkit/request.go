package toolkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/user"
	"strconv"
	"strings"

	"github.com/sockproxy/sockproxy/policy"
	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
	"github.com/sockproxy/sockproxy/proxy/route"
)

// RequestSpec is an Engine API request as a client would send it.
type RequestSpec struct {
	Method string
	// Target is the path with its query, as sent ("/v1.41/containers/create?name=x").
	Target      string
	Body        []byte
	ContentType string
	Caller      proxy.Caller
	// ID is the request id to report ("" for a fresh one).
	ID string
}

// Classify turns spec into the request the proxy's decider gets: classified
// by the proxy's router (route.New with the defaults serve uses), with the
// body attached when the operation's body is judged. A request the router
// refuses is returned as its *proxy.RouteError.
func Classify(spec RequestSpec) (*proxy.Request, error) {
	if spec.Method == "" {
		spec.Method = http.MethodGet
	}
	if !strings.HasPrefix(spec.Target, "/") {
		return nil, fmt.Errorf("request path %q: must start with / (e.g. /v1.41/containers/create?name=web)", spec.Target)
	}
	hr, err := http.NewRequest(spec.Method, "http://docker"+spec.Target, bytes.NewReader(spec.Body))
	if err != nil {
		return nil, fmt.Errorf("request %s %s: %w", spec.Method, spec.Target, err)
	}
	if spec.ContentType != "" {
		hr.Header.Set("Content-Type", spec.ContentType)
	}
	op, err := route.New(route.Config{MinAPIVersion: route.DefaultMinAPIVersion}).Classify(hr)
	if err != nil {
		return nil, err
	}
	req := &proxy.Request{ID: spec.ID, Operation: op, Caller: spec.Caller, Header: hr.Header}
	if req.ID == "" {
		req.ID = "eval"
	}
	if op.JudgeBody && spec.Body != nil {
		req.Body = spec.Body
	}
	return req, nil
}

// LocalCaller is a caller with these ids and the names the host gives them,
// resolved as the proxy resolves a peer's credentials.
func LocalCaller(uid, gid, pid int) proxy.Caller {
	c := proxy.Caller{Known: true, UID: uid, GID: gid, PID: pid}
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		c.Group = g.Name
	}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return c
	}
	c.User = u.Username
	gids, err := u.GroupIds()
	if err != nil {
		return c
	}
	for _, id := range gids {
		if g, err := user.LookupGroupId(id); err == nil {
			c.Groups = append(c.Groups, g.Name)
		}
	}
	return c
}

// Judgement is what the proxy would do with one request: the input it
// builds, the verdict, and where every message came from.
type Judgement struct {
	Request *proxy.Request
	// Input is nil when it could not be built (InputError says why).
	Input *input.Input
	// Body is the canonical body the proxy would forward (nil: the original).
	Body       []byte
	InputError error
	// Status is the HTTP status of a refusal (403 policy, 400 unreadable
	// body, 500 evaluation failure, 502/503 failed daemon lookup).
	Status int
	// Allow and Reasons are the proxy's decision: Reasons is exactly what a
	// refused client is told (joined with "; ").
	Allow       bool
	Reasons     []string
	Explanation *Explanation
}

// Judge builds the input for req with opts (as the engine's builder does)
// and explains the verdict. It mirrors policy.Engine.Decide.
func (p *Policy) Judge(ctx context.Context, req *proxy.Request, opts input.Options) (*Judgement, error) {
	j := &Judgement{Request: req}
	if policy.OwnershipOn(p.Revision.Library) {
		// As the engine: the owner labels are part of the judged body.
		ctx = input.WithOwnerLabels(ctx)
	}
	in, body, err := input.Build(ctx, req, opts)
	if err != nil {
		j.InputError = err
		j.Status = http.StatusBadRequest
		var re *input.RequestError
		if errors.As(err, &re) && re.Status != 0 {
			j.Status = re.Status
		}
		j.Reasons = []string{err.Error()}
		return j, nil
	}
	j.Input, j.Body = in, body
	ex, err := p.Explain(ctx, in, body)
	if err != nil {
		return nil, err
	}
	j.Explanation = ex
	j.Allow = ex.Result.Allow
	switch {
	case ex.Result.Failure != "":
		j.Status = http.StatusInternalServerError
		j.Reasons = []string{ex.Result.Failure}
	case !j.Allow:
		j.Status = http.StatusForbidden
		j.Reasons = ex.Result.Deny
	}
	return j, nil
}

// JudgeSpec classifies spec and judges it. A request the router refuses is
// judged as the proxy answers it, without a policy: refused with the
// router's status and message (InputError is the *proxy.RouteError).
func (p *Policy) JudgeSpec(ctx context.Context, spec RequestSpec, opts input.Options) (*Judgement, error) {
	req, err := Classify(spec)
	if err != nil {
		var re *proxy.RouteError
		if errors.As(err, &re) {
			return &Judgement{Status: re.Status, Reasons: []string{re.Message}, InputError: err}, nil
		}
		return nil, err
	}
	return p.Judge(ctx, req, opts)
}

// InputJSON renders the policy input as indented JSON (the body in its
// canonical form).
func InputJSON(in *input.Input) ([]byte, error) {
	raw, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}
