"""Cache tier, live: one healthy cluster of three masters with a replica each, TLS and a password
for every client, and a full restart that brings the same cluster back."""

from __future__ import annotations

import time
import uuid

from tests.live.probes import docker, exec_in, redis_cli
from tests.live.redis_cluster import Cluster, database_address, wait_until


def test_cluster_is_ok_with_every_slot_over_three_masters_each_with_a_replica(deployment):
    node = deployment.roles["redis"][0]
    info = redis_cli(node, database_address(node), "cluster", "info")
    assert "cluster_state:ok" in info
    assert "cluster_slots_assigned:16384" in info and "cluster_slots_ok:16384" in info
    assert "cluster_size:3" in info and "cluster_known_nodes:6" in info
    cluster = Cluster(deployment)
    members = cluster.members(node)
    masters = [m for m in members if m.is_master]
    assert len(masters) == 3 and all(m.slots for m in masters)
    pairs = cluster.pairs(node)
    assert sorted(pairs) == sorted(cluster.name_of[m.address] for m in masters)
    assert len(set(pairs.values())) == 3 and not set(pairs.values()) & set(pairs)


def test_key_written_through_one_node_is_read_back_through_the_cluster(deployment):
    first, *_, last = deployment.roles["redis"]
    key, value = f"probe:{uuid.uuid4()}", str(uuid.uuid4())
    assert redis_cli(first, database_address(first), "-c", "set", key, value) == "OK"
    assert redis_cli(last, database_address(last), "-c", "get", key) == value


def test_forming_the_cluster_again_changes_nothing(deployment):
    node = deployment.roles["redis"][0]
    before = sorted(line.split()[0] for line in redis_cli(node, database_address(node), "cluster", "nodes").splitlines())
    former = deployment.one("redis-cluster-init")
    output = docker("start", "--attach", former)
    assert "cluster already formed" in output
    assert docker("inspect", "--format", "{{.State.ExitCode}}", former).strip() == "0"
    after = sorted(line.split()[0] for line in redis_cli(node, database_address(node), "cluster", "nodes").splitlines())
    assert after == before


def test_plain_text_and_passwordless_clients_are_refused(deployment):
    node = deployment.roles["redis"][0]
    address = database_address(node)
    plain = exec_in(node, "redis-cli", "-h", address, "-p", "6379", "ping", check=False)
    assert "PONG" not in plain
    no_password = exec_in(node, "redis-cli", "--tls", "--cacert", "/etc/redis/tls/ca.crt", "-h", address, "-p", "6379", "ping", check=False)
    assert "NOAUTH" in no_password


def test_nodes_persist_with_aof_and_bounded_memory(deployment):
    node = deployment.roles["redis"][0]
    address = database_address(node)
    assert redis_cli(node, address, "config", "get", "appendonly").splitlines() == ["appendonly", "yes"]
    assert redis_cli(node, address, "config", "get", "maxmemory-policy").splitlines() == ["maxmemory-policy", "allkeys-lru"]
    assert redis_cli(node, address, "config", "get", "maxmemory").splitlines() == ["maxmemory", str(96 * 1024 * 1024)]


def test_cluster_recovers_after_every_node_restarts(deployment):
    """Nodes keep their fixed announced addresses and nodes.conf on their volumes, so a full
    restart of all six brings the same cluster back (the failure users of other charts hit):
    same members, every key, three masters each with a linked replica again."""
    cluster = Cluster(deployment)
    nodes = cluster.names
    before = sorted(m.id for m in cluster.members(nodes[0]))
    key, value = f"survivor:{uuid.uuid4()}", str(uuid.uuid4())
    assert cluster.cli(nodes[0], "-c", "set", key, value) == "OK"
    started = time.monotonic()
    docker("restart", *nodes, timeout=300)
    _, seconds = wait_until(lambda: all(cluster.info(n).get("cluster_state") == "ok" for n in nodes), 90, what="cluster ok on every node")
    print(f"full restart of {len(nodes)} Redis nodes: cluster ok on every node {time.monotonic() - started:.1f} s after `docker restart`")
    assert sorted(m.id for m in cluster.members(nodes[0])) == before
    assert cluster.cli(nodes[-1], "-c", "get", key) == value
    pairs, _ = wait_until(lambda: (lambda p: p if len(p) == 3 else None)(cluster.pairs()), 60, what="three master/replica pairs")
    for replica in pairs.values():
        wait_until(lambda r=replica: cluster.rejoined_as_replica(r), 60, what=f"{replica} linked to its master")
