#!/bin/sh
# One-shot: joins the nodes into one cluster. Harmless to run again: an existing healthy cluster
# is left alone, and a cluster is only created from nodes that are still empty and alone.
set -eu
REDISCLI_AUTH=$(cat /run/secrets/redis_password)
export REDISCLI_AUTH
cli() { redis-cli --tls --cacert /etc/redis/tls/ca.crt "$@"; }
first=${NODES%% *}
host=${first%:*}
port=${first#*:}
for node in $NODES; do
    until cli -h "${node%:*}" -p "${node#*:}" ping >/dev/null 2>&1; do sleep 1; done
done
info=$(cli -h "$host" -p "$port" cluster info)
if echo "$info" | grep -q '^cluster_state:ok'; then
    echo "cluster already formed:"; echo "$info" | grep -E '^cluster_(state|slots_assigned|known_nodes|size)'
    exit 0
fi
for node in $NODES; do
    known=$(cli -h "${node%:*}" -p "${node#*:}" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')
    if [ "$known" != "1" ]; then
        echo "node $node already belongs to a cluster that is not healthy: repair it by hand (redis-cli --cluster fix)" >&2
        exit 1
    fi
done
# shellcheck disable=SC2086
cli --cluster create $NODES --cluster-replicas 0 --cluster-yes
for _ in $(seq 1 30); do
    cli -h "$host" -p "$port" cluster info | grep -q '^cluster_state:ok' && { echo "cluster formed"; exit 0; }
    sleep 1
done
echo "cluster created but not ok after 30 s" >&2
exit 1
