"""Drift on the deployed stack, through the real engine: hand-made changes to the live containers
are reported by `pulumi preview --refresh` (and `scripts/drift`, which `make drift` runs) and
put back by `pulumi up --refresh` (in place where pulumi-docker updates in place, by replacement
or re-creation elsewhere); an untouched stack shows no drift at all.

Kinds of drift injected, one per container so that each is reported on its own: a memory limit
and a restart policy changed with `docker update`, a must-run container stopped, a container
removed, a CPU limit changed (pulumi-docker replaces on `cpus`), a network attachment removed.
(Image, environment, labels and published ports cannot change on a container: changing them by
hand means a new container, whose old id then reads as removed.)"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.live.probes import redis_cli
from tests.live.test_cache import database_address
from tests.support.engine import ROOT, engine_env
from tests.support.stack import LIVE_STACK


def inspect(name: str) -> dict:
    return json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout)[0]


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], capture_output=True, text=True, check=True)


def engine(deployment):
    if deployment.engine_stack is None:
        pytest.skip("drift needs the Pulumi engine (the replay deployer has no refresh)")
    return deployment.engine_stack


def planned_ops(stack, **options) -> dict[str, set[str]]:
    """What a preview with a refresh would do, per resource name (unchanged resources left out)."""
    ops: dict[str, set[str]] = {}

    def on_event(event) -> None:
        pre = event.resource_pre_event
        if pre and pre.metadata.op.value not in ("same", "refresh", "read"):
            ops.setdefault(pre.metadata.urn.split("::")[-1], set()).add(pre.metadata.op.value)

    stack.preview(refresh=True, on_event=on_event, on_output=lambda _: None, **options)
    return ops


def drift_script() -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([str(ROOT / "scripts" / "drift"), "--stack", LIVE_STACK, "--cwd", str(ROOT)],
                          env={**os.environ, **engine_env()}, capture_output=True, text=True, timeout=600)


def test_a_fresh_stack_shows_no_drift(deployment):
    stack = engine(deployment)
    stack.refresh(expect_no_changes=True, on_output=lambda _: None)
    assert planned_ops(stack, expect_no_changes=True) == {}
    done = drift_script()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no drift" in done.stdout


def test_hand_made_changes_are_reported_and_repaired(deployment):
    stack = engine(deployment)
    app_resized, app_restart = deployment.roles["app"][:2]
    redis_stopped, redis_removed = deployment.roles["redis"][:2]
    cpus_changed, disconnected = deployment.one("prometheus"), deployment.one("alertmanager")
    before = {name: inspect(name) for name in (app_resized, app_restart, redis_stopped, redis_removed, cpus_changed, disconnected)}
    network = sorted(before[disconnected]["NetworkSettings"]["Networks"])[0]

    docker("update", "--memory", "300m", "--memory-swap", "300m", app_resized)
    docker("update", "--restart", "no", app_restart)
    docker("stop", "--time", "5", redis_stopped)
    docker("rm", "--force", redis_removed)
    docker("update", "--cpus", "0.75", cpus_changed)
    docker("network", "disconnect", network, disconnected)

    ops = planned_ops(stack)
    assert ops.get(app_resized) == {"update"}
    assert ops.get(app_restart) == {"update"}
    assert ops.get(redis_stopped) == {"update"}
    assert ops.get(redis_removed) == {"create"}
    assert "replace" in ops.get(cpus_changed, set())
    assert "replace" in ops.get(disconnected, set())
    # The cluster-forming job runs again because a node was re-created (it takes the node ids): by design.
    former = deployment.one("redis-cluster-init")
    assert "replace" in ops.get(former, set())
    assert set(ops) == {app_resized, app_restart, redis_stopped, redis_removed, cpus_changed, disconnected, former}, ops

    reported = drift_script()
    assert reported.returncode == 1, reported.stdout + reported.stderr
    for name in ops:
        assert name in reported.stdout
    assert "memory" in reported.stdout and "cpus (replaces)" in reported.stdout

    stack.up(refresh=True, on_output=lambda _: None)

    after = {name: inspect(name) for name in before}
    for name in (app_resized, app_restart, redis_stopped):  # repaired in place: the same containers
        assert after[name]["Id"] == before[name]["Id"], name
        assert after[name]["State"]["Running"], name
    assert after[app_resized]["HostConfig"]["Memory"] == before[app_resized]["HostConfig"]["Memory"]
    assert after[app_restart]["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert after[redis_removed]["State"]["Running"] and after[redis_removed]["Id"] != before[redis_removed]["Id"]
    assert after[cpus_changed]["HostConfig"]["NanoCpus"] == before[cpus_changed]["HostConfig"]["NanoCpus"]
    assert after[cpus_changed]["Id"] != before[cpus_changed]["Id"]
    assert network in after[disconnected]["NetworkSettings"]["Networks"]

    # The re-created node rejoins the cluster from the nodes.conf on its volume.
    node = deployment.roles["redis"][-1]
    deadline, info = time.monotonic() + 90, ""
    while time.monotonic() < deadline and "cluster_state:ok" not in info:
        info = redis_cli(node, database_address(node), "cluster", "info", check=False)
        time.sleep(1)
    assert "cluster_state:ok" in info

    assert planned_ops(stack, expect_no_changes=True) == {}
