"""Scaling the app servers 2 -> 4 -> 2: only app containers change, and no request fails."""

from __future__ import annotations

import threading
import time

from tests.live.conftest import roles_from_labels
from tests.support.stack import LIVE_STACK
from tests.live.probes import docker, http, prometheus_api


def prometheus_scrapes(prometheus: str, server: str, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        targets = prometheus_api(prometheus, "/api/v1/targets")["activeTargets"]
        if any(t["labels"].get("server") == server for t in targets):
            return True
        time.sleep(1)
    return False


def roles_now(deployment) -> dict[str, list[str]]:
    return roles_from_labels(LIVE_STACK)


class RequestLoop:
    """Bounded background traffic through the load balancer, collecting any failure."""

    def __init__(self, deployment, seconds: float) -> None:
        self.deployment, self.seconds = deployment, seconds
        self.failures: list[str] = []
        self.served_by: set[str] = set()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            try:
                status, headers, _ = http(f"{self.deployment.https_url}/", ca_pem=self.deployment.ca_pem)
                self.served_by.add(headers.get("x-served-by", "?"))
                if status != 200:
                    self.failures.append(str(status))
            except OSError as error:
                self.failures.append(repr(error))
            time.sleep(0.05)

    def __enter__(self) -> RequestLoop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=self.seconds + 60)


def test_scaling_to_four_and_back_changes_only_app_servers_and_fails_no_request(deployment):
    two = [n for names in roles_now(deployment).values() for n in names]
    prometheus = deployment.one("prometheus")
    prometheus_id = docker("inspect", "--format", "{{.Id}}", prometheus).strip()
    with RequestLoop(deployment, seconds=25) as up_loop:
        changes = deployment.scale(4)
    added = [f"{deployment.prefix}-app-3", f"{deployment.prefix}-app-3-gate", f"{deployment.prefix}-app-4", f"{deployment.prefix}-app-4-gate"]
    # The load balancer finds servers by DNS; Prometheus reloads a new scrape list (only its config job is replaced).
    assert changes == {"added": added, "replaced": [f"{prometheus}-config"], "removed": []}
    assert up_loop.failures == []
    # Same Prometheus process, new scrape list: the config release was reloaded in place.
    assert docker("inspect", "--format", "{{.Id}}", prometheus).strip() == prometheus_id
    assert prometheus_scrapes(prometheus, f"{deployment.prefix}-app-4")

    with RequestLoop(deployment, seconds=15) as four_loop:
        pass
    assert {f"{deployment.prefix}-app-{i}" for i in range(1, 5)} <= four_loop.served_by

    with RequestLoop(deployment, seconds=30) as down_loop:
        changes = deployment.scale(2)
    assert changes == {"added": [], "replaced": [f"{prometheus}-config"], "removed": added}
    assert down_loop.failures == []
    assert sorted(n for names in roles_now(deployment).values() for n in names) == sorted(two)
