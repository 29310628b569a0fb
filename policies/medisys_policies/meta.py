"""Guards for the pack itself: the labels every other policy relies on, and a check that the
environment's policy config is being applied to the stack it was written for."""

from __future__ import annotations

from pulumi_policy import Severity

from .framework import Reporter, current_stack, resource_policy, schema, stack_policy
from .settings import Settings
from .shapes import (
    COMPONENT_LABEL,
    CONTAINER,
    CONTAINER_ROLES,
    NETWORK,
    ROLE_LABEL,
    SEGMENT_LABEL,
    SEGMENTS,
    STACK_LABEL,
    VOLUME,
    VOLUME_ROLES,
    Resource,
)


@resource_policy(
    "labels-required",
    description="Containers, networks and volumes carry the medisys labels the other policies "
    "select on (role, stack, component, segment).",
    types=[CONTAINER, NETWORK, VOLUME],
    severity=Severity.HIGH,
    config=schema(
        extraContainerRoles={
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "Container roles accepted in addition to the platform's own.",
        }
    ),
    remediation="Label every container with medisys.role/stack/component, every network with "
    "medisys.segment and every volume with medisys.role.",
)
def labels_required(res: Resource, settings: Settings, reporter: Reporter) -> None:
    labels = res.labels()
    if res.type == CONTAINER:
        roles = CONTAINER_ROLES | set(settings.texts("extraContainerRoles"))
        required = [(ROLE_LABEL, roles), (STACK_LABEL, None), (COMPONENT_LABEL, None)]
    elif res.type == NETWORK:
        required = [(SEGMENT_LABEL, SEGMENTS)]
    else:
        required = [(ROLE_LABEL, VOLUME_ROLES)]
    for key, allowed in required:
        value = labels.get(key, "")
        if not value:
            reporter.violation(
                f"has no {key} label, so role- and segment-based policies cannot select it",
                f"add the label {key}",
            )
        elif allowed is not None and value not in allowed:
            reporter.violation(
                f"label {key} has a value that is not one of the known values",
                f"use one of: {', '.join(sorted(allowed))}",
            )


@stack_policy(
    "policy-config-matches-stack",
    description="The policy config file was written for this stack, and resources' "
    "medisys.stack labels name this stack.",
    severity=Severity.CRITICAL,
    config=schema(
        expectedStack={
            "type": "string",
            "default": "",
            "description": "Stack this config is for ('' skips the check).",
        },
        checkStackLabels={"type": "boolean", "default": True},
    ),
    remediation="Pass --policy-pack-config policies/config/<stack>.json matching --stack.",
)
def config_matches_stack(resources: list[Resource], settings: Settings, reporter: Reporter) -> None:
    stack = current_stack()
    expected = settings.text("expectedStack")
    if expected and expected != stack:
        reporter.violation(
            f"the policy config is for stack '{expected}' but is running on '{stack}', so "
            "the thresholds and levels are the wrong environment's",
            f"run with --policy-pack-config policies/config/{stack}.json",
        )
    if not settings.flag("checkStackLabels"):
        return
    for resource in resources:
        if resource.type not in (CONTAINER, NETWORK, VOLUME):
            continue
        label = resource.label(STACK_LABEL)
        if label is not None and label != stack:
            reporter.violation(
                f"has a medisys.stack label that does not name this stack '{stack}'",
                "set medisys.stack from pulumi.get_stack()",
                about=resource,
            )


POLICIES = [labels_required, config_matches_stack]
