"""The stack the live tests deploy: the dev configuration on its own subnets and ports, so it
never collides with a dev stack running on the same engine, under a name new to each session."""

from __future__ import annotations

import os
import secrets
from typing import Any

# Every test session deploys a stack of its own name, so it never meets another run's stack or
# state; LIVE_FAMILY (the prefix of every such name) finds what any earlier run left behind.
# MEDISYS_LIVE_SLOT=N (0-9) moves a run to subnets and ports of its own, so several checkouts can
# run their live suites on one engine at once; slot 0 is the default.
LIVE_SLOT = int(os.environ.get("MEDISYS_LIVE_SLOT", "0"))
if not 0 <= LIVE_SLOT <= 9:
    raise ValueError(f"MEDISYS_LIVE_SLOT={LIVE_SLOT}: use a number from 0 to 9")
LIVE_FAMILY = "medisys-livetest" + (str(LIVE_SLOT) if LIVE_SLOT else "")
LIVE_STACK = f"livetest-{secrets.token_hex(3)}"
_OCTET = 211 + LIVE_SLOT
LIVE_OVERRIDES: dict[str, Any] = {
    "networks": {"dmz": f"192.168.{_OCTET}.0/24", "production": f"10.{_OCTET}.1.0/24",
                 "database": f"10.{_OCTET}.2.0/24", "management": f"10.{_OCTET}.3.0/24",
                 "offsite": f"10.{_OCTET}.4.0/24"},
    "load_balancer": {"https_port": 18443 + 100 * LIVE_SLOT, "http_port": 18080 + 100 * LIVE_SLOT,
                      "certificate": {"mode": "generated", "server_names": ["localhost"]}},
    "app": {"count": 2, "resources": {"memory_mb": 256, "cpus": 0.5}},
    # Prod's replication mode (synchronous), so the failover drill proves prod's 0-loss bar.
    "postgres": {"replicas": 1, "resources": {"memory_mb": 512, "cpus": 0.5}, "failover": {"synchronous": True}},
    "backups": {"retention_days": 7},
    "redis": {"masters": 3, "replicas_per_master": 1, "maxmemory_mb": 96, "resources": {"memory_mb": 128, "cpus": 0.25}},
    "monitoring": {"retention": "1d"},
}


def live_raw_config(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"environment": "dev", "name_prefix": f"{LIVE_FAMILY}-{LIVE_STACK.removeprefix('livetest-')}", **LIVE_OVERRIDES}
    for tier, values in changes.items():
        raw[tier] = {**raw.get(tier, {}), **values}
    return raw
