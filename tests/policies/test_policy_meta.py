"""labels-required and policy-config-matches-stack."""

from __future__ import annotations

import policy_testkit as kit
import pulumi
import pytest
from policy_testkit import (
    assert_violation,
    baseline_stack,
    container,
    network,
    replace,
    run_resource,
    run_stack,
    volume,
)

LABELS = kit.policy_named("labels-required")
STACK = kit.policy_named("policy-config-matches-stack")


def test_labelled_resources_pass() -> None:
    assert run_resource(LABELS, container("app"), name="app-1") == []
    assert run_resource(LABELS, network("dmz"), kit.NETWORK, "net-dmz") == []
    assert run_resource(LABELS, volume("postgres-data"), kit.VOLUME, "pgdata") == []


def test_container_without_role_fails() -> None:
    props = container("app", labels=[{"label": "medisys.stack", "value": "prod"}])
    found = run_resource(LABELS, props, name="app-1")
    message = assert_violation(found, "app-1", "no medisys.role label")
    assert "add the label medisys.role" in message
    assert_violation(found, "app-1", "no medisys.component label")


def test_unknown_role_fails() -> None:
    props = container("app")
    props["labels"][0] = {"label": "medisys.role", "value": "database"}
    message = assert_violation(
        run_resource(LABELS, props, name="x"), "x", "label medisys.role has a value"
    )
    assert "database" not in message.split("Fix:")[0]


def test_network_without_segment_fails() -> None:
    found = run_resource(LABELS, network("dmz", labels=[]), kit.NETWORK, "net-x")
    assert_violation(found, "net-x", "no medisys.segment label")


def test_volume_with_unknown_role_fails() -> None:
    props = volume("scratch")
    assert_violation(
        run_resource(LABELS, props, kit.VOLUME, "v"), "v", "not one of the known values"
    )


def test_computed_label_outside_the_medisys_namespace_is_ignored() -> None:
    props = container("app")
    props["labels"] = [*props["labels"], {"label": "build", "value": kit.UNKNOWN_STRING}]
    assert run_resource(LABELS, props, name="app-1") == []


def test_computed_role_label_fails_closed() -> None:
    props = container("app")
    props["labels"][0] = {"label": "medisys.role", "value": kit.UNKNOWN_STRING}
    message = assert_violation(run_resource(LABELS, props, name="app-1"), "app-1", "cannot verify")
    assert "`labels.0.value` is unknown until the update runs" in message


def test_other_resource_types_are_ignored() -> None:
    assert run_resource(LABELS, kit.random_password(), kit.RANDOM_PASSWORD, "pw") == []


def test_matching_stack_passes() -> None:
    assert run_stack(STACK, baseline_stack(), config={"expectedStack": "prod"}) == []


def test_prod_config_on_dev_stack_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pulumi, "get_stack", lambda: "dev")
    found = run_stack(
        STACK, baseline_stack(), config={"expectedStack": "prod", "checkStackLabels": False}
    )
    message = assert_violation([m for m, _ in found], "dev", "config is for stack 'prod'")
    assert "policies/config/dev.json" in message


def test_resource_labelled_for_another_stack_fails() -> None:
    labels = [
        {"label": "medisys.role", "value": "app"},
        {"label": "medisys.stack", "value": "staging"},
    ]
    found = run_stack(STACK, replace(baseline_stack(), "app-1", labels=labels))
    assert_violation(
        [m for m, _ in found], "app-1", "medisys.stack label that does not name this stack 'prod'"
    )
    assert found[0][1] == kit.urn(kit.CONTAINER, "app-1")
