#!/usr/bin/env bash
# Does a fresh Debian 12 install and run the platform with the README's commands?
#
#   sudo deploy/fresh-debian-check.sh            # debootstrap, then in the new root: make infra; make test
#   sudo STEPS="make infra && make venv" deploy/fresh-debian-check.sh   # a shorter check
#
# A Debian 12 root is made with debootstrap from apt's own configured mirror, the repository's
# committed tree (git archive HEAD) is copied into it, and the README's commands run there as root in a
# network namespace of its own: the new root's PostgreSQL, RabbitMQ and Redis listen on its own
# loopback, never colliding with (or silently reusing) servers on this machine. The namespace has no
# route out; apt and npm reach their registries through an HTTP proxy this script runs on the host,
# whose listening socket alone is made inside the namespace. pip uses this machine's pip configuration
# and local wheel folders (bind-mounted read-only) when it has them.
# Slow (packages, the venv and the whole suite): it is not part of `make test` (tests lint it only).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${FRESH_ROOT:-/var/tmp/imaging-fresh-debian}
SUITE=bookworm
STEPS=${STEPS:-"make infra && make test"}
PROXY_PORT=3142
NETNS=/run/imaging-fresh-debian.netns

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, chroot, namespaces)" >&2; exit 2; }
mirror() {  # the Debian mirror apt already uses (deb822 or one-line sources)
	local uri
	uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$uri" ] || uri=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
	echo "${DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}
MIRROR=$(mirror)
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap

cleanup() {
	set +e
	[ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null
	# The servers make infra started (daemons) inside the root: stopped by pid, found by their root.
	for proc in /proc/[0-9]*; do
		[ "$(readlink "$proc/root" 2>/dev/null)" = "$ROOT" ] && kill "${proc#/proc/}" 2>/dev/null
	done
	sleep 2
	for m in opt/pypi-more opt/pypi opt/wheels dev/pts dev sys proc; do
		mountpoint -q "$ROOT/$m" && umount -l "$ROOT/$m"
	done
	mountpoint -q "$NETNS" && umount "$NETNS"
	rm -f "$NETNS"
}
trap cleanup EXIT

if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
	echo "== debootstrap $SUITE from $MIRROR into $ROOT"
	debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR"
fi
cat > "$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
EOF
echo "Acquire::http::Proxy \"http://127.0.0.1:$PROXY_PORT\";" > "$ROOT/etc/apt/apt.conf.d/90fresh-check-proxy"
rm -rf "$ROOT/root/imaging" && mkdir -p "$ROOT/root/imaging"
git -C "$REPO" archive HEAD | tar -x -C "$ROOT/root/imaging"
mount -t proc proc "$ROOT/proc"; mount --rbind /sys "$ROOT/sys"; mount --rbind /dev "$ROOT/dev"
for d in /opt/wheels /opt/pypi /opt/pypi-more; do
	if [ -d "$d" ]; then mkdir -p "$ROOT$d"; mount --bind -o ro "$d" "$ROOT$d"; fi
done
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
# This host's CA bundle for pip and npm: the registries are reached the way this host reaches them
# (a TLS-inspecting proxy's CA lives there); the platform's own trust inside the root is Debian's.
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/fresh-check-host-ca.crt"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"

# The namespace, its loopback, and the proxy listening inside it (connecting out from the host's).
touch "$NETNS"
unshare --net="$NETNS" true
nsenter --net="$NETNS" ip link set lo up
python3 - "$NETNS" "$PROXY_PORT" <<'PY' &
import ctypes, os, select, socket, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
host = os.open("/proc/self/ns/net", os.O_RDONLY)
inner = os.open(sys.argv[1], os.O_RDONLY)
assert libc.setns(inner, 0x40000000) == 0  # CLONE_NEWNET: the listening socket is made in the namespace...
server = socket.create_server(("127.0.0.1", int(sys.argv[2])))
assert libc.setns(host, 0x40000000) == 0   # ...and every upstream connection in the host's

def pipe(a, b):
    try:
        while True:
            r, _, _ = select.select([a, b], [], [], 300)
            if not r:
                return
            for s in r:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    finally:
        a.close(); b.close()

def handle(client):
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(65536)
        if not chunk:
            return client.close()
        head += chunk
    line, rest = head.split(b"\r\n", 1)
    method, target, version = line.decode().split(" ", 2)
    if method == "CONNECT":
        host_, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host_, int(port)), timeout=30)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        extra = head.split(b"\r\n\r\n", 1)[1]  # bytes the client sent after the request
    else:  # absolute-form request of a plain HTTP proxy client (apt)
        url = target.split("://", 1)[1]
        hostport, _, path = url.partition("/")
        host_, _, port = hostport.partition(":")
        upstream = socket.create_connection((host_, int(port or 80)), timeout=30)
        extra = f"{method} /{path} {version}\r\n".encode() + rest
    upstream.settimeout(None)
    if extra:
        upstream.sendall(extra)
    pipe(client, upstream)

while True:
    conn, _ = server.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
PY
PROXY_PID=$!
sleep 1

echo "== in the fresh root, own network namespace: apt-get install make; $STEPS"
set +e
nsenter --net="$NETNS" chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	http_proxy="http://127.0.0.1:$PROXY_PORT" https_proxy="http://127.0.0.1:$PROXY_PORT" \
	npm_config_proxy="http://127.0.0.1:$PROXY_PORT" npm_config_https_proxy="http://127.0.0.1:$PROXY_PORT" \
	no_proxy=127.0.0.1,localhost PIP_CERT=/etc/fresh-check-host-ca.crt npm_config_cafile=/etc/fresh-check-host-ca.crt \
	/bin/bash -c "cd /root/imaging && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make >/dev/null && $STEPS"
status=$?
echo "== result: exit $status ($STEPS) on $(. "$ROOT/etc/os-release"; echo "$PRETTY_NAME"), $(date -u +%FT%TZ)"
exit $status
