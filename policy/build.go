package policy

import (
	"context"
	"errors"

	"github.com/sockproxy/sockproxy/policy/input"
	"github.com/sockproxy/sockproxy/proxy"
)

// defaultBuilder is input.Build configured by opts. TODO(input): switch to
// input.Build(ctx, req, opts.Input) once policy/input provides it.
func defaultBuilder(Options) Builder {
	return func(context.Context, *proxy.Request) (*input.Input, []byte, error) {
		return nil, nil, errors.New("sockproxy has no policy input builder configured: refused")
	}
}
