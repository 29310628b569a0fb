"""monitoring-stack-present: Prometheus, Alertmanager and Grafana run, Grafana's image by digest
where the environment's config asks for it; mandatory in prod, advisory elsewhere, and dev's
config leaves Grafana out."""

from __future__ import annotations

import policy_testkit as kit
import pytest
from policy_testkit import assert_violation, baseline_stack, container, replace, run_stack, without
from pulumi.runtime import proto
from test_policy_pack import analyze_stack, load_config, servicer

POLICY = kit.policy_named("monitoring-stack-present")


def texts(found: list[tuple[str, str | None]]) -> list[str]:
    return [message for message, _ in found]


def settings(environment: str) -> dict:
    entry = load_config(environment)["monitoring-stack-present"]
    return {k: v for k, v in entry.items() if k != "enforcementLevel"}


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_baseline_stack_passes(environment: str) -> None:
    assert run_stack(POLICY, baseline_stack(), config=settings(environment)) == []


@pytest.mark.parametrize(
    ("role", "consequence"),
    [("grafana", "nobody can see the dashboards"), ("prometheus", "nothing scrapes"), ("alertmanager", "no alert reaches")],
)
def test_a_missing_monitoring_service_fails_in_prod(role: str, consequence: str) -> None:
    found = run_stack(POLICY, without(baseline_stack(), role), config=settings("prod"))
    message = assert_violation(texts(found), "prod", f"runs no {role} container", consequence)
    assert message.startswith("Stack 'prod'")
    if role == "grafana":
        assert "medisys:monitoring.grafana" in message


def test_a_one_shot_container_does_not_count_as_the_service() -> None:
    labels = [*container("grafana")["labels"], {"label": "medisys.one-shot", "value": "true"}]
    found = run_stack(POLICY, replace(baseline_stack(), "grafana", labels=labels), config=settings("prod"))
    assert_violation(texts(found), "prod", "runs no grafana container")


def test_dev_keeps_grafana_optional() -> None:
    assert run_stack(POLICY, without(baseline_stack(), "grafana"), config=settings("dev")) == []
    found = run_stack(POLICY, without(baseline_stack(), "alertmanager"), config=settings("dev"))
    assert_violation(texts(found), "prod", "runs no alertmanager container")


def test_grafana_by_tag_fails_where_a_digest_is_required() -> None:
    stack = replace(baseline_stack(), "grafana", image="grafana/grafana:12.4.5")
    found = run_stack(POLICY, stack, config=settings("prod"))
    message = assert_violation(texts(found), "grafana", "not pinned by digest")
    assert "12.4.5" not in message.split("Fix:")[0]  # the value itself is not echoed
    assert found[0][1] is not None and found[0][1].endswith("::grafana")
    assert run_stack(POLICY, stack, config=settings("dev")) == []


def test_prod_blocks_and_staging_warns() -> None:
    stack = without(baseline_stack(), "grafana")
    for environment, level in (("prod", proto.MANDATORY), ("staging", proto.ADVISORY)):
        hits = [d for d in analyze_stack(servicer(environment), stack).diagnostics if d.policyName == "monitoring-stack-present"]
        assert hits and {d.enforcementLevel for d in hits} == {level}, environment
