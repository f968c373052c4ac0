.PHONY: build test run bench lint

build:
	go build -o bin/sockproxy ./cmd/sockproxy

# The whole suite on a fresh machine (installs and starts dockerd when run as root).
test:
	bash scripts/test.sh

# sockproxy in front of the local dockerd with the built-in default policy.
run: build
	./bin/sockproxy serve

lint:
	gofmt -l . && go vet ./... && staticcheck ./...
