"""How the live checks read the Redis cluster: `redis-cli` inside the nodes, nothing else."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tests.live.probes import docker, exec_in, redis_cli

T = TypeVar("T")


def database_address(container: str) -> str:
    networks = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", container))
    (address,) = [n["IPAddress"] for name, n in networks.items() if name.endswith("-database")]
    return address


@dataclass(frozen=True)
class Member:
    id: str
    address: str
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[str, ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "noaddr"})


class Cluster:
    """The deployment's Redis nodes by container name, with their fixed addresses."""

    def __init__(self, deployment) -> None:
        self.names: list[str] = list(deployment.roles["redis"])
        self.address = {name: database_address(name) for name in self.names}
        self.name_of = {address: name for name, address in self.address.items()}

    def cli(self, node: str, *args: str, check: bool = True) -> str:
        return redis_cli(node, self.address[node], *args, check=check)

    def info(self, node: str, section: str = "cluster") -> dict[str, str]:
        """CLUSTER INFO or INFO <section> of one node as a dict; {} when it does not answer."""
        try:
            raw = self.cli(node, *(("cluster", "info") if section == "cluster" else ("info", section)), check=False)
        except Exception:  # noqa: BLE001 - a node being replaced may have no container at all
            return {}
        return dict(line.strip().split(":", 1) for line in raw.splitlines() if ":" in line and not line.startswith("#"))

    def members(self, node: str) -> list[Member]:
        result = []
        for line in self.cli(node, "cluster", "nodes").splitlines():
            fields = line.split()
            result.append(Member(
                id=fields[0],
                address=fields[1].split("@")[0].split(":")[0],
                flags=frozenset(fields[2].replace("myself,", "").split(",")),
                master_id=None if fields[3] == "-" else fields[3],
                slots=tuple(fields[8:]),
            ))
        return result

    def pairs(self, node: str | None = None) -> dict[str, str]:
        """master name -> replica name, as `node` (default: the first node answering) sees it."""
        members = self.members(node or self.any_answering())
        by_id = {m.id: m for m in members}
        return {
            self.name_of[by_id[m.master_id].address]: self.name_of[m.address]
            for m in members
            if m.master_id and not m.failed and m.master_id in by_id
        }

    def role(self, node: str) -> str | None:
        return self.info(node, "replication").get("role")

    def any_answering(self, among: list[str] | None = None) -> str:
        for node in among or self.names:
            if self.info(node).get("cluster_state"):
                return node
        raise AssertionError("no Redis node answers")

    def state(self, among: list[str] | None = None) -> str | None:
        """cluster_state as the first answering node of `among` reports it."""
        for node in among or self.names:
            state = self.info(node).get("cluster_state")
            if state:
                return state
        return None

    def role_and_state(self, node: str) -> tuple[str | None, str | None]:
        """ROLE and cluster_state of one node in a single `docker exec` (for tight polling)."""
        cli = f"redis-cli --tls --cacert /etc/redis/tls/ca.crt -h {self.address[node]} -p 6379"
        script = ('REDISCLI_AUTH=$(sed -n "s/^requirepass //p" /etc/redis/secrets.conf); export REDISCLI_AUTH; '
                  f"{cli} role | head -n 1; {cli} cluster info | grep '^cluster_state:'")
        try:
            out = exec_in(node, "sh", "-c", script, check=False, timeout=10)
        except Exception:  # noqa: BLE001 - a timeout under load is one more poll
            return None, None
        lines = [line.strip() for line in out.splitlines()]
        role = lines[0] if lines and lines[0] in ("master", "slave") else None
        state = next((line.split(":", 1)[1] for line in lines if line.startswith("cluster_state:")), None)
        return role, state

    def rejoined_as_replica(self, node: str) -> bool:
        replication = self.info(node, "replication")
        return (
            replication.get("role") == "slave"
            and replication.get("master_link_status") == "up"
            and replication.get("master_sync_in_progress") == "0"
            and self.info(node).get("cluster_state") == "ok"
        )

    def whole(self) -> bool:
        """One replica per master, each linked to its master, and every node sees the cluster ok
        (the live stack runs replicas_per_master 1)."""
        try:
            pairs = self.pairs()
        except AssertionError:
            return False
        return (
            len(pairs) * 2 == len(self.names)
            and all(self.rejoined_as_replica(replica) for replica in pairs.values())
            and all(self.info(node).get("cluster_state") == "ok" for node in self.names)
        )


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.25, what: str = "condition") -> tuple[T, float]:
    """Polls until `predicate` is truthy; returns its value and the seconds it took."""
    started = time.monotonic()
    last: T | None = None
    while time.monotonic() - started < timeout:
        last = predicate()
        if last:
            return last, time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s (last: {last!r})")
