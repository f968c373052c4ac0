package proxy

import (
	"encoding/json"
	"net/http"
)

// WriteError answers a request the way dockerd reports errors: a JSON
// object whose "message" the docker CLI prints as
// "Error response from daemon: <message>".
func WriteError(w http.ResponseWriter, status int, message string) {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
