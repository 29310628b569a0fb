"""Shared test set-up: the repository root on sys.path, so tests import config and components."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def deployment():
    """One live deployment per test session, for tests/live and tests/e2e alike."""
    from tests.live.conftest import deploy_live_stack

    yield from deploy_live_stack()


def pytest_collection_finish(session):
    """Before any live or engine test: clear what an interrupted earlier run of this slot left behind,
    so it can neither hold this run's subnets and ports nor be mistaken for what this run made."""
    live = [item for item in session.items if {"live", "e2e"} & set(item.path.relative_to(ROOT).parts[:2])]
    if not live:
        return
    from tests.live.conftest import docker_available, remove_leftovers
    from tests.support.stack import LIVE_FAMILY

    if docker_available():
        removed = remove_leftovers(LIVE_FAMILY)
        if removed:
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            reporter.write_line(f"removed {len(removed)} objects an interrupted live run left on the engine: {removed[:4]}...")
