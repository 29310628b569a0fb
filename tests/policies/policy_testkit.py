"""Fixtures for the policy tests: a compliant baseline for every resource of the platform,
and runners that call a policy the way the analyzer does (props wrapped in the
unknown-checking proxy, a collecting report_violation).

Each test takes the baseline, changes one thing, and asserts on the message.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path as FilePath
from typing import Any

from medisys_policies import ALL_POLICIES
from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    unknown_checking_proxy,
)

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
PROVIDER = "pulumi:providers:docker"

STACK = "prod"
PREFIX = f"medisys-{STACK}"
SECRET = "Zq8-never-print-me-7Hx"  # a value that must never appear in a message

UNKNOWN_STRING = UNKNOWN_STRING_VALUE
UNKNOWN_NUMBER = UNKNOWN_NUMBER_VALUE

HAPROXY_CFG = """\
global
    log stdout format raw local0
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend http-in
    bind *:80
    http-request redirect scheme https code 301

frontend https-in
    bind *:443 ssl crt /etc/haproxy/certs/site.pem ssl-min-ver TLSv1.2 alpn h2,http/1.1
    http-response set-header Strict-Transport-Security "max-age=63072000; includeSubDomains"
    default_backend app

frontend stats
    bind 10.40.0.10:8404
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /stats

backend app
    balance roundrobin
    default-server ssl verify required ca-file /etc/haproxy/certs/app-ca.crt verifyhost app check-ssl
    server app1 10.20.0.11:8000 check
    server app2 10.20.0.12:8000 check
"""

POSTGRESQL_CONF = """\
listen_addresses = '*'
port = 5432
ssl = on
ssl_cert_file = '/etc/postgresql/tls/server.crt'
ssl_key_file = '/etc/postgresql/tls/server.key'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = scram-sha-256
wal_level = replica
archive_mode = on    # PITR
archive_command = 'pgbackrest --stanza=medisys archive-push %p'
log_connections = on
log_disconnections = on
log_line_prefix = '%m [%p] %q%u@%d from %h '
"""

PG_HBA_CONF = """\
# TYPE   DATABASE     USER        ADDRESS        METHOD
local    all          postgres                   peer
hostssl  all          all         10.30.0.0/24   scram-sha-256
hostssl  replication  replicator  10.30.0.0/24   scram-sha-256
"""

REDIS_CONF = """\
port 0
tls-port 6379
tls-cert-file /etc/redis/tls/redis.crt
tls-key-file /etc/redis/tls/redis.key
tls-ca-cert-file /etc/redis/tls/ca.crt
tls-auth-clients yes
tls-replication yes
tls-cluster yes
cluster-enabled yes
cluster-config-file /data/nodes.conf
appendonly yes
appendfsync everysec
maxmemory 200mb
maxmemory-policy noeviction
include /etc/redis/secrets/auth.conf
"""

# The repository host's (the backup agent's): both repositories, its TLS server for the members'
# WAL, every member reached over TLS.
PGBACKREST_CONF = """\
[global]
repo1-path=/var/lib/pgbackrest
repo1-retention-full-type=time
repo1-retention-full=30
repo1-cipher-type=aes-256-cbc
repo2-type=sftp
repo2-path=/srv/pgbackrest
repo2-sftp-host=offsite.example.org
repo2-sftp-host-user=pgbackrest
repo2-sftp-host-key-check-type=fingerprint
repo2-retention-full-type=time
repo2-retention-full=90
repo2-cipher-type=aes-256-cbc
log-level-console=info
spool-path=/var/spool/pgbackrest
tls-server-address=10.30.0.40
tls-server-ca-file=/etc/pgbackrest/tls/ca.crt
tls-server-cert-file=/etc/pgbackrest/tls/server.crt
tls-server-key-file=/var/lib/postgresql/pgbackrest-tls/server.key
tls-server-auth=medisys-prod-pg-1-backup-client=medisys
tls-server-auth=medisys-prod-pg-2-backup-client=medisys

[global:archive-push]
archive-async=y

[medisys]
pg1-host=10.30.0.10
pg1-host-type=tls
pg1-host-ca-file=/etc/pgbackrest/tls/ca.crt
pg1-host-cert-file=/etc/pgbackrest/tls/client.crt
pg1-host-key-file=/var/lib/postgresql/pgbackrest-tls/client.key
pg1-path=/var/lib/postgresql/data
pg2-host=10.30.0.11
pg2-host-type=tls
pg2-host-ca-file=/etc/pgbackrest/tls/ca.crt
pg2-host-cert-file=/etc/pgbackrest/tls/client.crt
pg2-host-key-file=/var/lib/postgresql/pgbackrest-tls/client.key
pg2-path=/var/lib/postgresql/data
"""

# A member's: both repositories on the repository host over TLS (no storage, no cipher pass), its
# own TLS server for the repository host, asynchronous archive-push.
MEMBER_PGBACKREST_CONF = """\
[global]
repo1-host=10.30.0.40
repo1-host-type=tls
repo1-host-ca-file=/etc/pgbackrest/tls/ca.crt
repo1-host-cert-file=/etc/pgbackrest/tls/client.crt
repo1-host-key-file=/var/lib/postgresql/pgbackrest-tls/client.key
repo2-host=10.30.0.40
repo2-host-type=tls
repo2-host-ca-file=/etc/pgbackrest/tls/ca.crt
repo2-host-cert-file=/etc/pgbackrest/tls/client.crt
repo2-host-key-file=/var/lib/postgresql/pgbackrest-tls/client.key
spool-path=/var/spool/pgbackrest
tls-server-address=10.30.0.10
tls-server-ca-file=/etc/pgbackrest/tls/ca.crt
tls-server-cert-file=/etc/pgbackrest/tls/server.crt
tls-server-key-file=/var/lib/postgresql/pgbackrest-tls/server.key
tls-server-auth=medisys-prod-backup-agent-client=medisys

[global:archive-push]
archive-async=y

[medisys]
pg1-path=/var/lib/postgresql/data
"""

PATRONI_YML = """\
scope: medisys-prod-pg
name: medisys-prod-pg-1
etcd3:
  hosts: [10.30.0.15:2379, 10.30.0.16:2379, 10.30.0.17:2379]
  protocol: https
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 5
    retry_timeout: 5
    synchronous_mode: true
    postgresql: {use_pg_rewind: true, use_slots: true}
postgresql:
  custom_conf: /etc/postgresql/postgresql.conf
tags: {nofailover: false}
"""

PG_PROXY_CFG = """\
defaults
    mode tcp
    default-server inter 1s check-ssl verify required ca-file /etc/haproxy/ca.crt on-marked-down shutdown-sessions

listen primary
    bind 10.30.0.5:5432
    option httpchk
    http-check send meth GET uri /primary
    server pg-1 10.30.0.10:5432 check port 8008
    server pg-2 10.30.0.11:5432 check port 8008
"""

SEGMENT_SUBNETS = {
    "dmz": "10.10.0.0/24",
    "production": "10.20.0.0/24",
    "database": "10.30.0.0/24",
    "management": "10.40.0.0/24",
}

ROLE_SEGMENTS = {
    "load-balancer": ["dmz", "production", "management"],
    "load-balancer-config": ["management"],
    "app": ["production", "database", "management"],
    "postgres": ["database"],
    "etcd": ["database"],
    "postgres-proxy": ["database"],
    "postgres-backup": ["database"],
    "redis": ["database"],
    "redis-cluster-init": ["database"],
    "postgres-exporter": ["database", "management"],
    "redis-exporter": ["database", "management"],
    "prometheus": ["management"],
    "alertmanager": ["management"],
    "grafana": ["management"],
    "grafana-config": ["management"],
}


def upload(path: str, content: str) -> dict[str, Any]:
    return {"file": path, "content": content}


def role_uploads(role: str) -> list[dict[str, Any]]:
    if role in ("load-balancer", "load-balancer-config"):
        return [
            upload("/etc/haproxy/haproxy.cfg", HAPROXY_CFG),
            upload("/etc/haproxy/certs/site.pem", UNKNOWN_STRING),  # secret, computed
            upload("/etc/haproxy/certs/app-ca.crt", UNKNOWN_STRING),  # the internal CA, computed
        ]
    if role == "postgres":
        return [
            upload("/etc/patroni/10-patroni.yml", PATRONI_YML),
            upload("/etc/patroni/20-secrets.yml", UNKNOWN_STRING),  # secret, computed
            upload("/etc/postgresql/postgresql.conf", POSTGRESQL_CONF),
            upload("/etc/postgresql/pg_hba.conf", PG_HBA_CONF),
            upload("/etc/postgresql/tls/server.key", UNKNOWN_STRING),
            upload("/etc/pgbackrest/pgbackrest.conf", MEMBER_PGBACKREST_CONF),
            upload("/etc/pgbackrest/tls/client.key", UNKNOWN_STRING),
        ]
    if role == "postgres-proxy":
        return [upload("/etc/haproxy/haproxy.cfg", PG_PROXY_CFG)]
    if role == "postgres-backup":
        return [
            upload("/etc/pgbackrest/pgbackrest.conf", PGBACKREST_CONF),
            upload("/etc/pgbackrest/conf.d/cipher.conf", f"[global]\nrepo1-cipher-pass={SECRET}\n"),
        ]
    if role == "app":
        return [
            upload("/etc/medisys/tls/server.crt", UNKNOWN_STRING),  # its own certificate, computed
            upload("/run/secrets/server.key", UNKNOWN_STRING),  # secret, computed
        ]
    if role == "redis":
        return [
            upload("/etc/redis/redis.conf", REDIS_CONF),
            upload("/etc/redis/secrets/auth.conf", f"requirepass {SECRET}\nmasterauth {SECRET}\n"),
        ]
    return []


GRAFANA_IMAGE = "grafana/grafana:12.4.5@sha256:26b8f35a9e4e4431995cf64c3f396505a4faf17bcfc19f9ed84943ec6bfd5ecd"


def container(role: str, name: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Compliant inputs of a container of `role` (camelCase, as the engine sends them)."""
    name = name or f"{PREFIX}-{role}"
    props: dict[str, Any] = {
        "name": name,
        "image": f"medisys/{role}:2026.11.1",
        "labels": [
            {"label": "medisys.role", "value": role},
            {"label": "medisys.stack", "value": STACK},
            {"label": "medisys.component", "value": role.split("-", maxsplit=1)[0]},
        ],
        "memory": 1024,
        "cpus": "1.0",
        "healthcheck": {"tests": ["CMD-SHELL", "true"], "interval": "10s", "retries": 3},
        "restart": "unless-stopped",
        "user": "10001:10001",
        "privileged": False,
        "publishAllPorts": False,
        "securityOpts": ["no-new-privileges:true"],
        "capabilities": {"drops": ["ALL"], "adds": []},
        "networksAdvanced": [
            {"name": f"{PREFIX}-{segment}", "aliases": [role]} for segment in ROLE_SEGMENTS[role]
        ],
        "envs": [f"MEDISYS_ROLE={role}", "TZ=UTC"],
        "logDriver": "json-file",
        "logOpts": {"max-size": "10m", "max-file": "3"},
        "uploads": role_uploads(role),
    }
    if role == "load-balancer":
        props["ports"] = [
            {"internal": 443, "external": 443, "ip": "127.0.0.1", "protocol": "tcp"},
            {"internal": 80, "external": 80, "ip": "127.0.0.1", "protocol": "tcp"},
        ]
    if role == "postgres-backup":
        props["envs"] = props["envs"] + ["BACKUP_FULL_INTERVAL_HOURS=24"]
        props["volumes"] = [{"volumeName": f"{PREFIX}-backup-repo", "containerPath": "/repo"}]
    if role == "grafana":
        # The official image, pinned by digest as staging and prod run it (config.GRAFANA_IMAGE).
        props["image"] = GRAFANA_IMAGE
        props["user"] = "472"
    if role == "redis":
        props["memory"] = 512
        props["command"] = ["redis-server", "/etc/redis/redis.conf"]
    if role == "redis-cluster-init":
        props["restart"] = "no"
        props.pop("healthcheck")
        props["envs"] = props["envs"] + ["MASTERS=3", "REPLICAS_PER_MASTER=1"]
    if role == "app":
        props["envs"] = props["envs"] + [
            "DATABASE_URL=postgresql://app@medisys-prod-pg-proxy:5432/medisys?sslmode=verify-full",
            "DATABASE_PASSWORD_FILE=/run/secrets/db-password",
            "APP_TLS_CERT_FILE=/etc/medisys/tls/server.crt",
            "APP_TLS_KEY_FILE=/run/secrets/server.key",
        ]
    props.update(overrides)
    return props


def network(segment: str, **overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": f"{PREFIX}-{segment}",
        "driver": "bridge",
        "internal": segment in ("database", "management"),
        "ipamConfigs": [{"subnet": SEGMENT_SUBNETS[segment]}],
        "labels": [
            {"label": "medisys.segment", "value": segment},
            {"label": "medisys.stack", "value": STACK},
        ],
    }
    props.update(overrides)
    return props


def volume(role: str, **overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": f"{PREFIX}-{role}",
        "labels": [
            {"label": "medisys.role", "value": role},
            {"label": "medisys.stack", "value": STACK},
        ],
    }
    props.update(overrides)
    return props


def random_password(length: int = 32, **overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"length": length, "special": False}
    props.update(overrides)
    return props


def baseline_stack() -> list[tuple[str, str, dict[str, Any]]]:
    """(type, logical name, props) of a compliant prod stack."""
    resources: list[tuple[str, str, dict[str, Any]]] = []
    for segment in SEGMENT_SUBNETS:
        resources.append((NETWORK, f"net-{segment}", network(segment)))
    for role in ("postgres-data", "backup-repo", "redis-data"):
        resources.append((VOLUME, f"vol-{role}", volume(role)))
    singles = [
        "load-balancer",
        "postgres-proxy",
        "postgres-backup",
        "redis-cluster-init",
        "prometheus",
        "alertmanager",
        "grafana",
        "postgres-exporter",
        "redis-exporter",
    ]
    for role in singles:
        resources.append((CONTAINER, role, container(role)))
    for index in (1, 2):
        resources.append((CONTAINER, f"app-{index}", container("app", f"{PREFIX}-app-{index}")))
        resources.append((CONTAINER, f"pg-{index}", container("postgres", f"{PREFIX}-pg-{index}")))
    for index in (1, 2, 3):
        resources.append((CONTAINER, f"etcd-{index}", container("etcd", f"{PREFIX}-pg-etcd-{index}")))
    # Three masters with a replica each.
    for index in range(1, 7):
        resources.append(
            (CONTAINER, f"redis-{index}", container("redis", f"{PREFIX}-redis-{index}"))
        )
    resources.append((RANDOM_PASSWORD, "db-password", random_password(32, result=SECRET)))
    return resources


# --- several Docker hosts ------------------------------------------------------------------------

HOST_NAMES = ("h1", "h2", "h3")
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"
CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n"
KEY_PEM = f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----\n"  # never in a message
DEFAULT_PROVIDER = "default_5_2_0"  # how the engine names the default docker provider


def host_provider_name(host: str) -> str:
    return f"{PREFIX}-host-{host}"


def docker_provider(host: str | None, **overrides: Any) -> dict[str, Any]:
    """Inputs of a pulumi-docker provider as the program sends them: TLS material for tcp://,
    the ssh options pulumi-docker's SDK JSON-encodes for ssh://."""
    props: dict[str, Any] = {"version": "5.2.0"}
    if host is not None:
        props["host"] = host
    if host is not None and host.startswith("tcp://"):
        props |= {"caMaterial": CA_PEM, "certMaterial": CERT_PEM, "keyMaterial": KEY_PEM}
    if host is not None and host.startswith("ssh://"):
        props["sshOpts"] = json.dumps(["-o", "BatchMode=yes"])
    props.update(overrides)
    return props


HOST_ENGINES = {
    "h1": "tcp://10.99.0.11:2376",
    "h2": "ssh://deploy@db2.medisys.internal",
    "h3": "tcp://10.99.0.13:2376",
}
REDIS_ADDRESSES = {index: f"10.30.0.{30 + index}" for index in range(1, 7)}
# Shard s: master redis-s on host s, its replica redis-(s+3) on host s+1 (placement.py's pairing).
REDIS_SHARDS = [(1, 4), (2, 5), (3, 6)]


def shards_env(shards: Sequence[Sequence[int]] = REDIS_SHARDS) -> str:
    return "SHARDS=" + " ".join(",".join(f"{REDIS_ADDRESSES[i]}:6379" for i in shard) for shard in shards)


def redis_node(index: int) -> dict[str, Any]:
    props = container("redis", f"{PREFIX}-redis-{index}")
    props["networksAdvanced"] = [
        {"name": f"{PREFIX}-database", "aliases": ["redis"], "ipv4Address": REDIS_ADDRESSES[index]}
    ]
    return props


def multi_host_stack() -> tuple[list[tuple[str, str, dict[str, Any]]], dict[str, str]]:
    """A compliant prod stack on three Docker hosts, and which provider each resource is created
    through: encrypted attachable overlays (created through h1), one PostgreSQL and one etcd member
    per host, each Redis replica on the host after its master's, three app servers, two edges."""
    resources: list[tuple[str, str, dict[str, Any]]] = []
    hosts: dict[str, str] = {}

    def add(resource_type: str, name: str, props: dict[str, Any], host: str) -> None:
        resources.append((resource_type, name, props))
        hosts[name] = host_provider_name(host)

    for host in HOST_NAMES:
        resources.append((PROVIDER, host_provider_name(host), docker_provider(HOST_ENGINES[host])))
    for segment in SEGMENT_SUBNETS:
        add(NETWORK, f"net-{segment}", network(segment, driver="overlay", attachable=True, options={"encrypted": ""}), "h1")
    for role, host in (("postgres-data", "h1"), ("backup-repo", "h3"), ("redis-data", "h1")):
        add(VOLUME, f"vol-{role}", volume(role), host)
    singles = {
        "postgres-proxy": "h1",
        "postgres-backup": "h3",
        "prometheus": "h3",
        "alertmanager": "h3",
        "grafana": "h3",
        "postgres-exporter": "h3",
        "redis-exporter": "h3",
    }
    for role, host in singles.items():
        add(CONTAINER, role, container(role), host)
    former = container("redis-cluster-init")
    former["envs"] = [*former["envs"], shards_env()]
    add(CONTAINER, "redis-cluster-init", former, "h1")
    for index, host in enumerate(HOST_NAMES, start=1):
        add(CONTAINER, f"app-{index}", container("app", f"{PREFIX}-app-{index}"), host)
        add(CONTAINER, f"pg-{index}", container("postgres", f"{PREFIX}-pg-{index}"), host)
        add(CONTAINER, f"etcd-{index}", container("etcd", f"{PREFIX}-pg-etcd-{index}"), host)
    for index, host in ((1, "h1"), (2, "h2")):
        add(CONTAINER, f"lb-{index}", container("load-balancer", f"{PREFIX}-lb-{index}"), host)
    for master, replica in REDIS_SHARDS:
        add(CONTAINER, f"redis-{master}", redis_node(master), HOST_NAMES[master - 1])
        add(CONTAINER, f"redis-{replica}", redis_node(replica), HOST_NAMES[master % 3])
    resources.append((RANDOM_PASSWORD, "db-password", random_password(32, result=SECRET)))
    return resources, hosts


CONFIG_DIR = FilePath(__file__).resolve().parents[2] / "policies" / "config"


def environment_config(environment: str, policy: str) -> dict[str, Any] | None:
    """A policy's settings in policies/config/<environment>.json (None: the schema defaults)."""
    entry = json.loads((CONFIG_DIR / f"{environment}.json").read_text()).get(policy)
    if not isinstance(entry, dict):
        return None
    return {k: v for k, v in entry.items() if k != "enforcementLevel"}


def urn(resource_type: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::medisys-platform::{resource_type}::{name}"


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def provider_resource(name: str, props: Mapping[str, Any], resource_type: str = PROVIDER) -> PolicyProviderResource:
    """The provider a resource is created through, as pulumi-policy hands it over (its inputs)."""
    return PolicyProviderResource(
        resource_type, unknown_checking_proxy(copy.deepcopy(dict(props))), urn(resource_type, name), name
    )


def run_resource(
    policy: Policy,
    props: Mapping[str, Any],
    resource_type: str = CONTAINER,
    name: str = "res",
    config: Mapping[str, Any] | None = None,
    provider: tuple[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """Validate one resource; returns the violation messages. `provider`: (name, inputs) of the
    provider it is created through (None: the engine reported none)."""
    assert isinstance(policy, ResourceValidationPolicy)
    messages: list[str] = []
    args = ResourceValidationArgs(
        resource_type,
        unknown_checking_proxy(copy.deepcopy(dict(props))),
        urn(resource_type, name),
        name,
        _options(),
        provider_resource(*provider) if provider is not None else None,
        dict(config) if config is not None else None,
    )

    def report(message: str, _urn: str | None = None) -> None:
        messages.append(message)

    policy.validate(args, report)
    return messages


Hosts = Mapping[str, str]  # logical resource name -> logical name of the provider it is created through


def policy_resources(
    resources: list[tuple[str, str, dict[str, Any]]], hosts: Hosts | None = None
) -> list[PolicyResource]:
    """The stack as pulumi-policy hands it over. A resource named in `hosts` is created through
    that provider, which must be one of `resources` (its props are the provider's inputs, as the
    engine sends them); the others report no provider."""
    providers = {
        name: (name, props, resource_type)
        for resource_type, name, props in resources
        if resource_type.startswith("pulumi:providers:")
    }
    hosts = hosts or {}
    for resource, provider in hosts.items():
        assert provider in providers, f"{resource}: provider {provider} is not in the stack"
    return [
        PolicyResource(
            resource_type,
            unknown_checking_proxy(copy.deepcopy(props)),
            urn(resource_type, name),
            name,
            _options(),
            provider_resource(*providers[hosts[name]]) if name in hosts else None,
            None,
            [],
            {},
        )
        for resource_type, name, props in resources
    ]


def run_stack(
    policy: Policy,
    resources: list[tuple[str, str, dict[str, Any]]],
    config: Mapping[str, Any] | None = None,
    hosts: Hosts | None = None,
) -> list[tuple[str, str | None]]:
    """Validate a stack; returns (message, urn) pairs."""
    assert isinstance(policy, StackValidationPolicy)
    found: list[tuple[str, str | None]] = []
    args = StackValidationArgs(
        policy_resources(resources, hosts), dict(config) if config is not None else None
    )

    def report(message: str, at: str | None = None) -> None:
        found.append((message, at))

    policy.validate(args, report)
    return found


def replace(
    resources: list[tuple[str, str, dict[str, Any]]], name: str, **overrides: Any
) -> list[tuple[str, str, dict[str, Any]]]:
    """A copy of a stack with one resource's props overridden."""
    return [
        (resource_type, logical, {**props, **overrides} if logical == name else props)
        for resource_type, logical, props in resources
    ]


def without(
    resources: list[tuple[str, str, dict[str, Any]]], *names: str
) -> list[tuple[str, str, dict[str, Any]]]:
    return [r for r in resources if r[1] not in names]


def with_upload(props: dict[str, Any], path: str, content: str) -> dict[str, Any]:
    """A copy of container props with one upload's content replaced."""
    uploads = [u for u in props["uploads"] if u["file"] != path] + [upload(path, content)]
    return {**props, "uploads": uploads}


def policy_named(name: str) -> Policy:
    for policy in ALL_POLICIES:
        if policy.name == name:
            return policy
    raise KeyError(name)


def assert_violation(messages: list[str], name: str, *fragments: str) -> str:
    """Exactly one message mentions all fragments; it names the resource and gives a fix."""
    hits = [m for m in messages if all(f in m for f in fragments)]
    assert len(hits) == 1, f"expected one message with {fragments}, got {messages}"
    message = hits[0]
    assert f"'{name}'" in message, message
    assert "Fix: " in message, message
    return message


# --- recording what a policy reads, and making one property unknown ------------------------------

Path = tuple[str, ...]


class _Reads:
    """Every property path read through a recording layer, in order, each once."""

    def __init__(self) -> None:
        self.paths: dict[Path, None] = {}


def _recording(value: Any, path: Path, reads: _Reads) -> Any:
    if isinstance(value, Mapping):
        return _RecordingMapping(value, path, reads)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return _RecordingSequence(value, path, reads)
    return value


class _RecordingMapping(Mapping):  # type: ignore[type-arg]
    """Sits between the check and pulumi-policy's proxy: records the path of each read."""

    def __init__(self, target: Mapping[str, Any], path: Path, reads: _Reads) -> None:
        self._target, self._path, self._reads = target, path, reads

    def __getitem__(self, key: str) -> Any:
        path = (*self._path, str(key))
        self._reads.paths[path] = None
        return _recording(self._target[key], path, self._reads)

    def __iter__(self) -> Iterator[str]:
        return iter(self._target)

    def __len__(self) -> int:
        return len(self._target)


class _RecordingSequence(Sequence):  # type: ignore[type-arg]
    def __init__(self, target: Sequence[Any], path: Path, reads: _Reads) -> None:
        self._target, self._path, self._reads = target, path, reads

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self._target))[index]]
        path = (*self._path, str(index % len(self._target)))
        self._reads.paths[path] = None
        return _recording(self._target[index], path, self._reads)

    def __len__(self) -> int:
        return len(self._target)


def resource_reads(
    policy: Policy,
    props: Mapping[str, Any],
    resource_type: str,
    name: str,
    config: Mapping[str, Any] | None = None,
) -> list[Path]:
    """The property paths a resource policy reads on these props (prefixes included)."""
    assert isinstance(policy, ResourceValidationPolicy)
    reads = _Reads()
    args = ResourceValidationArgs(
        resource_type,
        _recording(unknown_checking_proxy(copy.deepcopy(dict(props))), (), reads),
        urn(resource_type, name),
        name,
        _options(),
        None,
        dict(config) if config is not None else None,
    )
    policy.validate(args, lambda message, _urn=None: None)
    return list(reads.paths)


def stack_reads(
    policy: Policy,
    resources: list[tuple[str, str, dict[str, Any]]],
    hosts: Hosts | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, list[Path]]:
    """The property paths a stack policy reads, per logical resource name. What it reads of the
    provider a resource is created through counts as read on that provider resource."""
    assert isinstance(policy, StackValidationPolicy)
    reads = {name: _Reads() for _, name, _ in resources}
    proxied = policy_resources(resources, hosts)
    for resource, (_, name, _) in zip(proxied, resources, strict=True):
        resource.props = _recording(resource.props, (), reads[name])
        if resource.provider is not None:
            provider = resource.provider
            provider.props = _recording(provider.props, (), reads[provider.name])
    config = dict(config) if config is not None else None
    policy.validate(StackValidationArgs(proxied, config), lambda message, _at=None: None)
    return {name: list(r.paths) for name, r in reads.items() if r.paths}


def _sentinel_for(value: Any) -> str:
    """The wire sentinel pulumi-policy's proxy raises on, by the type of the known value."""
    if isinstance(value, bool):
        return UNKNOWN_BOOLEAN_VALUE
    if isinstance(value, (int, float)):
        return UNKNOWN_NUMBER_VALUE
    if isinstance(value, list):
        return UNKNOWN_ARRAY_VALUE
    if isinstance(value, dict):
        return UNKNOWN_OBJECT_VALUE
    return UNKNOWN_STRING_VALUE


def with_unknown(props: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """A copy of props in which the value at `path` is unknown (as in a preview)."""
    result = copy.deepcopy(dict(props))
    parent: Any = result
    for step in path[:-1]:
        parent = parent[int(step)] if isinstance(parent, list) else parent[step]
    last: Any = int(path[-1]) if isinstance(parent, list) else path[-1]
    parent[last] = _sentinel_for(parent[last])
    return result
