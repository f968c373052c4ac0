package proxy

import (
	"encoding/json"
	"net/http"
)

// WriteError answers a request the way dockerd reports errors: a JSON
// object whose "message" the docker CLI prints as
// "Error response from daemon: <message>".
func WriteError(w http.ResponseWriter, status int, message string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(message))
}

// errorBody is dockerd's error format: {"message":"..."} and a newline.
func errorBody(message string) []byte {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	return append(body, '\n')
}
