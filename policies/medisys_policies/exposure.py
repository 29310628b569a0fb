"""Network exposure and segmentation: who may publish ports, on which host address, which
networks are internal, that subnets do not overlap, and which segments each role may join.
HIPAA 164.312(a)(1) access control; CIS Docker 5.8/5.14."""

from __future__ import annotations

import ipaddress
from itertools import combinations
from typing import Final

from pulumi_policy import Severity

from .access import as_bool, as_number, as_str, elements, get
from .framework import Reporter, resource_policy, schema, stack_policy
from .parsers import WILDCARD_HOSTS
from .settings import Settings
from .shapes import (
    CONTAINER,
    NETWORK,
    SEGMENT_LABEL,
    SEGMENTS,
    Resource,
    containers,
)

Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network


@resource_policy(
    "exposure-only-load-balancer-publishes",
    description="Only the load balancer publishes ports on the host; no container publishes "
    "all its ports.",
    types=[CONTAINER],
    severity=Severity.CRITICAL,
    config=schema(
        publishingRoles={
            "type": "array",
            "items": {"type": "string"},
            "default": ["load-balancer"],
            "description": "Roles that may have `ports`.",
        },
        loopbackPublishingRoles={
            "type": "array",
            "items": {"type": "string"},
            "default": ["postgres-admin-gateway"],
            "description": "Roles that may publish ports on a loopback address of their host only "
            "(reached through an SSH tunnel to that host).",
        },
    ),
    remediation="Remove `ports` from every container except the load balancer; other services "
    "are reached over the internal networks.",
)
def only_load_balancer_publishes(res: Resource, settings: Settings, reporter: Reporter) -> None:
    if as_bool(res.get("publishAllPorts")):
        reporter.violation(
            "sets publishAllPorts, which publishes every exposed port on all host addresses",
            "remove publishAllPorts (or set it to false)",
        )
    published = sum(1 for _ in elements(res.get("ports")))
    allowed = settings.texts("publishingRoles")
    if published and res.role in settings.texts("loopbackPublishingRoles"):
        for _, port in elements(res.get("ports")):
            ip = as_str(get(port, "ip")) or "0.0.0.0"
            if not _is_loopback(ip):
                reporter.violation(
                    f"publishes port {get(port, 'external')} on {_shown_address(ip)}; role {res.role} may publish "
                    "on a loopback address of its host only",
                    "publish it on 127.0.0.1 (postgres.admin_publish) and reach it through `ssh -L` to that host",
                )
        return
    if published and res.role not in allowed:
        reporter.violation(
            f"publishes {published} port(s) on the host; only {', '.join(allowed)} may",
            "remove `ports` and reach the service through the load balancer or the "
            "internal network",
        )


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.strip("[]")).is_loopback
    except ValueError:
        return False


def _shown_address(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip.strip("[]")))
    except ValueError:
        return "an invalid address"


def _address_allowed(ip: str, allowed: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return ip in allowed
    for entry in allowed:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            if entry == ip:
                return True
    return False


@resource_policy(
    "exposure-no-wildcard-bind",
    description="Every published port is bound to an explicit, allowed host address, never "
    "0.0.0.0 or ::.",
    types=[CONTAINER],
    severity=Severity.CRITICAL,
    config=schema(
        allowedBindAddresses={
            "type": "array",
            "items": {"type": "string"},
            "default": ["127.0.0.1"],
            "description": "Host addresses or CIDRs ports may bind to; [] allows any "
            "explicit non-wildcard address.",
        }
    ),
    remediation="Give every entry in `ports` an `ip`: 127.0.0.1 in dev, the ingress address "
    "in staging/prod (listed in allowedBindAddresses).",
)
def no_wildcard_bind(res: Resource, settings: Settings, reporter: Reporter) -> None:
    allowed = settings.texts("allowedBindAddresses")
    for index, port in elements(res.get("ports")):
        ip = (as_str(get(port, "ip")) or "").strip()
        internal = as_number(get(port, "internal"))
        where = f"ports[{index}] (container port {'?' if internal is None else f'{internal:g}'})"
        if ip in WILDCARD_HOSTS:
            reporter.violation(
                f"{where} is published on all host addresses (ip is {ip or 'not set'})",
                "set `ip` to the one host address that should receive the traffic",
            )
        elif allowed and not _address_allowed(ip, allowed):
            reporter.violation(
                f"{where} binds to {_shown_address(ip)}, which is not in allowedBindAddresses",
                f"bind to one of {', '.join(allowed)} or add the address to the policy "
                "config of this environment",
            )


@resource_policy(
    "exposure-internal-segments",
    description="Networks of the database and management segments are internal (no route "
    "out of the host).",
    types=[NETWORK],
    severity=Severity.CRITICAL,
    config=schema(
        internalSegments={
            "type": "array",
            "items": {"type": "string"},
            "default": ["database", "management"],
        }
    ),
    remediation="Create the database and management networks with internal=True.",
)
def internal_segments(res: Resource, settings: Settings, reporter: Reporter) -> None:
    segment = res.label(SEGMENT_LABEL)
    if segment in settings.texts("internalSegments") and not as_bool(res.get("internal")):
        reporter.violation(
            f"the {segment} network is not internal, so its containers can reach (and be "
            "reached from) outside the host",
            "set internal=True on this docker.Network",
        )


def _subnets(network: Resource, reporter: Reporter) -> list[Subnet]:
    """Explicit subnets of a network (from its outputs: an unknown one fails the policy closed)."""
    found: list[Subnet] = []
    for _, config in elements(network.get("ipamConfigs")):
        subnet = get(config, "subnet")
        if not isinstance(subnet, str) or not subnet:
            continue
        try:
            found.append(ipaddress.ip_network(subnet, strict=False))
        except ValueError:
            reporter.violation(
                "has an invalid ipamConfigs subnet",
                "use CIDR notation such as 10.20.1.0/24",
                about=network,
            )
    return found


@stack_policy(
    "exposure-subnets-disjoint",
    description="The stack's networks have explicit subnets that do not overlap.",
    severity=Severity.HIGH,
    config=schema(
        requireExplicitSubnet={
            "type": "boolean",
            "default": False,
            "description": "Also require every network to declare ipamConfigs[].subnet.",
        }
    ),
    remediation="Give each network its own non-overlapping subnet in ipamConfigs.",
)
def subnets_disjoint(resources: list[Resource], settings: Settings, reporter: Reporter) -> None:
    networks = [(n, _subnets(n, reporter)) for n in resources if n.type == NETWORK]
    if settings.flag("requireExplicitSubnet"):
        for network, subnets in networks:
            if not subnets:
                reporter.violation(
                    "has no explicit subnet",
                    "set ipamConfigs=[{subnet: '<cidr>'}]",
                    about=network,
                )
    for (first, first_nets), (second, second_nets) in combinations(networks, 2):
        for a in first_nets:
            for b in second_nets:
                if a.version == b.version and a.overlaps(b):
                    reporter.violation(
                        f"subnet {a} overlaps subnet {b} of network '{second.name}'",
                        "give each network its own non-overlapping subnet",
                        about=first,
                    )


_ALLOWED_SEGMENTS: Final = {
    "load-balancer": ["dmz", "production", "management"],
    "load-balancer-config": ["management"],
    "app": ["production", "database", "management"],
    "app-migrations": ["database"],
    "app-rollout-gate": ["management"],
    # Members push WAL to the repository host (the backup agent) over the database segment only.
    "postgres": ["database", "management"],
    "etcd": ["database"],
    "postgres-proxy": ["database"],
    # On several hosts: the database gateway on the database overlay and its own host's bridge.
    "postgres-admin-gateway": ["database", "postgres-admin"],
    "postgres-backup": ["database", "management", "offsite"],
    "offsite-sftp": ["offsite"],
    "redis": ["database", "management"],
    "redis-cluster-init": ["database"],
    "postgres-exporter": ["database", "management"],
    "redis-exporter": ["database", "management"],
    "prometheus": ["management"],
    "prometheus-config": ["management"],
    "alertmanager": ["management"],
    "alertmanager-config": ["management"],
    "grafana": ["management"],
    "grafana-config": ["management"],
    "blackbox-exporter": ["management"],
}


@stack_policy(
    "exposure-segment-membership",
    description="Each container is attached only to the network segments its role may use "
    "(resolved from networksAdvanced names to the networks' medisys.segment labels).",
    severity=Severity.CRITICAL,
    config=schema(
        allowedSegments={
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "default": _ALLOWED_SEGMENTS,
            "description": "Role -> segments its containers may be attached to.",
        }
    ),
    remediation="Attach each container to its role's networks only (by literal network name).",
)
def segment_membership(resources: list[Resource], settings: Settings, reporter: Reporter) -> None:
    segment_of: dict[str, str] = {}
    for network in resources:
        if network.type != NETWORK:
            continue
        name, segment = network.get("name"), network.label(SEGMENT_LABEL)
        if isinstance(name, str) and segment:
            segment_of[name] = segment
    matrix = settings.mapping("allowedSegments")
    for container in containers(resources):
        role = container.role
        if role is None:
            continue  # labels-required reports it
        allowed = matrix.get(role)
        if not isinstance(allowed, list):
            reporter.violation(
                "its medisys.role has no entry in allowedSegments",
                "add the role to allowedSegments in the policy config (or fix the label)",
                about=container,
            )
            continue
        names = container.network_names()
        if not names:
            reporter.violation(
                "is attached to no medisys network (it would use Docker's default bridge)",
                f"attach it with networksAdvanced to a network of: {', '.join(allowed)}",
                about=container,
            )
        for name in names:
            segment = segment_of.get(name)
            if segment is None:
                reporter.violation(
                    f"is attached to network '{name}', which is not a labelled network of "
                    "this stack",
                    "attach it by the literal name of a docker.Network carrying medisys.segment",
                    about=container,
                )
            elif segment not in allowed:
                shown = segment if segment in SEGMENTS else "an unrecognised"
                reporter.violation(
                    f"is attached to the {shown} segment ('{name}'); role {role} may only "
                    f"use {', '.join(allowed)}",
                    f"remove the '{name}' network from its networksAdvanced",
                    about=container,
                )


POLICIES = [
    only_load_balancer_publishes,
    no_wildcard_bind,
    internal_segments,
    subnets_disjoint,
    segment_membership,
]
