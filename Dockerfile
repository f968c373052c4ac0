# sockproxy container image: one static binary on an empty (scratch) base,
# running as a non-root user.
#
#   docker build -t sockproxy .                          # release: compiles inside golang:1.26
#   CGO_ENABLED=0 go build -o bin/sockproxy ./cmd/sockproxy
#   docker build --target from-binary -t sockproxy .     # packages a binary built on the host
#
# The from-binary target needs no base image at all, so it builds where no
# registry is reachable (the e2e tests use it). Its stage comes first because
# the legacy builder (DOCKER_BUILDKIT=0, docker-compose 1.x) builds every
# stage before its target: with that builder the release target needs
# bin/sockproxy too, though it compiles its own. BuildKit builds
# only what the target needs.
#
# Run (see docs/deploy.md): the container needs dockerd's socket and the
# group that owns it (by number: the image has no /etc/group), shares its
# own socket through a volume, and keeps its audit log in another:
#   docker run -d --read-only --cap-drop ALL --network none \
#     --group-add "$(stat -c %g /var/run/docker.sock)" -v /var/run/docker.sock:/var/run/docker.sock \
#     -v sockproxy:/run/sockproxy -v sockproxy-audit:/var/log/sockproxy sockproxy
# Clients mount the sockproxy volume and need group 65532 (--group-add 65532).

ARG GO_VERSION=1.26

# What both final stages share: the socket and audit log directories owned
# by the proxy's user (a new named volume mounted on one starts with that
# ownership; COPY --chown also gives it the directories it creates), the
# user, and the command.
FROM scratch AS base
COPY --chown=65532:65532 contrib/docker/run-sockproxy.README /run/sockproxy/README
COPY --chown=65532:65532 contrib/docker/log-sockproxy.README /var/log/sockproxy/README
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sockproxy"]
CMD ["serve", "--listen", "/run/sockproxy/docker.sock", "--upstream", "unix:///var/run/docker.sock", \
     "--audit-log", "/var/log/sockproxy/audit.log"]

# A binary built on the host, static (CGO_ENABLED=0), at bin/sockproxy.
FROM base AS from-binary
COPY bin/sockproxy /usr/local/bin/sockproxy

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/sockproxy ./cmd/sockproxy

FROM base AS release
COPY --from=build /out/sockproxy /usr/local/bin/sockproxy
