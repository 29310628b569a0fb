"""Monitoring coverage: the stack runs the services that see and report its state (Prometheus,
Alertmanager, Grafana), with Grafana's image pinned by digest where it comes from a registry.
HIPAA 164.312(b) audit controls."""

from __future__ import annotations

import re
from typing import Final

from pulumi_policy import Severity

from .access import as_str
from .framework import Reporter, schema, stack_policy
from .settings import Settings
from .shapes import Resource, containers

_DIGEST: Final = re.compile(r"@sha256:[0-9a-f]{64}$")

_WHAT: Final = {
    "prometheus": "nothing scrapes the tiers or evaluates the alert rules",
    "alertmanager": "no alert reaches anyone",
    "grafana": "nobody can see the dashboards",
}


@stack_policy(
    "monitoring-stack-present",
    description="The stack runs Prometheus, Alertmanager and Grafana (long-running containers of "
    "those roles), and the roles listed in digestPinnedRoles run images pinned by digest.",
    severity=Severity.HIGH,
    config=schema(
        requiredRoles={
            "type": "array",
            "items": {"type": "string"},
            "default": ["prometheus", "alertmanager", "grafana"],
            "description": "Container roles the stack must run (dev leaves grafana out: no "
            "image offline).",
        },
        digestPinnedRoles={
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "Roles whose image must be name@sha256:<digest> (images pulled "
            "from a registry).",
        },
    ),
    remediation="Keep medisys:monitoring.grafana on (the default in staging and prod) and do not "
    "remove Prometheus or Alertmanager from components/monitoring.py.",
)
def monitoring_stack_present(
    resources: list[Resource], settings: Settings, reporter: Reporter
) -> None:
    running = [c for c in containers(resources) if not c.is_one_shot()]
    roles = {c.role for c in running}
    for role in settings.texts("requiredRoles"):
        if role not in roles:
            fix = (
                "set medisys:monitoring.grafana to true (or remove it: on by default outside dev)"
                if role == "grafana"
                else f"deploy the {role} container of components/monitoring.py"
            )
            reporter.violation(
                f"runs no {role} container, so {_WHAT.get(role, 'a required service is missing')}",
                fix,
            )
    pinned = set(settings.texts("digestPinnedRoles"))
    for container in running:
        if container.role not in pinned:
            continue
        image = (as_str(container.get("image")) or "").strip()
        if not _DIGEST.search(image):
            reporter.violation(
                "its image is not pinned by digest, so a re-pushed tag would change what runs",
                "reference it as name:version@sha256:<index digest> (config.GRAFANA_IMAGE)",
                about=container,
            )


POLICIES = [monitoring_stack_present]
