"""The policy pack through the real engine: previews of the dev, staging and prod stacks pass; unsafe variants of
prod fail under prod's policy config and only warn under staging's."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.support.engine import ROOT, stack_file_config, temporary_stack, toolchain_status
from tests.support.mocks import issue_test_certificates

AVAILABLE, REASON = toolchain_status()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=REASON)
UNSAFE_PROGRAM = Path(__file__).parent / "unsafe_program"

# variant -> (config changes, policy that must name it)
VARIANTS = {
    "tls-off": ({}, "tls-load-balancer-https-only"),
    "retention-7-days": ({"medisys:backups": {"retention_days": 7, "full_interval_hours": 24, "diff_interval_hours": 4}}, "backup-retention-minimum"),
    "one-app-server": ({}, "sizing-app-server-count"),
    "database-port-published": ({}, "exposure-only-load-balancer-publishes"),
    "unpinned-image": ({}, "hardening-image-pinned"),
    "privileged-container": ({}, "hardening-no-privileged"),
    "failover-disabled": ({}, "postgres-automatic-failover"),
    "no-replica": ({}, "sizing-postgres-replica-present"),
    "asynchronous-replication": ({}, "postgres-synchronous-replication"),
    "redis-without-replicas": ({}, "sizing-redis-replica-per-master"),
    "offsite-missing": ({}, "backup-offsite-repository"),
    "offsite-unencrypted": ({}, "backup-repository-encrypted"),
    "offsite-retention-7-days": ({"medisys:backups": {"retention_days": 30, "full_interval_hours": 24, "diff_interval_hours": 4,
                                                      "offsite": {"retention_days": 7}}}, "backup-offsite-repository"),
}


def edge_secrets() -> dict[str, str]:
    certs = issue_test_certificates("app.medisys.example", ["app.medisys.example"], [])
    return {"medisys:lb_certificate": certs["cert"], "medisys:lb_private_key": certs["key"]}


def policy_config_for(environment: str, stack: str, tmp_path: Path) -> str:
    """The environment's policy config, expecting this temporary stack's name."""
    document = json.loads((ROOT / "policies" / "config" / f"{environment}.json").read_text())
    entry = document.setdefault("policy-config-matches-stack", {})
    if isinstance(entry, dict) and "expectedStack" in entry:
        entry["expectedStack"] = stack
    path = tmp_path / f"{environment}.json"
    path.write_text(json.dumps(document))
    return str(path)


def preview(stack, environment: str, tmp_path: Path):
    from pulumi import automation as auto

    lines: list[str] = []
    try:
        stack.preview(policy_packs=[str(ROOT / "policies")],
                      policy_pack_configs=[policy_config_for(environment, stack.name, tmp_path)], on_output=lines.append)
        return True, "\n".join(lines)
    except auto.CommandError as error:
        return False, "\n".join(lines) + str(error)


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_preview_of_the_real_stack_passes_its_policies(environment, tmp_path):
    name = f"{environment}-policy-{uuid.uuid4().hex[:6]}"
    secrets = edge_secrets() if environment == "prod" else None
    with temporary_stack(name, stack_file_config(environment), secrets) as stack:
        ok, output = preview(stack, environment, tmp_path)
    assert ok, output
    assert "can't run policy" not in output


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_unsafe_prod_variant_is_blocked_in_prod_and_only_warned_in_staging(variant, tmp_path):
    changes, policy = VARIANTS[variant]
    for environment, must_pass in (("prod", False), ("staging", True)):
        name = f"unsafe-{environment}-{uuid.uuid4().hex[:6]}"
        config = {**stack_file_config("prod"), **changes, "test:variant": variant}
        with temporary_stack(name, config, edge_secrets(), work_dir=UNSAFE_PROGRAM) as stack:
            ok, output = preview(stack, environment, tmp_path)
        assert ok is must_pass, output
        # Staging's own minimum retention is 7 days and it runs asynchronous replication by
        # choice: those variants are compliant there.
        if not (environment == "staging" and variant in ("retention-7-days", "asynchronous-replication")):
            assert policy in output
