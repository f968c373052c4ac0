#!/usr/bin/env bash
# The whole test suite on a fresh machine: prepares dockerd and the test
# images, checks formatting, vet and staticcheck, then runs every Go test
# (unit, Rego, and integration against the real dockerd) with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK_VERSION=v0.8.2
GOBIN="$(go env GOPATH)/bin"

started=0
[ -f /run/sockproxy-testenv/dockerd.pid ] || started=1
bash scripts/testenv.sh up
cleanup() { [ "$started" = 1 ] && bash scripts/testenv.sh down || true; }
trap cleanup EXIT

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$unformatted" ] || { echo "gofmt would change: $unformatted"; exit 1; }

# vet and staticcheck compile the packages without cgo, as the e2e tests'
# static sockproxy binary does: one compile of the tree serves all three
# (the race-enabled test build is the other).
echo "== go vet"
CGO_ENABLED=0 go vet ./...

echo "== staticcheck"
[ -x "$GOBIN/staticcheck" ] || go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
CGO_ENABLED=0 "$GOBIN/staticcheck" ./...

echo "== go test"
go test -race -count=1 -timeout 20m "$@" ./...

# Each fuzz target also runs as a test over its seed corpus above; here the
# ones guarding the trust boundary get a short bound of new inputs
# (FUZZTIME=10m for a real campaign). A finding lands in testdata/fuzz.
# The bound is a count, not a time: on a loaded machine a time bound can end
# a run mid-input with "context deadline exceeded" and no finding.
echo "== fuzz (${FUZZTIME:=20000x} each)"
for target in FuzzDecodeCreate:./policy/input FuzzParseBind:./policy/input \
	FuzzClassify:./proxy/route FuzzServeRequest:./proxy FuzzResponseHead:./proxy; do
	go test -run '^$' -fuzz "^${target%%:*}\$" -fuzztime "$FUZZTIME" "${target#*:}"
done
