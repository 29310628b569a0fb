"""Sizing policies: app count, replica, Redis masters, container limits, Redis maxmemory."""

from __future__ import annotations

import policy_testkit as kit
from policy_testkit import (
    assert_violation,
    baseline_stack,
    container,
    run_resource,
    run_stack,
    with_upload,
    without,
)

APPS = kit.policy_named("sizing-app-server-count")
REPLICA = kit.policy_named("sizing-postgres-replica-present")
MASTERS = kit.policy_named("sizing-redis-cluster-masters")
REPLICAS = kit.policy_named("sizing-redis-replica-per-master")
LIMITS = kit.policy_named("sizing-container-limits")
MAXMEMORY = kit.policy_named("sizing-redis-maxmemory")


def texts(found: list[tuple[str, str | None]]) -> list[str]:
    return [message for message, _ in found]


def test_baseline_stack_passes_the_count_policies() -> None:
    for policy in (APPS, REPLICA, MASTERS, REPLICAS):
        assert run_stack(policy, baseline_stack()) == [], policy.name


def test_one_app_server_is_too_few() -> None:
    found = run_stack(APPS, without(baseline_stack(), "app-2"))
    message = assert_violation(texts(found), "prod", "runs 1 app server", "2 to 4")
    assert message.startswith("Stack 'prod'")
    assert found[0][1] is None  # reported against the stack


def test_five_app_servers_are_too_many() -> None:
    stack = baseline_stack()
    stack += [(kit.CONTAINER, f"app-{i}", container("app", f"app-{i}")) for i in (3, 4, 5)]
    assert_violation(texts(run_stack(APPS, stack)), "prod", "runs 5 app server")


def test_app_range_comes_from_config() -> None:
    found = run_stack(APPS, without(baseline_stack(), "app-2"), config={"minAppServers": 1.0})
    assert found == []


def test_missing_replica_fails() -> None:
    found = run_stack(REPLICA, without(baseline_stack(), "pg-2"))
    assert_violation(texts(found), "prod", "1 PostgreSQL member(s), so 0 PostgreSQL replica", "medisys:postgres.replicas")


def test_two_masters_are_not_a_cluster() -> None:
    found = run_stack(MASTERS, without(baseline_stack(), "redis-5", "redis-6"))
    assert_violation(texts(found), "prod", "4 Redis node(s), 2 master(s)", "at least 3")


def test_masters_are_nodes_divided_by_one_plus_replicas() -> None:
    stack = [
        (t, n, container("redis-cluster-init", envs=["MASTERS=2", "REPLICAS_PER_MASTER=2"]))
        if n == "redis-cluster-init" else (t, n, p)
        for t, n, p in baseline_stack()
    ]
    assert_violation(texts(run_stack(MASTERS, stack)), "prod", "6 Redis node(s), 2 master(s)")


def with_former_env(envs: list[str]) -> list:
    return [
        (t, n, container("redis-cluster-init", envs=envs)) if n == "redis-cluster-init" else (t, n, p)
        for t, n, p in baseline_stack()
    ]


def test_three_masters_without_replicas_fail_the_replica_policy() -> None:
    stack = without(with_former_env(["MASTERS=3", "REPLICAS_PER_MASTER=0"]), "redis-4", "redis-5", "redis-6")
    assert run_stack(MASTERS, stack) == []
    found = run_stack(REPLICAS, stack)
    message = assert_violation(texts(found), "prod", "0 replica(s) per master", "at least 1")
    assert "replicas_per_master" in message


def test_a_missing_replica_node_fails_the_replica_policy() -> None:
    found = run_stack(REPLICAS, without(baseline_stack(), "redis-6"))
    assert_violation(texts(found), "prod", "5 Redis node(s)", "some master lacks its replica")


def test_a_cluster_without_a_forming_job_cannot_show_its_replicas() -> None:
    found = run_stack(REPLICAS, without(baseline_stack(), "redis-cluster-init"))
    assert_violation(texts(found), "prod", "REPLICAS_PER_MASTER")


def test_replicas_per_master_minimum_comes_from_config() -> None:
    stack = without(with_former_env(["MASTERS=3", "REPLICAS_PER_MASTER=0"]), "redis-4", "redis-5", "redis-6")
    assert run_stack(REPLICAS, stack, config={"minReplicasPerMaster": 0}) == []


def test_redis_node_without_cluster_mode_fails() -> None:
    stack = baseline_stack()
    conf = kit.REDIS_CONF.replace("cluster-enabled yes", "cluster-enabled no")
    stack = [
        (t, n, with_upload(p, "/etc/redis/redis.conf", conf) if n == "redis-2" else p)
        for t, n, p in stack
    ]
    found = run_stack(MASTERS, stack)
    assert_violation(texts(found), "redis-2", "cluster-enabled yes")
    assert found[0][1] == kit.urn(kit.CONTAINER, "redis-2")


def test_cluster_init_container_is_not_a_master() -> None:
    stack = without(baseline_stack(), "redis-5", "redis-6")
    assert any(n == "redis-cluster-init" for _, n, _ in stack)
    assert run_stack(MASTERS, stack) != []


# --- limits ------------------------------------------------------------------------------------


def test_container_with_limits_passes() -> None:
    assert run_resource(LIMITS, container("postgres"), name="pg") == []


def test_missing_memory_and_cpus_fail() -> None:
    props = container("app")
    del props["memory"], props["cpus"]
    found = run_resource(LIMITS, props, name="app-1")
    assert_violation(found, "app-1", "no memory limit", "at least 128")
    assert_violation(found, "app-1", "no CPU limit")


def test_limits_below_role_minimum_fail() -> None:
    props = container("postgres", memory=256, cpus="0.25")
    found = run_resource(LIMITS, props, name="pg")
    assert_violation(found, "pg", "256 MB is below the role minimum 512 MB")
    assert_violation(found, "pg", "cpus limit 0.25 is below the role minimum 0.5")


def test_role_minimums_come_from_config() -> None:
    config = {"roleMinimums": {"app": {"memoryMb": 2048.0, "cpus": 2.0}}}
    found = run_resource(LIMITS, container("app"), name="app-1", config=config)
    assert_violation(found, "app-1", "below the role minimum 2048 MB")


def test_unlisted_role_uses_default_minimum() -> None:
    props = container("prometheus", memory=8)
    assert_violation(run_resource(LIMITS, props, name="prom"), "prom", "minimum 16 MB")


# --- redis maxmemory ---------------------------------------------------------------------------


def redis_with(conf: str, memory: int = 512) -> list[str]:
    props = with_upload(container("redis", memory=memory), "/etc/redis/redis.conf", conf)
    return run_resource(MAXMEMORY, props, name="r1")


def test_redis_maxmemory_within_limit_passes() -> None:
    assert redis_with(kit.REDIS_CONF) == []


def test_redis_without_maxmemory_fails() -> None:
    conf = kit.REDIS_CONF.replace("maxmemory 200mb\n", "").replace(
        "maxmemory-policy noeviction\n", ""
    )
    found = redis_with(conf)
    assert_violation(found, "r1", "no maxmemory,")
    assert_violation(found, "r1", "no maxmemory-policy")


def test_redis_maxmemory_above_ratio_fails() -> None:
    found = redis_with(kit.REDIS_CONF, memory=220)
    assert_violation(found, "r1", "maxmemory is 200 MB, above 0.8 of the 220 MB")
