"""Unit-test helpers: build components under Pulumi mocks and read what they registered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import config
from tests.support.mocks import RecordingMocks, Registered, record


CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"


def dev_config(**overrides: Any) -> config.StackConfig:
    raw: dict[str, Any] = {"environment": "dev", **overrides}
    return config.load(raw, "dev")


@pytest.fixture
def run_program() -> Callable[[Callable[[], Any]], RecordingMocks]:
    return record


def labels_of(resource: Registered) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.inputs.get("labels", [])}


def uploads_of(resource: Registered) -> dict[str, str]:
    return {u["file"]: u.get("content") for u in resource.inputs.get("uploads", [])}


def envs_of(resource: Registered) -> dict[str, str]:
    return dict(e.split("=", 1) for e in resource.inputs.get("envs", []))
