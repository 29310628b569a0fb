"""The unsafe prod variants of tests/e2e (the engine test's program), checked without the engine:
each variant really makes its unsafe change, and the pack reports it under the policy the
issue names, mandatory with prod's config and advisory with staging's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi.runtime import proto
from test_policy_pack import analyze_all, servicer

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "tls-off": "tls-load-balancer-https-only",
    "app-backend-plain": "tls-app-backend-verified",
    "retention-7-days": "backup-retention-minimum",
    "one-app-server": "sizing-app-server-count",
    "database-port-published": "exposure-only-load-balancer-publishes",
    "unpinned-image": "hardening-image-pinned",
    "privileged-container": "hardening-no-privileged",
    "failover-disabled": "postgres-automatic-failover",
    "no-replica": "sizing-postgres-replica-present",
    "asynchronous-replication": "postgres-synchronous-replication",
    "redis-without-replicas": "sizing-redis-replica-per-master",
    "grafana-off": "monitoring-stack-present",
    "grafana-by-tag": "monitoring-stack-present",
    "offsite-missing": "backup-offsite-repository",
    "offsite-unencrypted": "backup-repository-encrypted",
    "offsite-retention-7-days": "backup-offsite-repository",
    "wal-push-synchronous": "backup-offsite-repository",
    "connections-unlogged": "audit-access-logging",
    # Placement on several hosts (tests/e2e/unsafe_program: PLACEMENT_VARIANTS).
    "members-on-one-host": "placement-anti-affinity",
    "etcd-on-two-hosts": "placement-anti-affinity",
    "redis-replica-with-master": "placement-anti-affinity",
    "single-edge": "placement-anti-affinity",
    "two-hosts": "placement-minimum-hosts",
    "overlay-unencrypted": "placement-overlay-encrypted",
    "bridge-on-several-hosts": "placement-segments-span-hosts",
    "engine-plain-tcp": "placement-engine-transport",
    "container-default-provider": "placement-minimum-hosts",
}


def diagnostics(recorded, environment: str):
    return analyze_all(servicer(environment), recorded["resources"], recorded["hosts"])


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request):
    result = subprocess.run(
        [sys.executable, str(HERE / "record_variant.py"), request.param, "Pulumi.prod.yaml"],
        capture_output=True, text=True, timeout=300, cwd=HERE.parents[1],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return request.param, json.loads(result.stdout)


# Staging's own retention minimum is 7 days (policies/config/staging.json), so that variant is
# compliant there: it must not be blocked, and there is nothing to warn about.
# Staging runs asynchronous replication by choice (policies/config/staging.json: not required).
# Staging runs on two hosts (policies/config/staging.json: minHosts 2).
COMPLIANT_IN_STAGING = {"retention-7-days", "asynchronous-replication", "two-hosts"}


def test_unsafe_variant_is_mandatory_in_prod(variant):
    name, sent = variant
    hits = [d for d in diagnostics(sent, "prod") if d.policyName == VARIANTS[name]]
    assert hits, f"{VARIANTS[name]} did not report variant {name} under prod's config"
    assert {d.enforcementLevel for d in hits} == {proto.MANDATORY}


def test_unsafe_variant_only_warns_in_staging(variant):
    name, sent = variant
    found = diagnostics(sent, "staging")
    assert all(d.enforcementLevel == proto.ADVISORY for d in found)
    hits = [d for d in found if d.policyName == VARIANTS[name]]
    assert bool(hits) is (name not in COMPLIANT_IN_STAGING)
