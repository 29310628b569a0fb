"""Sizing and capacity: app server count, a PostgreSQL replica, Redis cluster masters and a
replica for each, and resource limits per container. Counts are stack policies (they need every resource)."""

from __future__ import annotations

from typing import Any, Final

from pulumi_policy import Severity

from .access import as_number, get
from .framework import Reporter, read_config, resource_policy, schema, stack_policy
from .parsers import parse_redis_conf, parse_redis_size
from .settings import Settings
from .shapes import CONTAINER, REDIS_CONF, Resource, containers

_MB: Final = 1024 * 1024


def _long_running(resources: list[Resource], role: str) -> list[Resource]:
    return [c for c in containers(resources, role) if not c.is_one_shot()]


@stack_policy(
    "sizing-app-server-count",
    description="The stack runs between minAppServers and maxAppServers app containers.",
    severity=Severity.HIGH,
    config=schema(
        minAppServers={"type": "integer", "minimum": 1, "default": 2},
        maxAppServers={"type": "integer", "minimum": 1, "default": 4},
    ),
    remediation="Set the app server count in the stack config within the allowed range.",
)
def app_server_count(resources: list[Resource], settings: Settings, reporter: Reporter) -> None:
    low, high = settings.integer("minAppServers"), settings.integer("maxAppServers")
    count = len(_long_running(resources, "app"))
    if not low <= count <= high:
        reporter.violation(
            f"runs {count} app server container(s); the allowed range is {low} to {high}",
            f"set the app server count in Pulumi.<stack>.yaml to a value from {low} to {high}",
        )


@stack_policy(
    "sizing-postgres-replica-present",
    description="The PostgreSQL cluster has at least minReplicas replicas: at least 1 + minReplicas "
    "members (Patroni decides at run time which member leads).",
    severity=Severity.HIGH,
    config=schema(minReplicas={"type": "integer", "minimum": 0, "default": 1}),
    remediation="Raise medisys:postgres.replicas so the cluster has a member to fail over to.",
)
def postgres_replica_present(
    resources: list[Resource], settings: Settings, reporter: Reporter
) -> None:
    minimum = settings.integer("minReplicas")
    members = len(_long_running(resources, "postgres"))
    replicas = max(0, members - 1)
    if replicas < minimum:
        reporter.violation(
            f"runs {members} PostgreSQL member(s), so {replicas} PostgreSQL replica(s); "
            f"at least {minimum} required",
            f"set medisys:postgres.replicas to {minimum} or more (members = 1 + replicas)",
        )


def _cluster_enabled(node: Resource) -> bool | None:
    """cluster-enabled from the node's redis.conf; None when it cannot be read."""
    text = node.config_file(REDIS_CONF).text
    if text is None:
        return None
    return (parse_redis_conf(text).value("cluster-enabled") or "no").lower() == "yes"


FORMER_ROLE: Final = "redis-cluster-init"
REPLICAS_ENV: Final = "REPLICAS_PER_MASTER"


def _replicas_per_master(resources: list[Resource]) -> int | None:
    """The replicas per master the cluster-forming job creates (its REPLICAS_PER_MASTER env);
    None when there is no such job or the value cannot be read."""
    for former in containers(resources, FORMER_ROLE):
        value = former.env_value(REPLICAS_ENV)
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


@stack_policy(
    "sizing-redis-cluster-masters",
    description="Redis runs as a cluster of at least minRedisMasters masters (nodes divided by "
    "1 + replicas per master) with cluster-enabled yes.",
    severity=Severity.HIGH,
    config=schema(minRedisMasters={"type": "integer", "minimum": 3, "default": 3}),
    remediation="Run at least three Redis masters (medisys:redis.masters) with 'cluster-enabled yes'.",
)
def redis_cluster_masters(
    resources: list[Resource], settings: Settings, reporter: Reporter
) -> None:
    minimum = settings.integer("minRedisMasters")
    nodes = _long_running(resources, "redis")
    masters = len(nodes) // (1 + (_replicas_per_master(resources) or 0))
    if masters < minimum:
        reporter.violation(
            f"runs {len(nodes)} Redis node(s), {masters} master(s); a cluster needs at least "
            f"{minimum} masters",
            f"set medisys:redis.masters to {minimum} or more",
        )
    for node in nodes:
        if _cluster_enabled(node) is False:
            reporter.violation(
                "redis.conf does not set 'cluster-enabled yes'",
                "set 'cluster-enabled yes' on every Redis node",
                about=node,
            )


@stack_policy(
    "sizing-redis-replica-per-master",
    description="The Redis cluster is formed with at least minReplicasPerMaster replicas per "
    "master, and runs every node that takes, so losing any one node keeps the cluster ok.",
    severity=Severity.HIGH,
    config=schema(minReplicasPerMaster={"type": "integer", "minimum": 0, "default": 1}),
    remediation="Set medisys:redis.replicas_per_master to 1 or more.",
)
def redis_replica_per_master(
    resources: list[Resource], settings: Settings, reporter: Reporter
) -> None:
    minimum = settings.integer("minReplicasPerMaster")
    if minimum == 0:
        return
    replicas = _replicas_per_master(resources)
    if replicas is None:
        if containers(resources, "redis"):
            reporter.violation(
                f"has no {FORMER_ROLE} job stating {REPLICAS_ENV}, so nothing shows that each "
                "Redis master has a replica",
                f"form the cluster with the {FORMER_ROLE} job of components/redis_cluster.py",
            )
        return
    if replicas < minimum:
        reporter.violation(
            f"forms the Redis cluster with {replicas} replica(s) per master; at least {minimum} "
            "required, or losing one master stops the whole cluster",
            f"set medisys:redis.replicas_per_master to {minimum} or more",
        )
        return
    nodes = len(_long_running(resources, "redis"))
    if nodes % (1 + replicas) or nodes == 0:
        reporter.violation(
            f"runs {nodes} Redis node(s), not a whole number of masters with {replicas} "
            "replica(s) each, so some master lacks its replica",
            "run masters x (1 + replicas_per_master) Redis nodes (medisys:redis)",
        )


_LIMIT_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "memoryMb": {"type": "number", "minimum": 0},
        "cpus": {"type": "number", "minimum": 0},
    },
    "additionalProperties": False,
}
_ROLE_MINIMUMS: Final = {
    "postgres": {"memoryMb": 512, "cpus": 0.5},
    "redis": {"memoryMb": 128, "cpus": 0.25},
    "app": {"memoryMb": 128, "cpus": 0.25},
    "load-balancer": {"memoryMb": 64, "cpus": 0.1},
}


@resource_policy(
    "sizing-container-limits",
    description="Every container sets memory (MB) and cpus limits at or above its role's minimum.",
    types=[CONTAINER],
    severity=Severity.MEDIUM,
    config=schema(
        roleMinimums={
            "type": "object",
            "additionalProperties": _LIMIT_SCHEMA,
            "default": _ROLE_MINIMUMS,
            "description": 'Per-role minimums, e.g. {"redis": {"memoryMb": 256, "cpus": 0.5}}.',
        },
        defaultMinimum={
            "type": "object",
            **{k: v for k, v in _LIMIT_SCHEMA.items() if k != "type"},
            "default": {"memoryMb": 16, "cpus": 0.05},
            "description": "Minimum for roles not listed in roleMinimums.",
        },
    ),
    remediation="Set `memory` (MB) and `cpus` on the container from the tier's config.",
)
def container_limits(res: Resource, settings: Settings, reporter: Reporter) -> None:
    minimums: Any = settings.mapping("roleMinimums").get(res.role or "")
    if minimums is None:
        minimums = settings.mapping("defaultMinimum")
    memory, cpus = as_number(res.get("memory")), as_number(res.get("cpus"))
    memory_min = as_number(get(minimums, "memoryMb")) or 0.0
    cpus_min = as_number(get(minimums, "cpus")) or 0.0
    if memory is None or memory <= 0:
        reporter.violation(
            "has no memory limit, so it can starve the host",
            f"set memory (MB) to at least {memory_min:g}",
        )
    elif memory < memory_min:
        reporter.violation(
            f"memory limit {memory:g} MB is below the role minimum {memory_min:g} MB",
            f"raise memory to {memory_min:g} or more",
        )
    if cpus is None or cpus <= 0:
        reporter.violation("has no CPU limit (cpus)", f'set cpus to at least "{cpus_min:g}"')
    elif cpus < cpus_min:
        reporter.violation(
            f"cpus limit {cpus:g} is below the role minimum {cpus_min:g}",
            f'raise cpus to "{cpus_min:g}" or more',
        )


@resource_policy(
    "sizing-redis-maxmemory",
    description="Redis sets maxmemory below the container memory limit, and a maxmemory-policy.",
    types=[CONTAINER],
    roles=["redis"],
    severity=Severity.MEDIUM,
    config=schema(
        maxmemoryRatio={
            "type": "number",
            "minimum": 0.05,
            "maximum": 1,
            "default": 0.8,
            "description": "Largest maxmemory as a fraction of the container memory limit.",
        }
    ),
    remediation="Set 'maxmemory' to at most 80% of the container memory and a "
    "'maxmemory-policy' in redis.conf.",
)
def redis_maxmemory(res: Resource, settings: Settings, reporter: Reporter) -> None:
    text = read_config(res, REDIS_CONF, reporter, "Redis memory sizing")
    if text is None:
        return
    conf = parse_redis_conf(text)
    raw = conf.value("maxmemory")
    size = parse_redis_size(raw) if raw is not None else None
    if not size:
        reporter.violation(
            "redis.conf sets no maxmemory, so Redis can grow until the container is killed",
            "set 'maxmemory <size>' below the container memory limit",
        )
    if not conf.value("maxmemory-policy"):
        reporter.violation(
            "redis.conf sets no maxmemory-policy",
            "set 'maxmemory-policy noeviction' (or an eviction policy that fits the data)",
        )
    memory = as_number(res.get("memory"))
    ratio = settings.number("maxmemoryRatio")
    if size and memory and size > ratio * memory * _MB:
        reporter.violation(
            f"redis.conf maxmemory is {size / _MB:.0f} MB, above {ratio:g} of the "
            f"{memory:g} MB container limit",
            f"lower maxmemory to {int(ratio * memory)}mb or raise the container memory",
        )


POLICIES = [
    app_server_count,
    postgres_replica_present,
    redis_cluster_masters,
    redis_replica_per_master,
    container_limits,
    redis_maxmemory,
]
