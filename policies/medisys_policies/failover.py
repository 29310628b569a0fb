"""High availability of PostgreSQL: automatic failover under Patroni and synchronous replication.

Members run under Patroni (role `postgres`, configuration in /etc/patroni/10-patroni.yml, the
passwords in a separate secret file the pack never reads). What the policies read is the literal
Patroni configuration each member uploads, the etcd containers that hold the leader lock, and the
endpoint (role `postgres-proxy`) whose haproxy.cfg follows the leader.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pulumi_policy import Severity

from .framework import Reporter, read_config, resource_policy, schema, stack_policy
from .settings import Settings
from .shapes import CONTAINER, HAPROXY_CFG, PATRONI_YML, Resource, containers


def _patroni(text: str) -> Mapping[str, Any] | None:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return document if isinstance(document, Mapping) else None


def _dcs_hosts(document: Mapping[str, Any]) -> list[str]:
    for section in ("etcd3", "etcd"):
        found = document.get(section)
        if isinstance(found, Mapping):
            hosts = found.get("hosts")
            if isinstance(hosts, str):
                return [h for h in hosts.split(",") if h.strip()]
            if isinstance(hosts, list):
                return [str(h) for h in hosts]
            return [str(found["host"])] if found.get("host") else []
    return []


def _bootstrap_dcs(document: Mapping[str, Any]) -> Mapping[str, Any]:
    bootstrap = document.get("bootstrap")
    dcs = bootstrap.get("dcs") if isinstance(bootstrap, Mapping) else None
    return dcs if isinstance(dcs, Mapping) else {}


def _read_about(resource: Resource, path: str, reporter: Reporter, purpose: str) -> str | None:
    """read_config for stack policies: a missing or computed file is reported against the resource."""
    found = resource.config_file(path)
    if found.text is not None:
        return found.text
    problem = f"no upload of {path} found" if not found.uploaded else f"{path} is not uploaded as literal `content`"
    reporter.violation(
        f"{problem}, so {purpose} cannot be verified",
        f"upload the rendered file as uploads=[{{file: '{path}', content: <text>}}]",
        about=resource,
    )
    return None


# --- postgres-automatic-failover ----------------------------------------------------------------


@stack_policy(
    "postgres-automatic-failover",
    description="PostgreSQL fails over by itself: every member runs under Patroni with a leader "
    "lock in an etcd of at least minEtcdMembers members, a member other than the leader may be "
    "promoted, and clients reach the leader through an endpoint that checks Patroni's /primary.",
    severity=Severity.CRITICAL,
    config=schema(
        required={"type": "boolean", "default": True, "description": "Set false for a stack without failover."},
        minEtcdMembers={"type": "integer", "minimum": 1, "default": 3, "description": "Smallest etcd (3 survives one loss)."},
    ),
    remediation="Deploy the PostgresCluster component as is: Patroni members, three etcd members, "
    "the postgres-proxy endpoint; do not tag every member nofailover.",
)
def postgres_automatic_failover(resources: list[Resource], settings: Settings, reporter: Reporter) -> None:
    if not settings.flag("required"):
        return
    members = [m for m in containers(resources, "postgres") if not m.is_one_shot()]
    if not members:
        return
    minimum = settings.integer("minEtcdMembers")
    etcd = [e for e in containers(resources, "etcd") if not e.is_one_shot()]
    if len(etcd) < minimum:
        reporter.violation(
            f"runs {len(etcd)} etcd member(s) for Patroni's leader lock; at least {minimum} are needed to survive the loss of one",
            f"run {minimum} etcd containers (role etcd) on the database segment",
        )
    candidates = 0
    for member in members:
        text = _read_about(member, PATRONI_YML, reporter, "automatic failover")
        if text is None:
            continue
        document = _patroni(text)
        if document is None:
            reporter.violation(f"{PATRONI_YML} is not a YAML mapping", "render Patroni's configuration with components/postgres.py", about=member)
            continue
        hosts = _dcs_hosts(document)
        if len(hosts) < minimum:
            reporter.violation(
                f"Patroni lists {len(hosts)} etcd endpoint(s); at least {minimum} are needed",
                "list every etcd member under etcd3.hosts",
                about=member,
            )
        tags = document.get("tags")
        if not (isinstance(tags, Mapping) and tags.get("nofailover") is True):
            candidates += 1
    if len(members) >= 2 and candidates < 2:
        reporter.violation(
            f"only {candidates} of {len(members)} PostgreSQL members may be promoted, so a lost primary is never replaced",
            "remove `nofailover: true` from the members' Patroni tags",
        )
    endpoints = [p for p in containers(resources, "postgres-proxy") if not p.is_one_shot()]
    following = []
    for proxy in endpoints:
        text = _read_about(proxy, HAPROXY_CFG, reporter, "the leader-following endpoint")
        if text is not None and "uri /primary" in text:
            following.append(proxy)
    if not following:
        reporter.violation(
            "no endpoint follows the leader (a postgres-proxy whose haproxy.cfg checks Patroni's /primary), "
            "so clients would keep writing to a fixed address after a failover",
            "deploy the postgres-proxy endpoint of components/postgres.py and connect clients to it",
        )


# --- postgres-synchronous-replication ----------------------------------------------------------


@resource_policy(
    "postgres-synchronous-replication",
    description="Patroni runs synchronous replication (synchronous_mode), so a commit is "
    "acknowledged only once a standby has it and a failover loses no acknowledged write.",
    types=[CONTAINER],
    roles=["postgres"],
    severity=Severity.CRITICAL,
    config=schema(
        required={"type": "boolean", "default": True, "description": "Set false where asynchronous replication is accepted."},
    ),
    remediation="Set medisys:postgres.failover.synchronous: true (Patroni's bootstrap.dcs.synchronous_mode).",
)
def postgres_synchronous_replication(res: Resource, settings: Settings, reporter: Reporter) -> None:
    if not settings.flag("required"):
        return
    text = read_config(res, PATRONI_YML, reporter, "synchronous replication")
    if text is None:
        return
    document = _patroni(text)
    mode = _bootstrap_dcs(document).get("synchronous_mode") if document is not None else None
    if mode not in (True, "on", "quorum"):
        reporter.violation(
            "Patroni's bootstrap.dcs.synchronous_mode is not on, so a failover may lose acknowledged writes",
            "set medisys:postgres.failover.synchronous: true",
        )


POLICIES = [postgres_automatic_failover, postgres_synchronous_replication]
