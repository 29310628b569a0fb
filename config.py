"""The stack configuration: every setting the program reads, validated before anything is built.

Pulumi.<stack>.yaml holds one object per tier under the `medisys` namespace. `load` turns the
raw dictionaries into one frozen `StackConfig`, or raises `ConfigError` listing every bad field
with the fix. Only `read_stack_config` touches `pulumi.Config`; everything else takes plain
dicts, so tests never mock Pulumi.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

IMAGE_RELEASE = (Path(__file__).parent / "images" / "RELEASE").read_text().strip()
SECRET_KEYS = ("lb_certificate", "lb_private_key", "host_tls")
TIERS = ("hosts", "placement", "networks", "load_balancer", "app", "postgres", "backups", "redis", "monitoring", "images")
SEGMENTS = ("dmz", "production", "database", "management", "offsite")
# The official Grafana image, pinned to the multi-arch index digest of release 12.4.5 (the
# extended-support 12.x line). No registry is reachable where this was written, so the digest
# comes from published records, not a pull: public repositories that pin
# grafana/grafana:12.4.5@sha256:26b8f35a... record it as `crane digest` output (2026-07-15) and
# as the Docker v2 manifest list from `docker buildx imagetools inspect`, whose linux/amd64
# child is sha256:5e8dea6bf166881f31f370c16ba87a9eebe8ed33db7cce29ee6baf675d60676a.
# Check it where a registry answers: `docker buildx imagetools inspect grafana/grafana:12.4.5`.
# The name:tag@digest form works with upstream pulumi-docker's find-or-pull: Docker 20.10's API
# pulls it by digest and `GET /images/{name:tag@digest}/json` finds it (checked against a
# local registry, 2026-12-03); the tag is for readers, the digest decides what runs.
GRAFANA_IMAGE = "grafana/grafana:12.4.5@sha256:26b8f35a9e4e4431995cf64c3f396505a4faf17bcfc19f9ed84943ec6bfd5ecd"
# Images the platform takes from their publisher instead of building them from images/.
UPSTREAM_IMAGES = {"grafana": GRAFANA_IMAGE}
MAX_APP_SERVERS = 4  # the load balancer keeps this many server slots; the address plan has room for them
REDIS_MAX_NODES = 9  # masters and replicas together: database-segment hosts .31-.39


class ConfigError(Exception):
    """Raised with a message naming every invalid field and what to do about it."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(Strict):
    """Container limits. Docker takes memory in MB and CPUs as a decimal string."""

    memory_mb: int = Field(ge=64, le=262144)
    cpus: float = Field(gt=0, le=64)


class Networks(Strict):
    dmz: ipaddress.IPv4Network = ipaddress.IPv4Network("192.168.1.0/24")
    production: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.1.0/24")
    database: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.2.0/24")
    management: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.3.0/24")
    # The path to the offsite backup repository: only the backup agent (pgBackRest's repository
    # host, which pushes the members' WAL on) reaches the offsite SFTP server through it.
    offsite: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.4.0/24")
    # Overlays between hosts carry Docker's IPsec encryption (`--opt encrypted`). None: on in
    # staging and prod, off in dev.
    # This machine's kernel passes no traffic on encrypted overlays, so tests run TLS on every hop
    # with it off (README "Several Docker hosts").
    encrypted: bool | None = None

    @field_validator("dmz", "production", "database", "management", "offsite")
    @classmethod
    def room_for_hosts(cls, subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        # The address plan below uses host numbers up to 60 in every segment.
        if subnet.prefixlen > 26:
            raise ValueError(f"{subnet} is too small: use a /26 or larger (the plan needs 60 hosts)")
        return subnet

    @model_validator(mode="after")
    def disjoint(self) -> Networks:
        items = [(name, getattr(self, name)) for name in SEGMENTS]
        for i, (a_name, a) in enumerate(items):
            for b_name, b in items[i + 1 :]:
                if a.overlaps(b):
                    raise ValueError(f"subnets of {a_name} ({a}) and {b_name} ({b}) overlap: give each segment its own range")
        return self

    def host(self, segment: str, number: int) -> str:
        """The fixed address of host `number` in a segment (.1 is Docker's gateway)."""
        return str(getattr(self, segment).network_address + number)


HOST_NAME = r"^[a-z][a-z0-9-]{0,19}$"
ENGINE_SCHEMES = ("unix://", "ssh://", "tcp://")
# Roles whose containers the placement plan spreads over the hosts; `medisys:placement` may
# pin each to a list of hosts (placement.py).
PLACED_ROLES = ("load_balancer", "app", "postgres", "etcd", "postgres_proxy", "redis", "backup", "monitoring")


class DockerHost(Strict):
    """One Docker engine of the stack, reached through its own pulumi-docker provider.

    `docker_host`: `ssh://user@host`, `tcp://host:2376` (TLS client certificate from the secret
    config `medisys:host_tls.<name>`: ca, cert, key) or `unix:///path`. None: the deployer's
    DOCKER_HOST or local socket, allowed only for a stack's single host.
    """

    name: str = Field(pattern=HOST_NAME)
    docker_host: str | None = None
    # Where this host's edge publishes its ports; None: load_balancer.bind_address.
    public_address: ipaddress.IPv4Address | None = None
    labels: dict[str, str] = {}

    @field_validator("docker_host")
    @classmethod
    def engine_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r}: write the engine as tcp://HOST:2376 (TLS from medisys:host_tls) or ssh://USER@HOST")
        if not value.startswith(ENGINE_SCHEMES) or len(value) <= len(value.split("://")[0]) + 3:
            raise ValueError(f"{value!r} is not a Docker engine address: use ssh://USER@HOST, tcp://HOST:2376 or unix:///PATH")
        return value

    @property
    def over_tcp(self) -> bool:
        return (self.docker_host or "").startswith("tcp://")


class CertificateSource(Strict):
    # generated: a private CA made by this program (dev, staging). provided: the certificate and
    # key come from the secret config keys medisys:lb_certificate and medisys:lb_private_key.
    mode: Literal["generated", "provided"] = "generated"
    server_names: list[str] = ["localhost"]


class LoadBalancer(Strict):
    bind_address: ipaddress.IPv4Address = ipaddress.IPv4Address("127.0.0.1")
    https_port: int = Field(default=8443, ge=1, le=65535)
    http_port: int = Field(default=8080, ge=1, le=65535)
    hsts_max_age_seconds: int = Field(default=31536000, ge=0)
    certificate: CertificateSource = CertificateSource()
    resources: Resources = Resources(memory_mb=256, cpus=0.5)
    # Edges (HAProxy containers), one per host; None: two when there are several hosts, else one.
    # Clients reach the surviving edge through DNS listing every edge's address or an L4 balancer.
    edges: int | None = Field(default=None, ge=1, le=4)

    @model_validator(mode="after")
    def distinct_ports(self) -> LoadBalancer:
        if self.https_port == self.http_port:
            raise ValueError("https_port and http_port must differ")
        return self


class AppServers(Strict):
    count: int = Field(default=2, ge=2, le=MAX_APP_SERVERS)
    image: str | None = None  # None: the reference app built from app/
    port: int = Field(default=8080, ge=1024, le=65535)
    resources: Resources = Resources(memory_mb=256, cpus=0.5)


class Failover(Strict):
    """Patroni's automatic failover: the leader lock's timing and how much loss a failover may cost.

    Written to etcd when the cluster is first bootstrapped (Patroni's `bootstrap.dcs`); later
    changes go through `patronictl edit-config` (see README, "PostgreSQL failover").
    """

    # The leader lock expires `ttl` seconds after the primary's Patroni last renewed it; a replica
    # takes over within ttl + loop_wait of the primary's death.
    # Patroni's own minimums (it would silently raise smaller values): ttl 20, retry_timeout 3.
    ttl_seconds: int = Field(default=20, ge=20, le=300)
    loop_wait_seconds: int = Field(default=5, ge=1, le=60)
    retry_timeout_seconds: int = Field(default=5, ge=3, le=120)
    # Synchronous: a commit is acknowledged once a synchronous standby has it, and only that standby
    # may be promoted, so no acknowledged write is lost. Asynchronous: a replica further behind than
    # maximum_lag_on_failover_bytes is never promoted; up to that much WAL may be lost.
    synchronous: bool = False
    maximum_lag_on_failover_bytes: int = Field(default=1048576, ge=0)

    @model_validator(mode="after")
    def timing(self) -> Failover:
        # Patroni's rule: a primary that cannot reach etcd must demote itself before its lock expires.
        if self.loop_wait_seconds + 2 * self.retry_timeout_seconds > self.ttl_seconds:
            raise ValueError(
                f"loop_wait_seconds + 2 * retry_timeout_seconds ({self.loop_wait_seconds} + 2 * {self.retry_timeout_seconds})"
                f" must not exceed ttl_seconds ({self.ttl_seconds}): raise ttl_seconds or lower the others"
            )
        return self


class Postgres(Strict):
    # Members = 1 + replicas; which member is the primary is decided at run time by Patroni.
    replicas: int = Field(default=1, ge=1, le=3)
    database: str = Field(default="medisys", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    max_connections: int = Field(default=100, ge=20, le=5000)
    # Where pulumi-postgresql reaches the primary to manage roles and databases. None: the
    # leader-following endpoint's address on the database segment, which the Docker host can reach
    # (Docker cannot publish ports of containers on internal networks). Staging and prod set a
    # tunnel or bastion endpoint here.
    admin_host: str | None = None
    admin_port: int = Field(default=5432, ge=1, le=65535)
    # On several hosts the database overlay is unreachable from the deployer: a gateway beside the
    # endpoint publishes its write port as admin_port on this address of its host (prod: 127.0.0.1,
    # reached through `ssh -L`); admin_host/admin_port then point at that.
    admin_publish: ipaddress.IPv4Address | None = None
    resources: Resources = Resources(memory_mb=1024, cpus=1.0)
    failover: Failover = Failover()

    @property
    def members(self) -> int:
        return 1 + self.replicas


SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex_fingerprint(value: str) -> str:
    """An SSH host key fingerprint as pgBackRest compares it (lowercase hex of SHA-256 over the key
    blob), from either that hex or OpenSSH's `SHA256:<base64>` (what `ssh-keygen -lf` prints)."""
    text = value.strip()
    if text.startswith("SHA256:"):
        encoded = text.removeprefix("SHA256:")
        try:
            digest = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            digest = b""
        if len(digest) != 32:
            raise ValueError(f"{value!r} is not a SHA256 fingerprint: copy the `SHA256:...` field of `ssh-keygen -lf KEY.pub`")
        return digest.hex()
    hexed = text.replace(":", "").lower()
    if not SHA256_HEX.match(hexed):
        raise ValueError(
            f"{value!r} is not a SHA-256 host key fingerprint: give `SHA256:<base64>` from `ssh-keygen -lf KEY.pub`"
            " or 64 hex digits from `awk '{print $2}' KEY.pub | base64 -d | sha256sum`"
        )
    return hexed


class OffsiteRepository(Strict):
    """pgBackRest's second repository (repo2), on an SFTP server away from the database host.

    Without `host` the program runs an OpenSSH server of its own on the offsite segment (dev,
    tests, a site whose offsite storage is mounted on this host); its host key is generated and
    pinned. With `host` the repository lives on that server: give its port, the account, the
    directory and the fingerprint of its host key (pinned: a changed key fails the backup).
    The client key is always generated; install the `offsite_client_public_key` output in the
    account's authorized_keys.
    """

    host: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(default="pgbackrest", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    path: str = Field(default="/srv/pgbackrest", pattern=r"^/[A-Za-z0-9._/-]*$")
    host_key_fingerprint: str | None = None
    # Time-based: full backups (and the WAL they need) are kept this many days.
    retention_days: int = Field(default=7, ge=1, le=3650)

    @field_validator("host_key_fingerprint")
    @classmethod
    def fingerprint_form(cls, value: str | None) -> str | None:
        return None if value is None else sha256_hex_fingerprint(value)

    @model_validator(mode="after")
    def pinned(self) -> OffsiteRepository:
        if self.host is not None and self.host_key_fingerprint is None:
            raise ValueError(
                f"host_key_fingerprint is required with host ({self.host}): the offsite server's host key is pinned;"
                " run `ssh-keygen -lf` on its ssh_host_ed25519_key.pub (read on the server, not over the network)"
            )
        if self.host is None and self.host_key_fingerprint is not None:
            raise ValueError("host_key_fingerprint is set without host: the in-stack SFTP server's key is generated; remove it or set host")
        return self


class Backups(Strict):
    # The local repository (repo1), on a volume of this host.
    retention_days: int = Field(default=7, ge=1, le=3650)
    offsite: OffsiteRepository = OffsiteRepository()
    full_interval_hours: int = Field(default=24, ge=1, le=24)
    diff_interval_hours: int = Field(default=6, ge=1, le=24)
    resources: Resources = Resources(memory_mb=256, cpus=0.5)


class Redis(Strict):
    """A Redis Cluster. "Three nodes" in the platform's documents means three masters, the three
    shards holding every key; each master gets `replicas_per_master` replicas that take over its
    slots when it is lost. masters: 3, replicas_per_master: 1 is six containers."""

    masters: int = Field(default=3, ge=3, le=REDIS_MAX_NODES)
    replicas_per_master: int = Field(default=1, ge=0, le=2)
    maxmemory_mb: int = Field(default=128, ge=16)
    eviction_policy: Literal[
        "noeviction", "allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu", "allkeys-random", "volatile-random", "volatile-ttl"
    ] = "allkeys-lru"
    resources: Resources = Resources(memory_mb=256, cpus=0.5)

    @model_validator(mode="before")
    @classmethod
    def nodes_was_renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "nodes" in data:
            raise ValueError(
                f"'nodes' ({data['nodes']!r}) was renamed: it counted masters; write 'masters: {data['nodes']}' and "
                "'replicas_per_master: 1' (a replica per master, so the cluster survives the loss of any one node)"
            )
        return data

    @model_validator(mode="after")
    def fits(self) -> Redis:
        if self.node_count > REDIS_MAX_NODES:
            raise ValueError(
                f"masters ({self.masters}) x (1 + replicas_per_master ({self.replicas_per_master})) = {self.node_count} nodes; "
                f"the address plan has room for {REDIS_MAX_NODES}: lower masters or replicas_per_master"
            )
        # Headroom for the AOF rewrite fork and client buffers.
        if self.maxmemory_mb > self.resources.memory_mb * 0.8:
            raise ValueError(
                f"maxmemory_mb ({self.maxmemory_mb}) must be at most 80% of resources.memory_mb ({self.resources.memory_mb})"
            )
        return self

    @property
    def node_count(self) -> int:
        return self.masters * (1 + self.replicas_per_master)


class Receiver(Strict):
    name: str = Field(pattern=r"^[a-z0-9-]+$")
    webhook_url: str = Field(pattern=r"^https?://")


class Monitoring(Strict):
    retention: str = Field(default="15d", pattern=r"^[0-9]+[dhw]$")
    scrape_interval_seconds: int = Field(default=15, ge=5, le=300)
    receivers: dict[Literal["critical", "warning"], Receiver] = {}
    # Grafana from the official image (config.GRAFANA_IMAGE, or images.overrides.grafana).
    # None: on in staging and prod, which pull from a registry; off in dev, which is offline.
    grafana: bool | None = None
    resources: Resources = Resources(memory_mb=512, cpus=0.5)
    grafana_resources: Resources = Resources(memory_mb=256, cpus=0.5)


class Images(Strict):
    """Service images, built by scripts/build-images from images/ (or supplied by a registry)."""

    release: str = IMAGE_RELEASE
    repository: str = "medisys"
    overrides: dict[str, str] = {}

    @field_validator("overrides")
    @classmethod
    def pinned(cls, overrides: dict[str, str]) -> dict[str, str]:
        for service, ref in overrides.items():
            if "@sha256:" not in ref and (":" not in ref.rsplit("/", 1)[-1] or ref.endswith(":latest")):
                raise ValueError(f"{service}: {ref!r} is not pinned: give an explicit tag (not latest) or a digest")
        return overrides

    def ref(self, service: str) -> str:
        return self.overrides.get(service) or UPSTREAM_IMAGES.get(service) or f"{self.repository}/{service}:{self.release}"


class StackConfig(Strict):
    environment: Literal["dev", "staging", "prod"]
    # Omitted: the one local engine (DOCKER_HOST or the default socket), as on a laptop.
    hosts: list[DockerHost] = [DockerHost(name="local")]
    placement: dict[Literal[PLACED_ROLES], list[str]] = {}  # type: ignore[valid-type]
    name_prefix: str = Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")
    # Protected volumes make `pulumi destroy` (or a replacing change) fail instead of deleting data.
    protect_data: bool = False
    networks: Networks = Networks()
    load_balancer: LoadBalancer = LoadBalancer()
    app: AppServers = AppServers()
    postgres: Postgres = Postgres()
    backups: Backups = Backups()
    redis: Redis = Redis()
    monitoring: Monitoring = Monitoring()
    images: Images = Images()

    @property
    def multi_host(self) -> bool:
        return len(self.hosts) > 1

    @property
    def overlay_encrypted(self) -> bool:
        # Staging runs on real hosts too: encrypted like prod, so its overlays rehearse prod's.
        return self.environment != "dev" if self.networks.encrypted is None else self.networks.encrypted

    def _host_problems(self) -> list[str]:
        problems = []
        names = [h.name for h in self.hosts]
        if not names:
            problems.append("hosts is empty: list at least one Docker host, or remove the setting to use the local engine")
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"hosts: the name {name!r} is used twice: give each host its own name")
        engines = [h.docker_host or "local engine (DOCKER_HOST)" for h in self.hosts]
        for engine in sorted({e for e in engines if engines.count(e) > 1}):
            clash = [h.name for h in self.hosts if (h.docker_host or "local engine (DOCKER_HOST)") == engine]
            problems.append(f"hosts {', '.join(clash)} have one address ({engine}): each host is its own Docker engine")
        for role, listed in self.placement.items():
            for name in listed:
                if name not in names:
                    problems.append(f"placement.{role}: unknown host {name!r}: use one of {', '.join(names)} (medisys:hosts)")
            if not listed:
                problems.append(f"placement.{role} is empty: list the hosts it may run on, or remove it for the default spread")
            if len(set(listed)) != len(listed):
                problems.append(f"placement.{role} lists a host twice: list each host once")
        if self.environment == "prod" and len(self.hosts) < 3:
            problems.append(
                f"hosts: prod needs at least 3 Docker hosts (got {len(self.hosts)}): one host lost must leave a quorum"
                " of etcd and a synchronous standby on another host (policy placement-minimum-hosts)"
            )
        if self.environment == "prod" and self.networks.encrypted is False:
            problems.append("networks.encrypted must not be false in prod: traffic between hosts crosses their network (policy placement-overlay-encrypted)")
        if len(self.hosts) > 1 and (self.postgres.admin_publish is None or self.postgres.admin_host is None):
            problems.append(
                "postgres.admin_publish and postgres.admin_host are required on several hosts: the database overlay is not"
                " reachable from where `pulumi up` runs; set admin_publish: 127.0.0.1 (published on the endpoint's host),"
                " admin_host: 127.0.0.1 and admin_port: 15432, and open `ssh -L 15432:127.0.0.1:15432 deploy@<that host>` first"
            )
        if self.load_balancer.edges is not None and self.load_balancer.edges > len(self.hosts):
            problems.append(f"load_balancer.edges ({self.load_balancer.edges}) exceeds the hosts ({len(self.hosts)}): one edge per host at most")
        return problems

    @model_validator(mode="after")
    def cross_checks(self) -> StackConfig:
        """Rules across tiers; every broken one is reported at once, each naming its field."""
        problems = self._host_problems()
        if self.environment == "prod" and self.load_balancer.certificate.mode != "provided":
            problems.append("load_balancer.certificate.mode must be 'provided' in prod: set the CA-issued certificate as secret config")
        if self.environment == "prod" and self.redis.replicas_per_master < 1:
            problems.append(
                "redis.replicas_per_master must be 1 or more in prod: without a replica, losing one master stops the whole cluster"
            )
        if self.environment == "prod" and self.monitoring.grafana is False:
            problems.append(
                "monitoring.grafana must be on in prod: the platform's monitoring is Prometheus, Alertmanager and Grafana"
                " (policy monitoring-stack-present); remove the setting or set it to true"
            )
        grafana = self.images.ref("grafana")
        if self.environment != "dev" and self.grafana_enabled and "@sha256:" not in grafana:
            problems.append(
                f"images.overrides.grafana ({grafana!r}) must be pinned by digest in {self.environment}:"
                " write it as REGISTRY/grafana:VERSION@sha256:<index digest>, or remove it to use the pinned official image"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def grafana_enabled(self) -> bool:
        """Grafana runs unless switched off; dev leaves it off by default (no image offline)."""
        if self.monitoring.grafana is None:
            return self.environment != "dev"
        return self.monitoring.grafana


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("function-after", "function-before")]
    return "medisys:" + ".".join(parts) if parts else "medisys"


def _describe(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown setting: check its spelling against config.py, or remove it"
    message = str(error["msg"]).removeprefix("Value error, ")
    given = error.get("input")
    # Show scalars the user typed; whole sections would only repeat the file.
    if isinstance(given, (int, float, str)) and error["type"] != "missing":
        message += f" (got {given!r})"
    return message


def load(raw: dict[str, Any], stack: str) -> StackConfig:
    """Validate raw config; raise ConfigError listing every problem at once."""
    # Secret keys are read on their own (read_edge_certificate, read_host_tls), never as tiers.
    data = {k: v for k, v in raw.items() if v is not None and k not in SECRET_KEYS}
    data.setdefault("name_prefix", f"medisys-{stack}".lower()[:31])
    try:
        return StackConfig.model_validate(data)
    except ValidationError as err:
        # A model-level check reports several problems, one per line, each naming its own field.
        lines = [f"  - {_field_path(e['loc'])}: {line}" for e in err.errors() for line in _describe(e).split("\n")]
        raise ConfigError(
            f"invalid configuration for stack '{stack}' ({len(lines)} problem(s)); fix them in Pulumi.{stack}.yaml:\n" + "\n".join(lines)
        ) from None


def read_stack_config() -> StackConfig:
    """The one place that reads pulumi.Config."""
    import pulumi

    config = pulumi.Config("medisys")
    # Every resource goes through an explicit provider per host, which ignores the default
    # provider's settings: a leftover docker:host would silently deploy to another engine.
    stale = [key for key in ("host", "certPath", "caMaterial", "certMaterial", "keyMaterial", "sshOpts") if pulumi.Config("docker").get(key)]
    if stale:
        raise ConfigError(
            "docker:" + ", docker:".join(stale) + " is no longer read: the program reaches each Docker host through its own provider;"
            " move the engine address to medisys:hosts (name, docker_host) and remove the docker:* keys"
        )
    raw: dict[str, Any] = {"environment": config.get("environment"), "name_prefix": config.get("name_prefix")}
    for tier in TIERS:
        raw[tier] = config.get_object(tier)
    return load(raw, pulumi.get_stack())


class EdgeCertificate:
    """The load balancer's certificate and key (secret), when supplied rather than generated."""

    def __init__(self, certificate_pem: Any, private_key_pem: Any) -> None:
        self.certificate_pem = certificate_pem
        self.private_key_pem = private_key_pem


def read_edge_certificate(cfg: StackConfig) -> EdgeCertificate | None:
    """In `provided` mode both secrets must be set; in `generated` mode the program issues one."""
    if cfg.load_balancer.certificate.mode != "provided":
        return None
    import pulumi

    config = pulumi.Config("medisys")
    values = {key: config.get_secret(key) for key in ("lb_certificate", "lb_private_key")}
    missing = [key for key, value in values.items() if value is None]
    if missing:
        fixes = "\n".join(f"  - medisys:{key} is not set: run `pulumi config set --secret medisys:{key} < FILE.pem`" for key in missing)
        raise ConfigError(f"the load balancer certificate is 'provided' but secret config is missing:\n{fixes}")
    return EdgeCertificate(values["lb_certificate"], values["lb_private_key"])


class HostTLS:
    """The TLS client certificate the program presents to one tcp:// Docker engine (secret)."""

    def __init__(self, ca_pem: Any, cert_pem: Any, key_pem: Any) -> None:
        self.ca_pem = ca_pem
        self.cert_pem = cert_pem
        self.key_pem = key_pem


HOST_TLS_PARTS = ("ca", "cert", "key")


def host_tls_from(cfg: StackConfig, secret_object: dict[str, Any] | None) -> dict[str, HostTLS]:
    """Each tcp:// host's client certificate from `medisys:host_tls` ({name: {ca, cert, key}} PEMs).

    Plain tcp:// is refused: anyone on the path could drive the engine, which is root on its host.
    """
    given = secret_object or {}
    found: dict[str, HostTLS] = {}
    problems = []
    for host in cfg.hosts:
        parts = given.get(host.name) or {}
        if not host.over_tcp:
            continue
        missing = [p for p in HOST_TLS_PARTS if not parts.get(p)]
        if missing:
            problems.append(
                f"  - medisys:host_tls.{host.name}: {', '.join(missing)} missing for {host.docker_host}: plain tcp:// is refused;"
                f" run `pulumi config set --secret --path 'medisys:host_tls.{host.name}.ca' -- \"$(cat ca.pem)\"` (and .cert, .key)"
                " or reach the host over ssh://"
            )
            continue
        found[host.name] = HostTLS(*(parts[p] for p in HOST_TLS_PARTS))
    unknown = sorted(set(given) - {h.name for h in cfg.hosts})
    problems += [f"  - medisys:host_tls.{name}: no host of that name in medisys:hosts: remove it or fix the name" for name in unknown]
    if problems:
        raise ConfigError("the Docker hosts' TLS client certificates are incomplete:\n" + "\n".join(problems))
    return found


def read_host_tls(cfg: StackConfig) -> dict[str, HostTLS]:
    """The secret `medisys:host_tls` object, checked before anything is registered; every PEM is
    handed on as a secret Output."""
    import json

    import pulumi
    from pulumi.runtime.config import get_config

    text = get_config("medisys:host_tls")  # the raw value: Config.get would warn that it is a secret
    try:
        raw = json.loads(text) if text else None
    except json.JSONDecodeError:
        raw = None
    if text and not isinstance(raw, dict):
        raise ConfigError("medisys:host_tls must be an object {host: {ca, cert, key}}: set it with `pulumi config set --secret --path`")
    checked = host_tls_from(cfg, raw)
    return {name: HostTLS(*(pulumi.Output.secret(getattr(tls, f"{p}_pem")) for p in HOST_TLS_PARTS)) for name, tls in checked.items()}
