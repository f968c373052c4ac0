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
bench: build
	bash scripts/testenv.sh up
	./bin/sockproxy bench --spawn 'serve --allow-all --listen {sock} --log-level warn' $(BENCHFLAGS)

lint:
	test -z "$$(gofmt -l .)" && go vet ./... && staticcheck ./...
