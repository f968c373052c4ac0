#!/usr/bin/env bash
# Prepares what sockproxy's tests need on a fresh Debian machine: a running
# dockerd and the local test image (no registry is reachable, so the image is
# imported from a root filesystem holding the static busybox).
#
#   scripts/testenv.sh up     install what is missing, start dockerd if none answers, import the image
#   scripts/testenv.sh dockerd  only make sure a dockerd runs (installing docker.io if missing)
#   scripts/testenv.sh down     stop the dockerd that "up" or "dockerd" started (and only that one)
#
# Idempotent and safe to run concurrently (serialized with flock).
set -euo pipefail

SOCK="${SOCKPROXY_TEST_DOCKER_SOCK:-/var/run/docker.sock}"
IMAGE="${SOCKPROXY_TEST_IMAGE:-sockproxy-test:latest}"
NONROOT_IMAGE="${IMAGE%%:*}-nonroot:latest"
STATE=/run/sockproxy-testenv
PIDFILE="$STATE/dockerd.pid"
LOG="$STATE/dockerd.log"

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

docker_ok() { docker -H "unix://$SOCK" version >/dev/null 2>&1; }

install_missing() {
	local want=()
	command -v dockerd >/dev/null || want+=(docker.io)
	[ -x /bin/busybox ] && file_is_static /bin/busybox || want+=(busybox-static)
	command -v docker-compose >/dev/null || want+=(docker-compose)
	python3 -c 'import docker' 2>/dev/null || want+=(python3-docker)
	command -v socat >/dev/null || want+=(socat)
	[ ${#want[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing ${want[*]}; run as root or install them: apt-get install -y ${want[*]}"
	log "installing ${want[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq "${want[@]}" >/dev/null
}

file_is_static() { ! ldd "$1" >/dev/null 2>&1; }

start_dockerd() {
	docker_ok && return 0
	[ "$(id -u)" -eq 0 ] || die "no dockerd answers on $SOCK and only root can start one"
	mkdir -p "$STATE"
	log "starting dockerd on $SOCK (log: $LOG)"
	# setsid: the daemon must outlive the test process that asked for it.
	# 9>&-: it must not inherit the lock, or every later call waits forever.
	setsid dockerd --host "unix://$SOCK" >"$LOG" 2>&1 < /dev/null 9>&- &
	echo $! >"$PIDFILE"
	for _ in $(seq 1 120); do
		docker_ok && { log "dockerd is up"; return 0; }
		kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -n 30 "$LOG" >&2; die "dockerd exited at start"; }
		sleep 0.5
	done
	tail -n 30 "$LOG" >&2
	die "dockerd did not answer on $SOCK within 60s"
}

import_image() {
	docker -H "unix://$SOCK" image inspect "$IMAGE" "$NONROOT_IMAGE" >/dev/null 2>&1 && return 0
	log "importing $IMAGE from static busybox"
	local root
	root=$(mktemp -d)
	trap 'rm -rf "$root"' RETURN
	mkdir -p "$root"/{bin,etc,tmp,work}
	chmod 1777 "$root/tmp" "$root/work"
	cp /bin/busybox "$root/bin/busybox"
	for applet in $("$root/bin/busybox" --list); do
		[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
	done
	printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\napp:x:1000:1000:app:/work:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\napp:x:1000:\n' >"$root/etc/group"
	tar -C "$root" -c . | docker -H "unix://$SOCK" import \
		-c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
	# A second image whose default user is not root, for user-resolution tests.
	printf 'FROM %s\nUSER 1000:1000\n' "$IMAGE" | docker -H "unix://$SOCK" build -q -t "$NONROOT_IMAGE" - >/dev/null
}

stop_dockerd() {
	[ -f "$PIDFILE" ] || return 0
	local pid
	pid=$(cat "$PIDFILE")
	if kill -0 "$pid" 2>/dev/null; then
		log "stopping the dockerd it started (pid $pid)"
		kill "$pid"
		for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
	fi
	rm -f "$PIDFILE"
}

mkdir -p "$STATE" 2>/dev/null || STATE=$(mktemp -d)
exec 9>"$STATE/lock"
flock 9
case "${1:-}" in
up) install_missing; start_dockerd; import_image ;;
dockerd) command -v dockerd >/dev/null || install_missing; start_dockerd ;;
down) stop_dockerd ;;
*) die "usage: $0 up|dockerd|down" ;;
esac
