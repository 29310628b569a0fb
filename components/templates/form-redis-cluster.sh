#!/bin/sh
# One-shot: joins $NODES into one cluster of $MASTERS masters with $REPLICAS_PER_MASTER replicas
# each, paired as $SHARDS says ("master,replica... master,replica..."): the placement plan puts a
# replica on another host than its master, so the pairing is never left to redis-cli's guess.
# Harmless to run again:
# - a healthy cluster that has every node is left alone ("cluster already formed");
# - nodes that are still empty and alone join a healthy cluster as replicas (for example after
#   replicas_per_master went from 0 to 1, or a node lost its volume);
# - a cluster is only created from nodes that are all still empty and alone;
# - anything else (a node of another or an unhealthy cluster, a change of the number of
#   masters, which needs resharding) is refused with what to do, and fails `pulumi up`.
set -eu
REDISCLI_AUTH=$(cat /run/secrets/redis_password)
export REDISCLI_AUTH
# cli keeps redis-cli's exit status (the --cluster commands); on() strips INFO's carriage returns.
cli() { redis-cli --tls --cacert /etc/redis/tls/ca.crt "$@"; }
on() { _at=$1; shift; cli -h "${_at%:*}" -p "${_at#*:}" "$@" | tr -d '\r'; }
field() { sed -n "s/^$1:\\(.*\\)$/\\1/p"; }
refuse() { echo "$*" >&2; exit 1; }
alone_and_empty() {
    info=$(on "$1" cluster info)
    [ "$(echo "$info" | field cluster_known_nodes)" = 1 ] && [ "$(echo "$info" | field cluster_slots_assigned)" = 0 ] &&
        [ "$(on "$1" dbsize)" = 0 ]
}
wait_until_whole() {
    expected=$(echo $NODES | wc -w)
    replicas=$((MASTERS * REPLICAS_PER_MASTER))
    for _ in $(seq 1 60); do
        info=$(on "$1" cluster info)
        if [ "$(echo "$info" | field cluster_state)" = ok ] && [ "$(echo "$info" | field cluster_known_nodes)" = "$expected" ] &&
            [ "$(on "$1" cluster nodes | grep -c slave)" -ge "$replicas" ]; then
            echo "$2"; echo "$info" | grep -E '^cluster_(state|slots_assigned|known_nodes|size)'
            return 0
        fi
        sleep 1
    done
    refuse "cluster changed but not ok with $expected nodes and $replicas replicas after 60 s: check \`redis-cli --cluster check $1\`"
}

# shard_of ADDRESS: the shard (comma list) the address belongs to.
shard_of() {
    for shard in $SHARDS; do
        case ",$shard," in *",$1,"*) echo "$shard"; return 0 ;; esac
    done
    refuse "node $1 is in no shard of SHARDS ($SHARDS): the placement plan and NODES disagree"
}
# master_id_of NODE SHARD: the id of the shard's node that holds slots as a master now (after a
# failover it may be a planned replica), as NODE sees the cluster.
master_id_of() {
    view=$(on "$1" cluster nodes)
    for address in $(echo "$2" | tr , ' '); do
        echo "$view" | awk -v at="$address@" 'index($2, at) == 1 && $3 ~ /master/ && $3 !~ /fail/ && NF > 8 { print $1 }'
    done | head -n 1
}
# join_as_replica NODE HEALTHY: NODE replicates its shard's current master.
join_as_replica() {
    master_id=$(master_id_of "$2" "$(shard_of "$1")")
    [ -n "$master_id" ] || refuse "no master holds the slots of the shard of $1 ($(shard_of "$1")): check \`redis-cli --cluster check $2\`"
    echo "adding $1 as a replica of $master_id"
    cli --cluster add-node "$1" "$2" --cluster-slave --cluster-master-id "$master_id"
}

for node in $NODES; do
    until on "$node" ping >/dev/null 2>&1; do sleep 1; done
done

healthy=""
for node in $NODES; do
    if [ "$(on "$node" cluster info | field cluster_state)" = ok ]; then healthy=$node; break; fi
done

if [ -n "$healthy" ]; then
    members=$(on "$healthy" cluster nodes)
    joiners=""
    for node in $NODES; do
        id=$(on "$node" cluster myid)
        if echo "$members" | grep -q "^$id "; then continue; fi
        alone_and_empty "$node" ||
            refuse "node $node is not part of the cluster of $healthy and not empty and alone: repair it by hand (redis-cli --cluster fix, or CLUSTER RESET on a node whose data is expendable)"
        joiners="$joiners $node"
    done
    if [ -z "$joiners" ]; then
        echo "cluster already formed:"; on "$healthy" cluster info | grep -E '^cluster_(state|slots_assigned|known_nodes|size)'
        exit 0
    fi
    masters=$(echo "$members" | awk '$3 ~ /master/ && $3 !~ /fail/ && NF > 8' | wc -l)
    [ "$masters" = "$MASTERS" ] ||
        refuse "the cluster has $masters masters with slots, the configuration asks for $MASTERS: changing the number of masters needs resharding by hand (redis-cli --cluster add-node, then --cluster rebalance)"
    for node in $joiners; do
        join_as_replica "$node" "$healthy"
    done
    wait_until_whole "$healthy" "replicas added"
    exit 0
fi

for node in $NODES; do
    alone_and_empty "$node" ||
        refuse "node $node already belongs to a cluster that is not healthy: repair it by hand (redis-cli --cluster fix)"
done
masters=""
for shard in $SHARDS; do masters="$masters ${shard%%,*}"; done
first=${NODES%% *}
# shellcheck disable=SC2086
cli --cluster create $masters --cluster-replicas 0 --cluster-yes
for _ in $(seq 1 60); do
    [ "$(on "$first" cluster info | field cluster_state)" = ok ] && break
    sleep 1
done
for shard in $SHARDS; do
    for replica in $(echo "${shard#*,}" | tr , ' '); do
        [ "$replica" = "$shard" ] && continue  # a shard without replicas
        join_as_replica "$replica" "$first"
    done
done
wait_until_whole "$first" "cluster formed"
