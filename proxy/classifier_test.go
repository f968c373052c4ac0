package proxy_test

import (
	"github.com/sockproxy/sockproxy/proxy"
	"github.com/sockproxy/sockproxy/proxy/route"
)

// testClassifier is the real route classifier, as sockproxy serve uses it.
func testClassifier() proxy.Classifier { return route.New(route.Config{}) }
