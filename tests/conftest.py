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
