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
import yaml

import config
from tests.support.engine import config_from_raw, temporary_stack, toolchain_status
from tests.support.mocks import RecordingMocks, record
from tests.support.replay import CONTAINER, Replay
from tests.support.stack import LIVE_FAMILY, LIVE_STACK, live_raw_config
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
    engine_stack: object | None = None  # pulumi.automation.Stack when deployed by the engine

    def scale(self, app_count: int) -> dict[str, list[str]]:
        """Changes the app server count; returns the containers added, replaced and removed, each
        in name order (the engine works on independent resources in parallel)."""
        if self.replay is not None:
            changes = self.replay.apply(record_live(app={"count": app_count}).resources)
        else:
            changes = engine_scale(self.engine_stack, app_count)
        return {change: sorted(names) for change, names in changes.items()}

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


def remove_leftovers(prefix: str) -> list[str]:
    """Remove what an interrupted run of this slot left on the engine (a killed session never ran its
    destroy, and the containers' restart policies bring them back with the daemon, holding the
    slot's subnets and ports). Only this slot's test objects: names are `<prefix>-...`."""
    stale = leftovers(prefix)
    for kind in ("container", "network", "volume"):  # containers first: they hold the networks and volumes
        names = [entry.split(" ", 1)[1] for entry in stale if entry.startswith(kind + " ")]
        if names:
            remove = ["docker", kind, "rm"] + (["-f"] if kind != "network" else []) + names
            subprocess.run(remove, capture_output=True, text=True, check=True, timeout=300)
    remaining = leftovers(prefix)
    if remaining:
        raise RuntimeError(f"could not remove an interrupted run's objects: {remaining}")
    return stale


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


def deploy_live_stack() -> Iterator[Deployment]:
    """The session's live deployment; the `deployment` fixture (tests/conftest.py) wraps it so the
    live checks and the engine tests in tests/e2e share one stack."""
    if not docker_available():
        pytest.fail("the Docker engine does not answer: run scripts/bootstrap (make test does) first")
    cfg = live_config()
    stale = leftovers(LIVE_FAMILY)
    if stale:
        pytest.fail(f"objects of another live run are on the engine ({stale[:3]}...): tests/conftest.py removes an "
                    "interrupted run's objects at the start of a session; is a run in this slot still going? "
                    "Give concurrent runs their own MEDISYS_LIVE_SLOT")
    engine, _ = toolchain_status()
    deploy = deploy_with_engine if engine and os.environ.get("MEDISYS_DEPLOYER") != "replay" else deploy_with_replay
    try:
        yield from deploy(cfg)
    finally:
        remaining = leftovers(cfg.name_prefix)
        assert not remaining, f"destroy left objects behind: {remaining}"


def deploy_with_replay(cfg: config.StackConfig) -> Iterator[Deployment]:
    report_phase("deployer", "replay")
    mocks = record_live()
    replay = Replay(mocks.resources)
    started = time.monotonic()
    try:
        replay.up()
        report_phase("first up", time.monotonic() - started)
        checks_started = time.monotonic()
        yield Deployment(
            deployer="replay",
            prefix=cfg.name_prefix,
            https_port=cfg.load_balancer.https_port,
            http_port=cfg.load_balancer.http_port,
            ca_pem=ca_of(mocks),
            roles=roles_of(mocks),
            addresses={"postgres_endpoint": cfg.networks.host("database", 5)},
            records=mocks,
            replay=replay,
        )
        report_phase("checks", time.monotonic() - checks_started)
    finally:
        started = time.monotonic()
        replay.destroy()
        report_phase("destroy", time.monotonic() - started)


def deploy_with_engine(cfg: config.StackConfig) -> Iterator[Deployment]:
    report_phase("deployer", "pulumi")
    started = time.monotonic()
    with temporary_stack(LIVE_STACK, config_from_raw(live_raw_config())) as stack:
        result = stack.up(on_output=lambda _: None)
        report_phase("first up", time.monotonic() - started)
        checks_started = time.monotonic()
        yield Deployment(
            deployer="pulumi",
            prefix=cfg.name_prefix,
            https_port=cfg.load_balancer.https_port,
            http_port=cfg.load_balancer.http_port,
            ca_pem=result.outputs["ca_certificate"].value,
            roles=roles_from_labels(LIVE_STACK),
            addresses={"postgres_endpoint": result.outputs["postgres_endpoint"].value},
            engine_stack=stack,
        )
        report_phase("checks", time.monotonic() - checks_started)
        started = time.monotonic()
    report_phase("destroy", time.monotonic() - started)


def roles_from_labels(stack: str) -> dict[str, list[str]]:
    listing = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=medisys.stack={stack}", "--format", '{{.Names}} {{.Label "medisys.role"}}'],
        capture_output=True, text=True, check=True,
    ).stdout
    roles: dict[str, list[str]] = {}
    for line in sorted(listing.splitlines()):
        name, role = line.split()
        roles.setdefault(role, []).append(name)
    return roles


def engine_up(stack: object, on_event=None, **changes: object) -> object:
    """`pulumi up` of the live stack with these tier changes over the session's config (every
    call starts again from the base config, so a change not repeated is reverted)."""
    from pulumi import automation as auto

    assert isinstance(stack, auto.Stack)
    config_file = ROOT / f"Pulumi.{LIVE_STACK}.yaml"
    document = yaml.safe_load(config_file.read_text()) if config_file.exists() else {}
    document = document or {}
    document["config"] = config_from_raw(live_raw_config(**changes))  # type: ignore[arg-type]
    config_file.write_text(yaml.safe_dump(document, sort_keys=False))
    return stack.up(on_event=on_event, on_output=lambda _: None)


def engine_scale(stack: object, app_count: int) -> dict[str, list[str]]:
    from pulumi import automation as auto

    changes: dict[str, list[str]] = {"added": [], "replaced": [], "removed": []}
    kind = {"create": "added", "replace": "replaced", "delete": "removed"}

    def on_event(event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre and pre.metadata.type == "docker:index/container:Container" and pre.metadata.op.value in kind:
            changes[kind[pre.metadata.op.value]].append(pre.metadata.urn.split("::")[-1])

    engine_up(stack, on_event, app={"count": app_count})
    return changes


def report_phase(name: str, value: float | str) -> None:
    """Phase timings (and the deployer) for the end-to-end report (reports/live-phases.json)."""
    path = Path(os.environ.get("MEDISYS_REPORT_DIR", ROOT / "reports")) / "live-phases.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    phases = json.loads(path.read_text()) if path.exists() else {}
    phases[name] = round(value, 1) if isinstance(value, float) else value
    path.write_text(json.dumps(phases, indent=2))
