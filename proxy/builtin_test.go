package proxy_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/sockproxy/sockproxy/proxy"
)

func TestReadOnlyDecider(t *testing.T) {
	classify := testClassifier()
	for _, c := range []struct {
		method, path string
		allow        bool
	}{
		{"GET", "/_ping", true},
		{"HEAD", "/_ping", true},
		{"GET", "/v1.41/version", true},
		{"GET", "/v1.41/info", true},
		{"GET", "/v1.41/containers/json", true},
		{"GET", "/v1.41/containers/abc/json", true},
		{"GET", "/v1.41/containers/abc/logs?follow=1", true},
		{"GET", "/v1.41/events", true},
		{"POST", "/v1.41/containers/create", false},
		{"POST", "/v1.41/containers/abc/start", false},
		{"DELETE", "/v1.41/containers/abc", false},
		{"POST", "/v1.41/exec/abc/start", false},
		{"GET", "/v1.41/containers/abc/attach/ws", false},
		{"GET", "/v1.41/containers/abc/archive?path=/", false},
		{"GET", "/v1.41/containers/abc/%61rchive?path=/", false},
		{"GET", "/v1.41/containers/abc/export", false},
		{"GET", "/v1.41/images/get?names=x", false},
		{"GET", "/v1.41/images/busybox/get", false},
		{"GET", "/debug/pprof/heap", false},
	} {
		op, err := classify.Classify(httptest.NewRequest(c.method, c.path, nil))
		if err != nil {
			t.Errorf("%s %s: not classified: %v", c.method, c.path, err)
			continue
		}
		d := proxy.ReadOnlyDecider.Decide(context.Background(), &proxy.Request{Operation: op})
		if d.Allow != c.allow {
			t.Errorf("%s %s (%s): allow=%v, want %v (%v)", c.method, c.path, op.Name, d.Allow, c.allow, d.Reasons)
		}
		if !d.Allow && len(d.Reasons) == 0 {
			t.Errorf("%s %s: refused without a reason", c.method, c.path)
		}
	}
}
