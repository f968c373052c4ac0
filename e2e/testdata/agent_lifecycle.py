#!/usr/bin/python3
"""Replays an AI-agent sandbox runtime's lifecycle (OpenHands-style, see
shared/notes/real-clients.md) with docker-py against DOCKER base_url.

  --mode hardened: version negotiation, a name lookup that misses, the
      image check, list and inspect every running container, create with the
      hardened body (non-root user, ports on 127.0.0.1, binds under allowed
      roots), start, join a network after start (and be refused another),
      follow the logs, stop, remove.
  --mode default: the runtime's default body (ports on 0.0.0.0, no User, so
      the image's root) must be refused.

Prints one JSON object per step on stdout; exits 0 when every step did what
the runtime expects, 1 otherwise (the last line says why).
"""

import argparse
import json
import socket
import sys

import docker


def step(name, **kw):
    kw["step"] = name
    print(json.dumps(kw, sort_keys=True), flush=True)


def fail(msg):
    step("error", message=msg)
    sys.exit(1)


def free_ports(n):
    """Loopback ports nothing listens on now, as the runtime picks them."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


# The sandbox: reports who it runs as and what it sees, writes into the
# workspace, then idles until stopped (TERM ends it at once).
SANDBOX = (
    "trap 'echo stopping; exit 0' TERM; "
    'echo "sandbox up uid=$(id -u) gid=$(id -g)"; '
    "cat /data/input.txt; "
    "echo written-by-sandbox > /workspace/out.txt; "
    "echo ready; "
    "while :; do sleep 1 & wait $!; done"
)


def create_kwargs(args, hardened):
    p1, p2 = free_ports(2)
    host_ip = "127.0.0.1" if hardened else "0.0.0.0"
    kw = dict(
        image=args.image,
        command=["sh", "-c", SANDBOX],
        name=args.name,
        environment=["port=%d" % p1, "PYTHONUNBUFFERED=1", "OPENHANDS_SESSION_ID=%s" % args.name],
        working_dir="/",
        network_mode="default",
        ports={"%d/tcp" % p1: (host_ip, p1), "%d/tcp" % p2: (host_ip, p2)},
        detach=True,
    )
    if hardened:
        kw["user"] = "1000:1000"
        kw["volumes"] = {
            args.workspace: {"bind": "/workspace", "mode": "rw"},
            args.data: {"bind": "/data", "mode": "ro"},
        }
    return kw


def hardened(client, args):
    # 2. a fresh start: no sandbox of that name yet
    try:
        client.api.inspect_container(args.name)
        fail("container %s exists before the run" % args.name)
    except docker.errors.NotFound:
        step("lookup-missing")
    # 3. the image is there (no registry: never pulled)
    image = client.images.get(args.image)
    step("image", id=image.id)
    # 4. port allocation: every running container, listed and inspected
    # (docker-py's list inspects each one)
    running = client.containers.list()
    step("list-and-inspect", count=len(running))
    for c in running:
        client.api.inspect_container(c.id)

    # 5. create, inspect, start
    container = client.containers.create(**create_kwargs(args, True))
    try:
        container.reload()
        hc = container.attrs["HostConfig"]
        step("created", id=container.id, user=container.attrs["Config"]["User"],
             binds=sorted(hc.get("Binds") or []),
             host_ips=sorted({b["HostIp"] for bs in hc["PortBindings"].values() for b in bs}))
        container.start()
        step("started")

        # 6. join the sandbox network after start
        net = client.networks.get(args.network)
        net.connect(container)
        container.reload()
        step("connected", networks=sorted(container.attrs["NetworkSettings"]["Networks"]))
        if args.denied_network:
            try:
                client.networks.get(args.denied_network).connect(container)
                fail("connect to %s was allowed" % args.denied_network)
            except docker.errors.APIError as e:
                step("connect-refused", status=e.status_code, explanation=e.explanation)

        # 7. follow the logs; stop once the sandbox is ready; the stream
        # ends when the container exits
        logs = container.logs(stream=True, follow=True)
        text = ""
        for chunk in logs:
            text += chunk.decode()
            if "ready\n" in text:
                break
        step("logs-ready", text=text)
        container.stop(timeout=10)
        for chunk in logs:
            text += chunk.decode()
        step("stopped", text=text)
        container.reload()
        step("state", status=container.attrs["State"]["Status"], exit_code=container.attrs["State"]["ExitCode"])
    finally:
        container.remove(force=True)
    try:
        client.containers.get(args.name)
        fail("container %s still exists after remove" % args.name)
    except docker.errors.NotFound:
        step("removed")


def default(client, args):
    try:
        c = client.containers.create(**create_kwargs(args, False))
    except docker.errors.APIError as e:
        step("default-create", refused=True, status=e.status_code, explanation=e.explanation)
        return
    c.remove(force=True)
    fail("the default body (ports on 0.0.0.0, root user) was allowed")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--mode", choices=["hardened", "default"], required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--network", default="bridge")
    p.add_argument("--denied-network")
    p.add_argument("--workspace")
    p.add_argument("--data")
    args = p.parse_args()

    # 1. version negotiation: GET /version, then versioned paths
    client = docker.DockerClient(base_url=args.base_url, version="auto", timeout=60)
    step("version", api_version=client.api.api_version, docker_py=docker.__version__)
    try:
        (hardened if args.mode == "hardened" else default)(client, args)
    except docker.errors.APIError as e:
        fail("unexpected API error %s: %s" % (e.status_code, e.explanation))
    step("done")


if __name__ == "__main__":
    main()
