"""Resizing the app servers' memory under load, through the real engine: pulumi-docker updates
memory in place (`docker update`), so the same containers keep serving and no request fails."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.live.conftest import ROOT
from tests.live.test_scaling import RequestLoop
from tests.support.engine import config_from_raw
from tests.support.stack import LIVE_OVERRIDES, LIVE_STACK, live_raw_config


def inspect(name: str) -> dict:
    return json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout)[0]


def up_with_app_memory(stack, memory_mb: int) -> dict[str, set[str]]:
    """`pulumi up` with the app servers' memory changed; returns the operations per resource name."""
    resources = {**LIVE_OVERRIDES["app"]["resources"], "memory_mb": memory_mb}
    config_file = ROOT / f"Pulumi.{LIVE_STACK}.yaml"
    config_file.write_text(yaml.safe_dump({"config": config_from_raw(live_raw_config(app={"resources": resources}))}, sort_keys=False))
    ops: dict[str, set[str]] = {}

    def on_event(event) -> None:
        pre = event.resource_pre_event
        if pre and pre.metadata.op.value not in ("same", "refresh", "read"):
            ops.setdefault(pre.metadata.urn.split("::")[-1], set()).add(pre.metadata.op.value)

    stack.up(on_event=on_event, on_output=lambda _: None)
    return ops


def test_a_memory_change_of_the_app_servers_keeps_them_serving(deployment):
    if deployment.engine_stack is None:
        pytest.skip("needs the Pulumi engine")
    apps = deployment.roles["app"]
    before = {name: inspect(name) for name in apps}
    original = LIVE_OVERRIDES["app"]["resources"]["memory_mb"]
    try:
        with RequestLoop(deployment, seconds=30) as load:
            ops = up_with_app_memory(deployment.engine_stack, original + 64)
        assert ops == {name: {"update"} for name in apps}
        after = {name: inspect(name) for name in apps}
        for name in apps:
            assert after[name]["Id"] == before[name]["Id"]
            assert after[name]["State"]["StartedAt"] == before[name]["State"]["StartedAt"]  # not even restarted
            assert after[name]["HostConfig"]["Memory"] == (original + 64) * 2**20
        assert load.failures == [] and load.served_by, (load.failures, load.served_by)
    finally:
        up_with_app_memory(deployment.engine_stack, original)
    assert {inspect(name)["HostConfig"]["Memory"] for name in apps} == {original * 2**20}
