.PHONY: build test run bench lint

build:
	go build -o bin/sockproxy ./cmd/sockproxy

# The whole suite on a fresh machine (installs and starts dockerd when run as root).
test:
	bash scripts/test.sh

# sockproxy in front of the local dockerd (started if none runs) with the
# built-in hardened policy. Extra flags: make run ARGS='--config sockproxy.yaml'
run: build
	bash scripts/testenv.sh dockerd
	./bin/sockproxy serve $(ARGS)

# sockproxy against the direct socket, interleaved (docs/performance.md);
# needs dockerd and the test images.
# The default library with a hardened configuration (internal/bench/testdata/hardened.yaml):
# every request is judged by Rego and audited, as in production.
bench: build
	bash scripts/testenv.sh up
	mkdir -p /tmp/sockproxy-bench/workspace /tmp/sockproxy-bench/data
	rm -f /tmp/sockproxy-bench/audit.jsonl
	./bin/sockproxy bench --bind-root /tmp/sockproxy-bench --spawn 'serve --config internal/bench/testdata/hardened.yaml --listen {sock} --log-level warn' $(BENCHFLAGS)

lint:
	test -z "$$(gofmt -l .)" && go vet ./... && staticcheck ./...
