"""The stack the live tests deploy: the dev configuration on its own subnets and ports, so it
never collides with a dev stack running on the same engine, under a name new to each session."""

from __future__ import annotations

import secrets
from typing import Any

# Every test session deploys a stack of its own name, so it never meets another run's stack or
# state; LIVE_FAMILY (the prefix of every such name) finds what any earlier run left behind.
LIVE_FAMILY = "medisys-livetest"
LIVE_STACK = f"livetest-{secrets.token_hex(3)}"
LIVE_OVERRIDES: dict[str, Any] = {
    "networks": {"dmz": "192.168.211.0/24", "production": "10.211.1.0/24", "database": "10.211.2.0/24", "management": "10.211.3.0/24"},
    "load_balancer": {"https_port": 18443, "http_port": 18080, "certificate": {"mode": "generated", "server_names": ["localhost"]}},
    "app": {"count": 2, "resources": {"memory_mb": 256, "cpus": 0.5}},
    "postgres": {"replicas": 1, "resources": {"memory_mb": 512, "cpus": 0.5}},
    "backups": {"retention_days": 7},
    "redis": {"nodes": 3, "maxmemory_mb": 96, "resources": {"memory_mb": 128, "cpus": 0.25}},
    "monitoring": {"retention": "1d"},
}


def live_raw_config(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"environment": "dev", "name_prefix": f"{LIVE_FAMILY}-{LIVE_STACK.removeprefix('livetest-')}", **LIVE_OVERRIDES}
    for tier, values in changes.items():
        raw[tier] = {**raw.get(tier, {}), **values}
    return raw
