"""The engine end to end: a fresh stack is up (tests/live ran its checks on it), a second `up`
changes nothing, `refresh` finds no drift. Destroy and the check that nothing is left run in the
live deployment fixture's teardown."""

from __future__ import annotations

import time

import pytest

from tests.live.conftest import report_phase
from tests.support.engine import toolchain_status

AVAILABLE, REASON = toolchain_status()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=REASON)


def test_second_up_reports_no_changes(deployment):
    started = time.monotonic()
    result = deployment.engine_stack.up(on_output=lambda _: None)
    report_phase("no-op up", time.monotonic() - started)
    changed = {op: n for op, n in result.summary.resource_changes.items() if op != "same"}
    assert changed == {}


def test_refresh_finds_no_drift(deployment):
    result = deployment.engine_stack.refresh(on_output=lambda _: None)
    changed = {op: n for op, n in result.summary.resource_changes.items() if op != "same"}
    assert changed == {}
