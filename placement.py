"""Where every container runs and which addresses it has: one plan, decided here and nowhere else.

`plan(cfg)` is a pure function of the stack config. It gives each container a `Place`: the host
(Docker engine) it is created on and its fixed address on each segment it joins. Tiers ask the
plan for a container's place; none of them picks a host or an address itself.

Default spread over the hosts h1..hN (`medisys:placement` pins a role to a list of hosts):
- PostgreSQL members, the three etcd members, app servers and edges go round-robin, so no two
  share a host while a host is free;
- Redis shard s has its master on host s and replica r on host s + r: a master and its replica
  never share a host (the cluster-forming job pairs them as the plan says);
- the endpoint, migrations and the Redis former on the first host; monitoring, the backup agent and
  the in-stack offsite server on the last.
Addresses do not depend on the host: on several hosts the segments are overlays spanning them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from config import SEGMENTS, DockerHost, Networks, StackConfig

MAX_EDGES = 4
MAX_APP_SERVERS = 4
MAX_POSTGRES_MEMBERS = 4
ETCD_MEMBERS = 3
REDIS_MAX_NODES = 9


@dataclass(frozen=True)
class Place:
    """A container's host and its address on each segment it joins."""

    container: str
    role: str
    host: str
    addresses: Mapping[str, str] = field(default_factory=dict)

    def on(self, segment: str) -> str:
        try:
            return self.addresses[segment]
        except KeyError:
            raise KeyError(f"{self.container} has no address on the {segment} segment in the placement plan") from None


# Host numbers (the last octet in a /24) per slot, the same on every segment a slot joins.
# .1 is the gateway. Slots of a role that scales (members, servers, edges, nodes) are reserved up
# to its maximum, so scaling never moves another container.
def _numbers() -> dict[str, int]:
    table: dict[str, int] = {"postgres-proxy": 5, "postgres-admin": 6, "app-migrations": 20, "redis-former": 49, "backup-agent": 40,
                             "offsite-sftp": 50, "postgres-exporter": 41, "redis-exporter": 42, "prometheus": 50,
                             "alertmanager": 51, "grafana": 52, "blackbox": 53, "prometheus-config": 54,
                             "alertmanager-config": 55, "grafana-config": 56}
    for i in range(1, MAX_EDGES + 1):
        # Edge 1 keeps the single-host addresses (.10, config job .11).
        table[f"edge-{i}"] = 10 + 2 * (i - 1)
        table[f"edge-config-{i}"] = 11 + 2 * (i - 1)
    for i in range(1, MAX_APP_SERVERS + 1):
        table[f"app-{i}"] = 20 + i
        table[f"app-gate-{i}"] = 24 + i
    for i in range(1, MAX_POSTGRES_MEMBERS + 1):
        table[f"postgres-{i}"] = 9 + i
    for i in range(1, ETCD_MEMBERS + 1):
        table[f"etcd-{i}"] = 14 + i
    for i in range(1, REDIS_MAX_NODES + 1):
        table[f"redis-{i}"] = 30 + i
    return table


HOST_NUMBERS = _numbers()
# Which segments each kind of slot joins (the address on each is the slot's host number there).
SEGMENTS_OF = {
    "edge": ("dmz", "production", "management"),
    "edge-config": ("management",),
    "app": ("production", "database", "management"),
    "app-gate": ("management",),
    "app-migrations": ("database",),
    "postgres": ("database",),
    "etcd": ("database",),
    "postgres-proxy": ("database",),
    "postgres-admin": ("database",),
    "redis": ("database",),
    "redis-former": ("database",),
    "backup-agent": ("database", "management", "offsite"),
    "offsite-sftp": ("offsite",),
    "postgres-exporter": ("database", "management"),
    "redis-exporter": ("database", "management"),
    "prometheus": ("management",),
    "alertmanager": ("management",),
    "grafana": ("management",),
    "blackbox": ("management",),
    "prometheus-config": ("management",),
    "alertmanager-config": ("management",),
    "grafana-config": ("management",),
}


def slot_kind(slot: str) -> str:
    head, _, tail = slot.rpartition("-")
    return head if tail.isdigit() else slot


@dataclass(frozen=True)
class Shard:
    """One Redis shard: the slot of its master and of each of its replicas."""

    master: str
    replicas: tuple[str, ...]


@dataclass(frozen=True)
class Placement:
    hosts: tuple[DockerHost, ...]
    places: Mapping[str, Place]  # slot -> place
    shards: tuple[Shard, ...]
    edges: int
    networks: Networks

    def address(self, slot: str, segment: str) -> str:
        """The address a slot has (or would have, if the config grew to it) on a segment."""
        return segment_address(self.networks, segment, HOST_NUMBERS[slot])

    @property
    def multi_host(self) -> bool:
        return len(self.hosts) > 1

    def __getitem__(self, slot: str) -> Place:
        try:
            return self.places[slot]
        except KeyError:
            raise KeyError(f"no container {slot!r} in the placement plan") from None

    def host(self, name: str) -> DockerHost:
        return next(h for h in self.hosts if h.name == name)

    def on_host(self, name: str) -> list[Place]:
        return [p for p in self.places.values() if p.host == name]

    def hosts_of(self, kind: str) -> list[str]:
        return [p.host for slot, p in self.places.items() if slot_kind(slot) == kind]


def _spread(hosts: Sequence[str], count: int, offset: int = 0) -> list[str]:
    return [hosts[(offset + i) % len(hosts)] for i in range(count)]


def plan(cfg: StackConfig) -> Placement:
    names = [h.name for h in cfg.hosts]

    def hosts_for(role: str) -> list[str]:
        return list(cfg.placement.get(role) or names)

    edges = cfg.load_balancer.edges or (2 if len(names) > 1 else 1)
    first, last = names[0], names[-1]
    chosen: dict[str, str] = {}
    for i, host in enumerate(_spread(hosts_for("load_balancer"), edges), start=1):
        chosen[f"edge-{i}"] = chosen[f"edge-config-{i}"] = host
    app_hosts = _spread(hosts_for("app"), cfg.app.count)
    for i, host in enumerate(app_hosts, start=1):
        # The gate runs beside its server: both go when that host goes.
        chosen[f"app-{i}"] = chosen[f"app-gate-{i}"] = host
    chosen["app-migrations"] = app_hosts[0]
    for i, host in enumerate(_spread(hosts_for("postgres"), cfg.postgres.members), start=1):
        chosen[f"postgres-{i}"] = host
    for i, host in enumerate(_spread(hosts_for("etcd"), ETCD_MEMBERS), start=1):
        chosen[f"etcd-{i}"] = host
    chosen["postgres-proxy"] = chosen["postgres-admin"] = hosts_for("postgres_proxy")[0]

    redis_hosts = hosts_for("redis")
    masters, per_master = cfg.redis.masters, cfg.redis.replicas_per_master
    shards = []
    for s in range(masters):
        # Nodes 1..masters are the masters; replica r of shard s is node masters*r + s + 1.
        master = f"redis-{s + 1}"
        chosen[master] = redis_hosts[s % len(redis_hosts)]
        replicas = []
        for r in range(1, per_master + 1):
            replica = f"redis-{masters * r + s + 1}"
            chosen[replica] = redis_hosts[(s + r) % len(redis_hosts)]
            replicas.append(replica)
        shards.append(Shard(master, tuple(replicas)))
    chosen["redis-former"] = redis_hosts[0] if cfg.placement.get("redis") else first

    backup_host = hosts_for("backup")[0] if cfg.placement.get("backup") else last
    chosen["backup-agent"] = chosen["offsite-sftp"] = backup_host
    monitoring_host = hosts_for("monitoring")[0] if cfg.placement.get("monitoring") else last
    for slot in ("postgres-exporter", "redis-exporter", "prometheus", "alertmanager", "grafana", "blackbox",
                 "prometheus-config", "alertmanager-config", "grafana-config"):
        chosen[slot] = monitoring_host

    places = {
        slot: Place(slot, slot_kind(slot), host,
                    {segment: segment_address(cfg.networks, segment, HOST_NUMBERS[slot]) for segment in SEGMENTS_OF[slot_kind(slot)]})
        for slot, host in chosen.items()
    }
    return Placement(tuple(cfg.hosts), places, tuple(shards), edges, cfg.networks)


def segment_address(networks: Networks, segment: str, number: int) -> str:
    """The one address formula: host `number` of a segment's subnet (Networks.host, by name)."""
    return networks.host(segment, number)


def reserved_addresses(cfg: StackConfig) -> dict[str, dict[str, str]]:
    """Every slot's address on every segment it could join at the largest sizes: what a unit test
    checks for collisions."""
    return {slot: {segment: segment_address(cfg.networks, segment, n) for segment in SEGMENTS_OF[slot_kind(slot)]}
            for slot, n in HOST_NUMBERS.items()}


__all__ = ["Place", "Placement", "Shard", "plan", "SEGMENTS"]
