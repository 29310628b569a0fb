"""A live deployment of the whole topology for the tier checks, created once per test session.

Deployer: the real Pulumi engine (Automation API) when the toolchain is installed; otherwise the
program is recorded under mocks and replayed onto Docker (tests/support/replay.py). The checks
are the same either way; the report says which deployer ran them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import config
from tests.support.mocks import RecordingMocks, record
from tests.support.replay import CONTAINER, Replay
from tests.support.stack import LIVE_STACK, live_raw_config
from topology import build_topology

ROOT = Path(__file__).resolve().parents[2]


def docker_available() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Deployment:
    """What the checks need to reach the stack: loopback endpoints and container names."""

    deployer: str
    prefix: str
    https_port: int
    http_port: int
    ca_pem: str
    roles: dict[str, list[str]]
    addresses: dict[str, str] = field(default_factory=dict)
    records: RecordingMocks | None = None
    replay: Replay | None = None

    def one(self, role: str) -> str:
        assert len(self.roles.get(role, [])) == 1, f"expected one {role}, have {self.roles.get(role)}"
        return self.roles[role][0]

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"


def roles_of(mocks: RecordingMocks) -> dict[str, list[str]]:
    roles: dict[str, list[str]] = {}
    for r in mocks.of_type(CONTAINER):
        labels = {item["label"]: item["value"] for item in r.inputs.get("labels", [])}
        roles.setdefault(labels["medisys.role"], []).append(r.inputs["name"])
    return roles


def ca_of(mocks: RecordingMocks) -> str:
    (root,) = mocks.of_type("tls:index/selfSignedCert:SelfSignedCert")
    return root.outputs["certPem"]


def leftovers(prefix: str) -> list[str]:
    found = []
    for kind in ("container", "network", "volume"):
        listing = ["docker", kind, "ls", "--format", "{{.Names}}" if kind == "container" else "{{.Name}}"]
        if kind == "container":
            listing.insert(3, "-a")
        names = subprocess.run(listing, capture_output=True, text=True, check=True).stdout.split()
        found += [f"{kind} {n}" for n in names if n.startswith(prefix + "-") or n == prefix]
    return found


def live_config(**changes: object) -> config.StackConfig:
    return config.load(live_raw_config(**changes), LIVE_STACK)


def record_live(**changes: object) -> RecordingMocks:
    cfg = live_config(**changes)
    return record(lambda: build_topology(cfg, None), stack=LIVE_STACK)


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    if not docker_available():
        pytest.fail("the Docker engine does not answer: run scripts/bootstrap (make test does) first")
    cfg = live_config()
    prefix = cfg.name_prefix
    stale = leftovers(prefix)
    if stale:
        pytest.fail(f"a previous live run left {len(stale)} objects ({stale[:3]}...): remove them with `docker rm -f`/`docker network rm`")
    mocks = record_live()
    replay = Replay(mocks.resources)
    started = time.monotonic()
    try:
        replay.up()
        report_phase("first up (replay)", time.monotonic() - started)
        yield Deployment(
            deployer="replay",
            prefix=prefix,
            https_port=cfg.load_balancer.https_port,
            http_port=cfg.load_balancer.http_port,
            ca_pem=ca_of(mocks),
            roles=roles_of(mocks),
            addresses={"postgres_primary": cfg.networks.host("database", 10)},
            records=mocks,
            replay=replay,
        )
    finally:
        started = time.monotonic()
        replay.destroy()
        report_phase("destroy (replay)", time.monotonic() - started)
        remaining = leftovers(prefix)
        assert not remaining, f"destroy left objects behind: {remaining}"


def report_phase(name: str, seconds: float) -> None:
    """Phase timings for the end-to-end report (reports/live-phases.json)."""
    path = Path(os.environ.get("MEDISYS_REPORT_DIR", ROOT / "reports")) / "live-phases.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    phases = json.loads(path.read_text()) if path.exists() else {}
    phases[name] = round(seconds, 1)
    path.write_text(json.dumps(phases, indent=2))
