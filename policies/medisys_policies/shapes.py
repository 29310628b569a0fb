"""Shared shapes of the medisys-platform resources: type tokens, labels, roles, config uploads.

This module encodes the contract between the Pulumi program and the pack: which labels a
resource carries, which config files a container uploads and where. Policies read resources
only through `Resource`, so a change in the contract is a change here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .access import UnknownValueError, as_bool, as_str, elements, get, is_sequence

CONTAINER: Final = "docker:index/container:Container"
NETWORK: Final = "docker:index/network:Network"
VOLUME: Final = "docker:index/volume:Volume"
RANDOM_PASSWORD: Final = "random:index/randomPassword:RandomPassword"
# The pulumi-docker provider: one explicit provider per Docker host (engine). The engine names
# the default provider it creates for resources without one "default" or "default_<version>".
DOCKER_PROVIDER: Final = "pulumi:providers:docker"
PROVIDER_TYPE_PREFIX: Final = "pulumi:providers:"

KIND_NAMES: Final = {
    CONTAINER: "Container",
    NETWORK: "Network",
    VOLUME: "Volume",
    RANDOM_PASSWORD: "RandomPassword",
    DOCKER_PROVIDER: "Provider",
}

ROLE_LABEL: Final = "medisys.role"
STACK_LABEL: Final = "medisys.stack"
COMPONENT_LABEL: Final = "medisys.component"
SEGMENT_LABEL: Final = "medisys.segment"
ONE_SHOT_LABEL: Final = "medisys.one-shot"

CONTAINER_ROLES: Final = frozenset(
    {
        "load-balancer",
        "load-balancer-config",
        "app",
        "app-migrations",
        "app-rollout-gate",
        "postgres",
        "etcd",
        "postgres-proxy",
        "postgres-admin-gateway",
        "postgres-backup",
        "offsite-sftp",
        "redis",
        "redis-cluster-init",
        "prometheus",
        "prometheus-config",
        "alertmanager",
        "alertmanager-config",
        "grafana",
        "grafana-config",
        "postgres-exporter",
        "redis-exporter",
        "blackbox-exporter",
    }
)
# postgres-admin: not a segment but the database gateway's bridge on its own host (several hosts
# only), the one network through which Docker publishes its port for pulumi-postgresql.
SEGMENTS: Final = frozenset({"dmz", "production", "database", "management", "offsite", "postgres-admin"})
VOLUME_ROLES: Final = frozenset(
    {
        "postgres-data",
        "backup-repo",
        "offsite-repo",
        "redis-data",
        "prometheus-data",
        "grafana-data",
        "grafana-config",
        "alertmanager-data",
        "postgres-socket",
        "etcd-data",
        "load-balancer-runtime",
        "prometheus-config",
        "alertmanager-config",
    }
)
ONE_SHOT_ROLES: Final = frozenset(
    {"redis-cluster-init", "load-balancer-config", "app-migrations", "app-rollout-gate", "prometheus-config", "alertmanager-config",
     "grafana-config"}
)
# PostgreSQL members run under Patroni: which one leads is runtime state, so every member has
# the same role and the same configuration (what a primary needs, every member needs).
POSTGRES_SERVER_ROLES: Final = frozenset({"postgres"})

# Config files uploaded as literal `uploads[].content`. Policies read the content of these
# paths only: other uploads (TLS keys, password files) may be secret or unknown in preview.
HAPROXY_CFG: Final = "/etc/haproxy/haproxy.cfg"
# What HAProxy runs when its edge-config job installs the config (the job uploads HAPROXY_CFG).
EDGE_RELEASE_CFG: Final = "/var/lib/haproxy/current/haproxy.cfg"
POSTGRESQL_CONF: Final = "/etc/postgresql/postgresql.conf"
PG_HBA_CONF: Final = "/etc/postgresql/pg_hba.conf"
PGBACKREST_CONF: Final = "/etc/pgbackrest/pgbackrest.conf"
PGBACKREST_CONF_D: Final = "/etc/pgbackrest/conf.d/"
REDIS_CONF: Final = "/etc/redis/redis.conf"
PATRONI_YML: Final = "/etc/patroni/10-patroni.yml"  # passwords live in a separate, secret file
CONFIG_PATHS: Final = frozenset(
    {HAPROXY_CFG, POSTGRESQL_CONF, PG_HBA_CONF, PGBACKREST_CONF, REDIS_CONF, PATRONI_YML}
)


@dataclass(frozen=True)
class ConfigFile:
    """A config file a container uploads; `text` is None when it is not literal content."""

    path: str
    uploaded: bool
    text: str | None

    @property
    def readable(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class Resource:
    """A read-only view of one resource (inputs in resource policies, outputs in stack ones).

    `provider` is the provider resource it is created through, as the engine reports it
    (pulumi-policy's `provider`: the provider's type, name, URN and inputs); None when the
    engine sent none. A resource without an explicit provider gets the engine's default
    provider (named "default..."), so None only occurs outside the engine."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    provider: Resource | None = None

    @property
    def kind(self) -> str:
        return KIND_NAMES.get(self.type, self.type)

    def get(self, *path: str | int, default: Any = None) -> Any:
        return get(self.props, *path, default=default)

    def labels(self) -> dict[str, str]:
        """Docker labels as a dict (`labels` is a list of {label, value} objects).

        Only the medisys.* labels: the policies select on them, and a value outside that
        namespace is never read (so it may be computed: the framework fails a policy closed
        on every unknown value it reads)."""
        result: dict[str, str] = {}
        for _, item in elements(self.get("labels")):
            key = as_str(get(item, "label"))
            if key is None or not key.startswith("medisys."):
                continue
            value = get(item, "value")
            if isinstance(value, str):
                result[key] = value
        return result

    def label(self, key: str) -> str | None:
        return self.labels().get(key)

    @property
    def role(self) -> str | None:
        return self.label(ROLE_LABEL)

    def is_one_shot(self, one_shot_roles: frozenset[str] | set[str] = ONE_SHOT_ROLES) -> bool:
        return self.role in one_shot_roles or as_bool(self.label(ONE_SHOT_LABEL))

    @property
    def subject(self) -> str:
        """How messages name the resource: kind, logical name, and its role or segment when
        that is one of the known values (label values are never quoted otherwise)."""
        if self.type == NETWORK:
            word, key, known = "segment", SEGMENT_LABEL, SEGMENTS
        else:
            word, key, known = "role", ROLE_LABEL, CONTAINER_ROLES | VOLUME_ROLES
        try:
            detail = self.label(key)
        except UnknownValueError:
            detail = None
        suffix = f" ({word} {detail})" if detail in known else ""
        return f"{self.kind} '{self.name}'{suffix}"

    def upload_paths(self) -> list[str]:
        """The `file` of every upload. Never reads `content`."""
        paths: list[str] = []
        for _, upload in elements(self.get("uploads")):
            path = as_str(get(upload, "file"))
            if path is not None:
                paths.append(path)
        return paths

    def config_file(self, path: str) -> ConfigFile:
        """The uploaded content of one of the known config paths (never a secret file)."""
        if path not in CONFIG_PATHS:
            raise ValueError(f"{path} is not a known config path; its content may be secret")
        for _, upload in elements(self.get("uploads")):
            if as_str(get(upload, "file")) != path:
                continue
            content = as_str(get(upload, "content"))
            if content is not None:
                return ConfigFile(path, True, content)
            encoded = as_str(get(upload, "contentBase64"))
            if encoded is not None:
                try:
                    return ConfigFile(path, True, base64.b64decode(encoded).decode("utf-8"))
                except (binascii.Error, UnicodeDecodeError):
                    return ConfigFile(path, True, None)
            return ConfigFile(path, True, None)
        return ConfigFile(path, False, None)

    def env_entries(self) -> Iterator[tuple[int, str]]:
        """(index, "NAME=value") for each env entry. Callers must not echo the value."""
        for index, entry in elements(self.get("envs")):
            if isinstance(entry, str):
                yield index, entry

    def env_value(self, name: str) -> str | None:
        for _, entry in self.env_entries():
            key, sep, value = entry.partition("=")
            if sep and key == name:
                return value
        return None

    def network_names(self) -> list[str]:
        names: list[str] = []
        for _, network in elements(self.get("networksAdvanced")):
            name = as_str(get(network, "name"))
            if name is not None:
                names.append(name)
        return names

    def string_list(self, *path: str | int) -> list[str]:
        value = self.get(*path)
        if not is_sequence(value):
            return []
        return [item for _, item in elements(value) if isinstance(item, str)]


def provider_of(provider: Any) -> Resource | None:
    """A view of the `PolicyProviderResource` a resource is created through (None stays None)."""
    if provider is None:
        return None
    return Resource(provider.resource_type, provider.name, provider.urn, provider.props)


def resources_of(resources: list[Any]) -> list[Resource]:
    """Views of the `PolicyResource`s a stack policy receives, each with its provider."""
    return [
        Resource(r.resource_type, r.name, r.urn, r.props, provider_of(getattr(r, "provider", None)))
        for r in resources
    ]


def containers(resources: list[Resource], role: str | None = None) -> list[Resource]:
    return [r for r in resources if r.type == CONTAINER and (role is None or r.role == role)]
