#!/bin/sh
# A Redis cluster node's entrypoint and health check, uploaded by components/redis_cluster.py.
#
#   redis-node serve   runs redis-server. On SIGTERM (docker stop, a replacement by `pulumi up`)
#                      a master first hands its slots to an in-sync replica with CLUSTER FAILOVER
#                      (the replica catches up with the master before it takes over: nothing
#                      acknowledged is lost), then redis-server shuts down as usual.
#   redis-node ready   the health check `pulumi up` waits for: the node is alone and empty
#                      (waiting for the forming job), or it sees the cluster ok and, as a replica,
#                      is linked to its master with the initial sync done. So the next node of a
#                      rolling change is only touched once this one has rejoined.
set -u
CONF=${REDIS_NODE_CONF:-/etc/redis/redis.conf}  # overridden only by tests/config
CA=/etc/redis/tls/ca.crt
HANDOVER_SECONDS=15

address=$(sed -n 's/^cluster-announce-ip //p' "$CONF")
port=$(sed -n 's/^tls-port //p' "$CONF")
REDISCLI_AUTH=$(sed -n 's/^requirepass //p' /etc/redis/secrets.conf)
export REDISCLI_AUTH

log() { echo "redis-node: $*"; }
cli() { redis-cli --tls --cacert "$CA" "$@" 2>/dev/null | tr -d '\r'; }
self() { cli -h "$address" -p "$port" "$@"; }
field() { sed -n "s/^$1:\\(.*\\)$/\\1/p"; }

ready() {
    # One connection for both answers: the check must stay cheap on a busy host.
    info=$(printf 'CLUSTER INFO\nINFO replication\n' | self)
    case $(printf '%s\n' "$info" | field cluster_state) in
        ok)
            case $(printf '%s\n' "$info" | field role) in
                master) return 0 ;;
                slave)
                    [ "$(printf '%s\n' "$info" | field master_link_status)" = up ] &&
                        [ "$(printf '%s\n' "$info" | field master_sync_in_progress)" = 0 ]
                    return ;;
            esac
            return 1 ;;
        fail)
            [ "$(printf '%s\n' "$info" | field cluster_known_nodes)" = 1 ] &&
                [ "$(printf '%s\n' "$info" | field cluster_slots_assigned)" = 0 ]
            return ;;
    esac
    return 1
}

handover() {
    replication=$(self info replication)
    [ "$(printf '%s\n' "$replication" | field role)" = master ] || return 0
    # A master without slots (not yet formed) has nothing to hand over.
    self cluster nodes | grep -q 'myself,master - [0-9]* [0-9]* [0-9]* connected [0-9]' || return 0
    replica=$(printf '%s\n' "$replication" | sed -n 's/^slave[0-9]*:ip=\([^,]*\),port=\([0-9]*\),state=online,.*/\1 \2/p' | head -n 1)
    if [ -z "$replica" ]; then
        log "no replica online: stopping as a master (its slots are unavailable until it returns)"
        return 0
    fi
    set -- $replica
    log "handing this master's slots to replica $1:$2 (CLUSTER FAILOVER)"
    answer=$(cli -h "$1" -p "$2" cluster failover)
    if [ "$answer" != OK ]; then
        log "replica $1:$2 refused the failover ($answer): stopping as a master"
        return 0
    fi
    tries=$((HANDOVER_SECONDS * 5))
    while [ "$tries" -gt 0 ]; do
        if [ "$(self info replication | field role)" = slave ]; then
            log "replica $1:$2 took over; stopping"
            return 0
        fi
        sleep 0.2
        tries=$((tries - 1))
    done
    log "replica $1:$2 did not take over within ${HANDOVER_SECONDS}s: stopping as a master"
}

serve() {
    redis-server "$CONF" &
    pid=$!
    trap 'trap "" TERM INT; handover; kill -TERM "$pid" 2>/dev/null' TERM INT
    status=0
    # `wait` returns early when the trap runs; keep waiting until redis-server has exited.
    while kill -0 "$pid" 2>/dev/null; do
        wait "$pid"
        status=$?
    done
    exit "$status"
}

case ${1:-} in
    serve) serve ;;
    ready) ready ;;
    *) echo "usage: redis-node serve|ready" >&2; exit 2 ;;
esac
