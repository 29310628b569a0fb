#!/bin/sh
# One-shot edge-config job (components/load_balancer.py): installs a new haproxy.cfg and
# certificate bundle as a release on the load balancer's runtime volume and asks the running
# HAProxy master to reload, so a config change or a re-issued certificate never recreates the
# container: the master starts new workers on the same listening sockets and the old ones
# finish their connections. On a first deploy nothing runs yet; HAProxy starts from `current`.
set -eu
RUNTIME=/var/lib/haproxy
# Where the job's uploads put the rendered files (the paths the policy pack reads).
STAGED_CFG=/etc/haproxy/haproxy.cfg
STAGED_PEM=/etc/haproxy/certs/server.pem
release=$(cat "$STAGED_CFG" "$STAGED_PEM" | sha256sum | cut -c1-16)
dir="$RUNTIME/releases/$release"
mkdir -p "$dir"
umask 077
cp "$STAGED_CFG" "$dir/haproxy.cfg"
cp "$STAGED_PEM" "$dir/server.pem"
previous=$(readlink "$RUNTIME/current" 2>/dev/null || true)

switch_to() {  # atomic: rename(2) of a new symlink over the old one
    ln -sfn "$1" "$RUNTIME/current.next"
    mv -T "$RUNTIME/current.next" "$RUNTIME/current"
}

switch_to "releases/$release"
if ! haproxy -c -q -f "$RUNTIME/current/haproxy.cfg"; then
    [ -n "$previous" ] && switch_to "$previous"
    echo "edge config release $release refused by haproxy -c (above); HAProxy keeps ${previous:-nothing}" >&2
    exit 1
fi

if [ -S "$RUNTIME/master.sock" ] && answer=$(echo "reload" | socat -t 30 stdio "unix-connect:$RUNTIME/master.sock" 2>&1); then
    case "$answer" in
        *Success=1*) echo "HAProxy reloaded release $release (was ${previous:-none})" ;;
        *)
            [ -n "$previous" ] && switch_to "$previous"
            echo "HAProxy did not reload release $release; it keeps running ${previous:-its old workers}: $answer" >&2
            exit 1 ;;
    esac
else
    echo "no HAProxy master is running; release $release is what it starts with"
fi

# Keep the release in use and the one before it, for a look back; drop older ones.
for old in "$RUNTIME"/releases/*; do
    name="releases/${old##*/}"
    [ "$name" = "releases/$release" ] || [ "$name" = "$previous" ] || rm -rf "$old"
done
