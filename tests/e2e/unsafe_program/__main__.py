"""Test-only program: the platform's topology with one deliberately unsafe change (test:variant).

Changes the config models cannot express (they refuse them) are made with a stack
transformation, after the components built their resources, exactly as a careless edit would.
"""

import copy
import re
import sys
from pathlib import Path

import pulumi
import pulumi_docker as docker
import pulumi_random as random

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import config  # noqa: E402
from components.backups import CONFIG_PATH as PGBACKREST_CONF  # noqa: E402
from components.load_balancer import CONFIG_PATH as HAPROXY_CFG  # noqa: E402
from components.postgres import PATRONI_DIR, POSTGRESQL_CONF  # noqa: E402
from topology import build_topology  # noqa: E402

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
DOCKER_PROVIDER = "pulumi:providers:docker"
# Placement on several hosts, each unsafe alone; placement-unsafe makes every one of them at once
# (one engine preview for the whole class).
PLACEMENT_VARIANTS = ("members-on-one-host", "etcd-on-two-hosts", "redis-replica-with-master", "single-edge", "two-hosts",
                      "overlay-unencrypted", "bridge-on-several-hosts", "engine-plain-tcp", "container-default-provider")
PATRONI_YML = f"{PATRONI_DIR}/10-patroni.yml"
variant = pulumi.Config("test").require("variant")
unsafe = set(PLACEMENT_VARIANTS) if variant == "placement-unsafe" else {variant}
# computed-container-user: the app servers' `user` comes from another resource's output, so it is
# unknown in a preview: the policy that reads it cannot judge them and fails closed (a violation
# naming `user`; the compliance report's "not judged"), even though the value will be non-root.
USER_SOURCE = None
if variant == "computed-container-user":
    USER_SOURCE = random.RandomPassword("computed-user-source", length=32, special=False)


def label_of(props: dict, key: str) -> str:
    for label in props.get("labels") or []:
        if getattr(label, "label", None) == key:
            return label.value
    return ""


def role_of(props: dict) -> str:
    return label_of(props, "medisys.role")


def edited(uploads: list, path: str, change) -> list:
    """The container's uploads with the file at `path` rewritten by `change`."""
    return [docker.ContainerUploadArgs(file=u.file, content=change(u.content)) if u.file == path else u for u in uploads]


def make_unsafe(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    if args.type_ == NETWORK and variant == "database-network-external" and label_of(args.props, "medisys.segment") == "database":
        # The first resources the program registers: a violation an `up` meets at its very start.
        return pulumi.ResourceTransformationResult({**args.props, "internal": False}, args.opts)
    if args.type_ == NETWORK and "bridge-on-several-hosts" in unsafe and label_of(args.props, "medisys.segment") == "production":
        # One segment a bridge again: it exists on the first host only.
        return pulumi.ResourceTransformationResult({**args.props, "driver": "bridge", "attachable": None}, args.opts)
    if args.type_ == DOCKER_PROVIDER and "engine-plain-tcp" in unsafe and args.name.endswith("-1"):
        # The first host's engine over plain TCP: anyone on the path drives a root-equivalent daemon.
        return pulumi.ResourceTransformationResult({**args.props, "host": "tcp://prod-docker-1.medisys.internal:2375",
                                                    "ssh_opts": None, "sshOpts": None}, args.opts)
    if args.type_ == CONTAINER and "container-default-provider" in unsafe and role_of(args.props) == "app-migrations":
        # Created through the default provider: wherever the deployer's DOCKER_HOST points.
        opts = copy.copy(args.opts)
        opts.provider = None
        return pulumi.ResourceTransformationResult(args.props, opts)
    if args.type_ != CONTAINER:
        return None
    props, role = dict(args.props), role_of(args.props)
    if variant == "privileged-container" and role == "app":
        props["privileged"] = True
    elif variant == "computed-container-user" and role == "app" and USER_SOURCE is not None:
        props["user"] = USER_SOURCE.result.apply(lambda _: "10001:10001")
    elif variant == "unpinned-image" and role == "app":
        props["image"] = "medisys/app:latest"
    elif variant == "database-port-published" and role == "postgres":
        props["ports"] = [docker.ContainerPortArgs(internal=5432, external=15432, ip="127.0.0.1")]
    elif variant == "failover-disabled" and role == "postgres":
        # Every member tagged nofailover: Patroni would never promote a replica.
        props["uploads"] = edited(props["uploads"], PATRONI_YML, lambda text: text.replace("nofailover: false", "nofailover: true"))
    elif variant == "tls-off" and role == "load-balancer-config":
        props["uploads"] = edited(props["uploads"], HAPROXY_CFG, lambda text: text.replace(" ssl crt", " #ssl crt"))
    elif variant == "app-backend-plain" and role == "load-balancer-config":
        # HAProxy back to plain HTTP towards the app servers: every option after the address dropped.
        props["uploads"] = edited(props["uploads"], HAPROXY_CFG, lambda text: re.sub(r"(?m)^(\s*server-template \S+ \d+ \S+) ssl .*$", r"\1", text))
    elif variant == "connections-unlogged" and role == "postgres":
        props["uploads"] = edited(props["uploads"], POSTGRESQL_CONF, lambda text: text.replace("log_connections = on", "log_connections = off"))
    elif variant == "wal-push-synchronous" and role == "postgres":
        # archive-push back to synchronous: an offsite outage would hold back the local WAL archive.
        props["uploads"] = edited(props["uploads"], PGBACKREST_CONF, lambda text: text.replace("archive-async=y", "archive-async=n"))
    elif variant in ("offsite-missing", "offsite-unencrypted") and role in ("postgres", "postgres-backup"):
        # offsite-missing: every repo2 line gone (one local repository again); offsite-unencrypted:
        # repo2 written without a cipher.
        drop = "repo2-" if variant == "offsite-missing" else "repo2-cipher-type="
        props["uploads"] = edited(
            props["uploads"], PGBACKREST_CONF, lambda text: "\n".join(line for line in text.splitlines() if not line.startswith(drop)) + "\n"
        )
    else:
        return None
    return pulumi.ResourceTransformationResult(props, args.opts)


cfg = config.read_stack_config()
if variant == "one-app-server":
    # model_copy does not validate: this is the bypass a policy must still catch.
    cfg = cfg.model_copy(update={"app": cfg.app.model_copy(update={"count": 1})})
elif variant == "no-replica":
    cfg = cfg.model_copy(update={"postgres": cfg.postgres.model_copy(update={"replicas": 0})})
elif variant == "asynchronous-replication":
    failover = cfg.postgres.failover.model_copy(update={"synchronous": False})
    cfg = cfg.model_copy(update={"postgres": cfg.postgres.model_copy(update={"failover": failover})})
elif variant == "redis-without-replicas":
    # Three masters and no replica: prod's config refuses it, the bypass must still be caught.
    cfg = cfg.model_copy(update={"redis": cfg.redis.model_copy(update={"replicas_per_master": 0})})
elif variant == "grafana-off":
    # Prod's config refuses it (monitoring.grafana must be on); the bypass must still be caught.
    cfg = cfg.model_copy(update={"monitoring": cfg.monitoring.model_copy(update={"grafana": False})})
elif variant == "grafana-by-tag":
    images = cfg.images.model_copy(update={"overrides": {**cfg.images.overrides, "grafana": "grafana/grafana:12.4.5"}})
    cfg = cfg.model_copy(update={"images": images})
hosts = [h.name for h in cfg.hosts]
# Model copies do not validate: the bypasses of prod's config a policy must still catch.
placement = dict(cfg.placement)
if "members-on-one-host" in unsafe:
    placement["postgres"] = hosts[:1]
if "etcd-on-two-hosts" in unsafe:
    placement["etcd"] = hosts[:2]
if "redis-replica-with-master" in unsafe:
    placement["redis"] = hosts[:1]
cfg = cfg.model_copy(update={"placement": placement})
if "single-edge" in unsafe:
    cfg = cfg.model_copy(update={"load_balancer": cfg.load_balancer.model_copy(update={"edges": 1})})
if "two-hosts" in unsafe:
    cfg = cfg.model_copy(update={"hosts": cfg.hosts[:2], "placement": {r: [h for h in v if h in hosts[:2]] or hosts[:1]
                                                                          for r, v in cfg.placement.items()}})
if "overlay-unencrypted" in unsafe:
    cfg = cfg.model_copy(update={"networks": cfg.networks.model_copy(update={"encrypted": False})})
pulumi.runtime.register_stack_transformation(make_unsafe)
build_topology(cfg, config.read_edge_certificate(cfg), config.read_host_tls(cfg))
