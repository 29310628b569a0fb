"""Policies as compliance evidence: the policy -> control table is complete, the policies carry it
in pulumi-policy's compliance fields, and the report builder reads the engine's real output.

The captured engine output in data/compliance/ is `pulumi preview --json` (streaming events) of
prod with prod's policy config, trimmed to the events the report reads by
`scripts/compliance-report --save-events`:
  prod.jsonl.gz                          the prod stack as configured (every policy passes)
  prod-privileged-container.jsonl.gz     tests/e2e/unsafe_program, the app servers privileged
  prod-computed-container-user.jsonl.gz  the same program, the app servers' `user` an Output of
                                         another resource (unknown in the preview)
  prod-one-app-server.jsonl.gz           the same program, one app server (a stack policy fails)
Re-capture after a change to the program or the pack, e.g.
  venv/bin/python scripts/compliance-report --stack prod --program tests/e2e/unsafe_program \\
      --config test:variant=privileged-container --work-dir .state/compliance/variant \\
      --out-dir /tmp/cr --save-events tests/policies/data/compliance/prod-privileged-container.jsonl
  gzip -9 -f tests/policies/data/compliance/*.jsonl
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from medisys_policies import ALL_POLICIES
from medisys_policies.compliance import CIS_VERSION, CONTROLS, EVIDENCE, HIPAA_NAME
from medisys_policies.framework import REGISTRY, Reporter, _run_guarded
from medisys_policies.report import FAILED, NOT_JUDGED, PASSED, build_report, markdown, read_events, summary_table
from pulumi_policy.proxy import UnknownValueError

DATA = Path(__file__).parent / "data" / "compliance"
CONFIG = Path(__file__).resolve().parents[2] / "policies" / "config" / "prod.json"
CONTAINER = "docker:index/container:Container"
REQUIRED_HIPAA = {"164.312(a)(1)", "164.312(b)", "164.312(c)(1)", "164.312(d)", "164.312(e)(1)", "164.308(a)(7)"}


def lines(name: str) -> list[str]:
    return gzip.decompress((DATA / name).read_bytes()).decode().splitlines()


def report_of(name: str, drop_after: int | None = None) -> dict[str, Any]:
    events = lines(name)[:drop_after]
    engine = read_events(events)
    return build_report(engine, stack="prod", commit="abc123", policy_config=json.loads(CONFIG.read_text()),
                        preview={"policyConfig": "policies/config/prod.json", "succeeded": True})


def policy_entry(report: dict[str, Any], policy: str) -> dict[str, Any]:
    for control in report["controls"]:
        for entry in control["evidence"]:
            if entry["policy"] == policy:
                return entry
    raise AssertionError(f"{policy} is under no control")


def control_row(report: dict[str, Any], label: str) -> dict[str, Any]:
    (row,) = [r for r in report["summary"] if r["control"] == label]
    return row


# --- the mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: p.name)
def test_every_policy_evidences_at_least_one_control(policy: Any) -> None:
    assert EVIDENCE.get(policy.name), (
        f"policy {policy.name} maps to no control: add it to EVIDENCE in policies/medisys_policies/compliance.py"
    )


def test_every_control_is_evidenced_by_a_policy_and_every_entry_is_real() -> None:
    names = {p.name for p in ALL_POLICIES}
    assert set(EVIDENCE) <= names, f"EVIDENCE names policies that do not exist: {set(EVIDENCE) - names}"
    used = {key for keys in EVIDENCE.values() for key in keys}
    assert used <= set(CONTROLS), f"EVIDENCE names unknown controls: {used - set(CONTROLS)}"
    assert set(CONTROLS) <= used, f"controls no policy evidences: {set(CONTROLS) - used}"
    assert all(len(keys) == len(set(keys)) for keys in EVIDENCE.values())


def test_the_six_hipaa_standards_and_cis_docker_section_5_are_covered() -> None:
    hipaa = {c.reference for c in CONTROLS.values() if c.framework == HIPAA_NAME}
    assert hipaa == REQUIRED_HIPAA
    cis = {c.reference for c in CONTROLS.values() if c.framework != HIPAA_NAME}
    assert {"5.4", "5.5", "5.11", "5.12", "5.26", "5.32"} <= cis
    assert all(c.version == CIS_VERSION for c in CONTROLS.values() if c.framework != HIPAA_NAME)


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: p.name)
def test_policy_carries_its_controls_in_pulumi_policys_compliance_fields(policy: Any) -> None:
    primary, *_ = (CONTROLS[k] for k in EVIDENCE[policy.name])
    assert (policy.framework.name, policy.framework.version, policy.framework.reference, policy.framework.specification) == (
        primary.framework, primary.version, primary.reference, primary.title)
    assert set(EVIDENCE[policy.name]) <= set(policy.tags)
    assert policy.remediation_steps


# --- the report from captured engine output ------------------------------------------------------


def test_report_of_the_prod_preview_judges_each_resource_its_policy_selects() -> None:
    report = report_of("prod.jsonl.gz")
    assert report["policyPack"] == {"name": "medisys-platform-policies", "version": "0.1.0"}
    assert report["commit"] == "abc123"
    assert {row["status"] for row in report["summary"]} == {PASSED}
    privileged = policy_entry(report, "hardening-no-privileged")
    containers = [r for r in privileged["resources"]]
    assert len(containers) == 37 and {r["type"] for r in containers} == {CONTAINER}
    postgres = policy_entry(report, "tls-postgres-ssl-on")["resources"]
    assert sorted(r["name"] for r in postgres) == ["medisys-prod-pg-1", "medisys-prod-pg-2", "medisys-prod-pg-3"]
    grafana = policy_entry(report, "tls-grafana-access")["resources"]
    assert [(r["name"], r["status"]) for r in grafana] == [("medisys-prod-mon-grafana", PASSED)]
    (stack_row,) = policy_entry(report, "postgres-automatic-failover")["resources"]
    assert (stack_row["type"], stack_row["status"]) == ("pulumi:pulumi:Stack", PASSED)
    assert policy_entry(report, "policy-config-matches-stack")["enforcementLevel"] == "mandatory"
    # Audit controls judged on every container, the members' connection log and HAProxy's request log among them.
    audit = policy_entry(report, "audit-access-logging")
    assert audit["counts"] == {PASSED: 37, FAILED: 0, NOT_JUDGED: 0}
    assert control_row(report, "HIPAA 164.312(b)")["status"] == PASSED
    # TLS behind the edge: judged on every app server, both edges and their config jobs.
    app_tls = policy_entry(report, "tls-app-backend-verified")
    assert app_tls["counts"] == {PASSED: 7, FAILED: 0, NOT_JUDGED: 0}


def test_report_shows_the_violated_policy_failed_for_each_violating_resource() -> None:
    report = report_of("prod-privileged-container.jsonl.gz")
    entry = policy_entry(report, "hardening-no-privileged")
    failed = [r for r in entry["resources"] if r["status"] == FAILED]
    assert sorted(r["name"] for r in failed) == ["medisys-prod-app-1", "medisys-prod-app-2", "medisys-prod-app-3"]
    for resource in failed:
        (message,) = resource["messages"]
        assert message.startswith(f"Container '{resource['name']}' (role app): runs privileged")
    assert entry["counts"] == {PASSED: 34, FAILED: 3, NOT_JUDGED: 0}
    assert control_row(report, "CIS Docker v1.6.0 5.5")["status"] == FAILED
    assert control_row(report, "HIPAA 164.312(a)(1)")["status"] == FAILED
    assert control_row(report, "HIPAA 164.312(e)(1)")["status"] == PASSED
    assert "failed: `medisys-prod-app-2`" in markdown(report)


def test_report_shows_a_failed_stack_policy_against_the_stack() -> None:
    report = report_of("prod-one-app-server.jsonl.gz")
    (row,) = policy_entry(report, "sizing-app-server-count")["resources"]
    assert (row["type"], row["status"]) == ("pulumi:pulumi:Stack", FAILED)
    assert row["messages"][0].startswith("Stack 'prod': runs 1 app server container(s)")
    assert policy_entry(report, "sizing-postgres-replica-present")["status"] == PASSED
    assert control_row(report, "HIPAA 164.308(a)(7)")["status"] == FAILED
    assert [r["control"] for r in report["summary"] if r["status"] != PASSED] == ["HIPAA 164.308(a)(7)"]


def test_report_marks_a_policy_that_could_not_read_a_computed_value_not_judged() -> None:
    report = report_of("prod-computed-container-user.jsonl.gz")
    entry = policy_entry(report, "hardening-non-root")
    skipped = {r["name"]: r for r in entry["resources"] if r["status"] == NOT_JUDGED}
    assert sorted(skipped) == ["medisys-prod-app-1", "medisys-prod-app-2", "medisys-prod-app-3"]
    assert "cannot verify policy 'hardening-non-root' in this preview: `user` is unknown" in skipped["medisys-prod-app-1"]["messages"][0]
    assert entry["counts"][FAILED] == 0
    assert control_row(report, "CIS Docker v1.6.0 4.1")["status"] == NOT_JUDGED


def test_a_preview_that_stopped_early_leaves_the_rest_not_judged() -> None:
    all_lines = lines("prod.jsonl.gz")
    cut = next(i for i, line in enumerate(all_lines) if "medisys-prod-redis-1" in line and "policyAnalyzeSummaryEvent" in line)
    report = report_of("prod.jsonl.gz", drop_after=cut)
    redis = {r["name"]: r["status"] for r in policy_entry(report, "tls-redis-clients")["resources"]}
    assert redis.get("medisys-prod-redis-1", NOT_JUDGED) == NOT_JUDGED
    (stack_row,) = policy_entry(report, "sizing-app-server-count")["resources"]
    assert stack_row["status"] == NOT_JUDGED
    assert control_row(report, "HIPAA 164.308(a)(7)")["status"] == NOT_JUDGED


def test_the_packs_own_could_not_judge_messages_are_classified_not_judged() -> None:
    """framework._run_guarded words these messages; if it changes them, the report must follow."""
    from medisys_policies.access import UnknownReads
    from medisys_policies.report import _not_judged

    messages: list[str] = []
    reporter = Reporter(lambda msg, urn=None: messages.append(msg), "Container 'x' (role app)")

    def unknown() -> None:
        raise UnknownValueError("04da6b54-80e4-46f7-96ec-b56ff0331ba9", ["user"])

    def broken() -> None:
        raise KeyError("boom")

    for run in (unknown, broken):
        _run_guarded("hardening-non-root", reporter, UnknownReads(), run)
    assert len(messages) == 2 and all(_not_judged(m) for m in messages), messages
    assert not _not_judged("Container 'x' (role app): runs privileged. Fix: remove it.")


def test_summary_table_has_one_row_per_control() -> None:
    table = summary_table(report_of("prod.jsonl.gz")).splitlines()
    assert len(table) == 2 + len(CONTROLS)
    assert table[2].startswith("| HIPAA 164.312(a)(1) | Access control | **passed** |")


def test_registry_knows_what_each_resource_policy_judges() -> None:
    for name, info in REGISTRY.items():
        if info.kind == "resource":
            assert info.types, name
