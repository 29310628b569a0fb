"""Put the policy pack (policies/) and this folder's test kit on sys.path.

The pack is imported as the `medisys_policies` package. `policies/__main__.py` is never
imported: constructing a PolicyPack starts the analyzer server and blocks forever.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pulumi
import pytest

HERE = Path(__file__).resolve().parent
PACK = HERE.parents[1] / "policies"

for path in (PACK, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture(autouse=True)
def stack_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Policies ask pulumi.get_stack() for the stack; outside the engine it says "stack"."""
    monkeypatch.setattr(pulumi, "get_stack", lambda: "prod")
    yield "prod"
