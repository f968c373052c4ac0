package policy

import (
	"context"

	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
)

// defaultBuilder is input.Build configured by opts.Input.
func defaultBuilder(opts Options) Builder {
	inOpts := opts.Input
	return func(ctx context.Context, req *proxy.Request) (*input.Input, []byte, error) {
		return input.Build(ctx, req, inOpts)
	}
}
