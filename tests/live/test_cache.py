"""Cache tier, live: one healthy cluster over three masters, TLS and a password for every client."""

from __future__ import annotations

import json
import uuid

from tests.live.probes import docker, exec_in, redis_cli


def database_address(container: str) -> str:
    networks = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", container))
    (address,) = [n["IPAddress"] for name, n in networks.items() if name.endswith("-database")]
    return address


def test_cluster_is_ok_with_every_slot_over_three_masters(deployment):
    node = deployment.roles["redis"][0]
    info = redis_cli(node, database_address(node), "cluster", "info")
    assert "cluster_state:ok" in info
    assert "cluster_slots_assigned:16384" in info and "cluster_slots_ok:16384" in info
    assert "cluster_size:3" in info
    masters = [line for line in redis_cli(node, database_address(node), "cluster", "nodes").splitlines() if "master" in line]
    assert len(masters) == 3


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
    restart brings the same cluster back (the failure users of other charts hit)."""
    import time

    nodes = deployment.roles["redis"]
    before = sorted(line.split()[0] for line in redis_cli(nodes[0], database_address(nodes[0]), "cluster", "nodes").splitlines())
    key, value = f"survivor:{uuid.uuid4()}", str(uuid.uuid4())
    assert redis_cli(nodes[0], database_address(nodes[0]), "-c", "set", key, value) == "OK"
    docker("restart", *nodes)
    deadline = time.monotonic() + 60
    info = ""
    while time.monotonic() < deadline:
        info = redis_cli(nodes[-1], database_address(nodes[-1]), "cluster", "info", check=False)
        if "cluster_state:ok" in info:
            break
        time.sleep(1)
    assert "cluster_state:ok" in info
    after = sorted(line.split()[0] for line in redis_cli(nodes[0], database_address(nodes[0]), "cluster", "nodes").splitlines())
    assert after == before
    assert redis_cli(nodes[-1], database_address(nodes[-1]), "-c", "get", key) == value
