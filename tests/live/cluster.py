"""The PostgreSQL cluster as Patroni sees it: members, who leads, who streams. Roles are runtime
state, so the live checks ask Patroni (patronictl inside a running member) instead of a label."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any


def members(deployment) -> list[str]:
    return sorted(deployment.roles.get("postgres", []))


def running(container: str) -> bool:
    state = subprocess.run(["docker", "inspect", "--format", "{{.State.Running}}", container], capture_output=True, text=True)
    return state.stdout.strip() == "true"


def cluster(deployment) -> list[dict[str, Any]]:
    """`patronictl list` as JSON, from the first running member that answers; [] if none does."""
    for member in members(deployment):
        if not running(member):
            continue
        result = subprocess.run(
            ["docker", "exec", member, "patronictl", "-c", "/etc/patroni", "list", "-f", "json"],
            capture_output=True, text=True, timeout=30,
        )
        if result.returncode == 0 and result.stdout.strip():
            return json.loads(result.stdout)
    return []


def leader(deployment) -> str | None:
    return next((m["Member"] for m in cluster(deployment) if m["Role"] == "Leader" and m["State"] == "running"), None)


def streaming_replicas(deployment) -> list[str]:
    return sorted(m["Member"] for m in cluster(deployment) if m["Role"] in ("Replica", "Sync Standby") and m["State"] == "streaming")


def wait_for(condition, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not within {timeout:.0f} s; cluster: {cluster_summary()}")


_last_deployment: list[Any] = []


def cluster_summary() -> str:
    return json.dumps(cluster(_last_deployment[0])) if _last_deployment else "?"


def wait_whole(deployment, timeout: float = 180) -> tuple[str, list[str]]:
    """Until one member leads and every other member streams from it; returns (leader, replicas)."""
    _last_deployment[:] = [deployment]
    expected = len(members(deployment)) - 1

    def whole():
        lead, replicas = leader(deployment), streaming_replicas(deployment)
        return (lead, replicas) if lead and len(replicas) == expected else None

    return wait_for(whole, timeout, f"a leader and {expected} streaming replica(s)")
