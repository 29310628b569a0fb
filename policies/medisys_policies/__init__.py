"""The medisys-platform CrossGuard policies, one module per group.

`ALL_POLICIES` is what `policies/__main__.py` hands to `PolicyPack`. Importing this package
never starts the policy server, so tests import it freely.
"""

from __future__ import annotations

from pulumi_policy import Policy

from . import audit, backups, exposure, failover, hardening, meta, monitoring, placement, secrets, sizing, tls

ALL_POLICIES: list[Policy] = [
    *tls.POLICIES,
    *backups.POLICIES,
    *sizing.POLICIES,
    *failover.POLICIES,
    *monitoring.POLICIES,
    *exposure.POLICIES,
    *hardening.POLICIES,
    *secrets.POLICIES,
    *meta.POLICIES,
    *audit.POLICIES,
    *placement.POLICIES,
]

__all__ = ["ALL_POLICIES"]
