package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"reflect"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
)

// RequestError is a request the normalizer refuses or cannot judge. Status
// is the HTTP status to answer with (400 for bodies dockerd could read
// differently or would refuse, 502 when the upstream could not be asked).
type RequestError struct {
	Status  int
	Message string
	// DaemonWords: Message is what dockerd itself answers (a missing
	// object), to be sent without the proxy's prefix.
	DaemonWords bool
}

func (e *RequestError) Error() string { return e.Message }

func badRequest(format string, args ...any) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// bodySpec says how dockerd reads one operation's body.
type bodySpec struct {
	typ reflect.Type
	// emptyOK: dockerd accepts the request without a body (or we forward
	// none and let dockerd answer).
	emptyOK bool
}

// bodySpecs are the operations whose bodies are decoded into moby types.
// container.start is handled apart (dockerd ignores or refuses its body).
var bodySpecs = map[string]bodySpec{
	"container.create":   {typ: reflect.TypeFor[container.CreateRequest]()},
	"container.commit":   {typ: reflect.TypeFor[container.CreateRequest](), emptyOK: true},
	"container.update":   {typ: reflect.TypeFor[container.UpdateConfig](), emptyOK: true},
	"exec.create":        {typ: reflect.TypeFor[container.ExecOptions]()},
	"exec.start":         {typ: reflect.TypeFor[container.ExecStartOptions](), emptyOK: true},
	"network.create":     {typ: reflect.TypeFor[network.CreateRequest](), emptyOK: true},
	"network.connect":    {typ: reflect.TypeFor[network.ConnectOptions](), emptyOK: true},
	"network.disconnect": {typ: reflect.TypeFor[network.DisconnectOptions](), emptyOK: true},
	"volume.create":      {typ: reflect.TypeFor[volume.CreateOptions](), emptyOK: true},
}

// JudgedOperations lists the operations whose bodies Build decodes into the
// moby API types and canonicalizes.
func JudgedOperations() []string {
	ops := []string{"container.start"}
	for op := range bodySpecs {
		ops = append(ops, op)
	}
	return ops
}

// isBlank reports whether b holds only JSON whitespace.
func isBlank(b []byte) bool {
	return len(bytes.TrimLeft(b, " \t\r\n")) == 0
}

// checkJSONContentType applies dockerd's httputils.CheckForJSON to a
// request that has a body: the media type, letter case and parameters
// aside, must be application/json.
func checkJSONContentType(h http.Header) error {
	ct := h.Get("Content-Type")
	if ct == "" {
		return badRequest("a request body needs Content-Type: application/json (dockerd refuses other bodies)")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return badRequest("malformed Content-Type header (%s): %v", ct, err)
	}
	if mt != "application/json" {
		return badRequest("unsupported Content-Type header (%s): must be 'application/json'", ct)
	}
	return nil
}

// decodeStrict decodes body into a new value of spec.typ the way dockerd
// does, after refusing anything it could read differently, and returns the
// value (canonicalJSON encodes it).
func decodeStrict(op string, spec bodySpec, body []byte) (any, error) {
	if err := checkBody(body, spec.typ, true); err != nil {
		return nil, badRequest("%s body refused: %v", op, err)
	}
	ptr := reflect.New(spec.typ)
	if err := json.Unmarshal(body, ptr.Interface()); err != nil {
		return nil, badRequest("%s body: invalid JSON for the Engine API: %v", op, err)
	}
	return ptr.Interface(), nil
}

// decodeGeneric checks a JSON body of an operation without a moby type:
// duplicate keys and trailing data are refused; key spelling is left to
// the policy.
func decodeGeneric(op string, body []byte) (any, error) {
	if err := checkBody(body, reflect.TypeFor[any](), false); err != nil {
		return nil, badRequest("%s body refused: %v", op, err)
	}
	return decodeAny(body)
}

// decodeAny decodes JSON into generic values, numbers as json.Number so that
// large integers keep their value.
func decodeAny(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

var errNoConfig = errors.New("config cannot be empty in order to create a container")
