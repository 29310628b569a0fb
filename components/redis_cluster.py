"""The cache: a Redis Cluster on the database segment, three (or more) masters with a replica each."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from components.container import Attachment, ConfigFile, ServiceSpec, service_container
from components.hosts import DockerHosts
from components.network import SegmentedNetworks
from components.pki import InternalCA
from components.templates import TEMPLATE_DIR, render
from config import Redis, Resources
from placement import Placement

PORT = 6379
PASSWORD_LENGTH = 32
CA_PATH = "/etc/redis/tls/ca.crt"
NODE_SCRIPT = "/usr/local/bin/redis-node"
# The one-shot job that forms the cluster needs little.
FORMER_RESOURCES = Resources(memory_mb=64, cpus=0.25)


def render_redis_conf(settings: Redis, *, node_name: str, announce_ip: str) -> str:
    return render(
        "redis.conf",
        node_name=node_name,
        port=PORT,
        announce_ip=announce_ip,
        maxmemory_mb=settings.maxmemory_mb,
        eviction_policy=settings.eviction_policy,
    )


def secrets_conf(password: str) -> str:
    return f"requirepass {password}\nmasterauth {password}\n"


class RedisCluster(pulumi.ComponentResource):
    """`masters` Redis masters, each with `replicas_per_master` replicas, with TLS, a generated
    password and AOF on persistent volumes.

    Every node has a fixed address that it announces and keeps nodes.conf on its volume, so a
    node that returns (restart, re-creation) rejoins the same cluster, as a replica if its slots
    were taken over meanwhile. A one-shot job forms the cluster during `pulumi up`; if it fails
    the deployment fails, and running it again on a formed cluster changes nothing.

    Rolling changes: each node depends on the one before it, so when a settings change replaces
    the nodes, `pulumi up` replaces one at a time, and only after the previous one is healthy
    again, which means it sees the cluster ok and, as a replica, has synced with its master. A
    master being stopped first hands its slots to its replica (the `redis-node` entrypoint).
    """

    def __init__(
        self,
        name: str,
        args: Redis,
        *,
        image: str,
        networks: SegmentedNetworks,
        placement: Placement,
        hosts: DockerHosts,
        ca: InternalCA,
        protect_data: bool,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("medisys:platform:RedisCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.password = random.RandomPassword(f"{name}-password", length=PASSWORD_LENGTH, special=False, opts=child).result
        shared_files = [
            ConfigFile("/etc/redis/secrets.conf", self.password.apply(secrets_conf), secret=True),
            ConfigFile(CA_PATH, ca.cert_pem),
            ConfigFile(NODE_SCRIPT, (TEMPLATE_DIR / "redis-node.sh").read_text(), executable=True),
        ]
        node_script = ["/bin/sh", NODE_SCRIPT]
        # Nodes 1..masters start as masters, the rest as the replicas the plan pairs them with (on
        # another host than their master); afterwards roles are runtime state (a failover swaps
        # them) and nothing here depends on them.
        places = [placement[f"redis-{i}"] for i in range(1, args.node_count + 1)]
        self.addresses = [p.on("database") for p in places]
        self.nodes: list[docker.Container] = []
        for index, (address, place) in enumerate(zip(self.addresses, places), start=1):
            node = f"{name}-{index}"
            cert = ca.issue(f"{node}-tls", node, dns_names=[node], ip_addresses=[address])
            data = hosts.volume(f"{node}-data", "redis-data", place.host, self, protect=protect_data)
            spec = ServiceSpec(
                role="redis",
                image=image,
                resources=args.resources,
                attachments=[Attachment(networks["database"], address)],
                healthcheck=[*node_script, "ready"],
                entrypoint=[*node_script, "serve"],
                files=[
                    ConfigFile("/etc/redis/redis.conf", render_redis_conf(args, node_name=node, announce_ip=address)),
                    ConfigFile("/etc/redis/tls/server.crt", cert.cert_pem),
                    ConfigFile("/etc/redis/tls/server.key", cert.key_pem, secret=True),
                    *shared_files,
                ],
                volumes=[docker.ContainerVolumeArgs(volume_name=data.name, container_path="/data")],
                user="redis",
            )
            # The chain that makes a replacement of every node a rolling one.
            previous = hosts.options(place.host, self, depends_on=self.nodes[-1:])
            self.nodes.append(service_container(node, node, name, spec, previous))

        node_list = " ".join(f"{a}:{PORT}" for a in self.addresses)
        # Each shard as "master,replica...": the former pairs them exactly so, never by redis-cli's guess.
        shards = " ".join(",".join(f"{placement[s].on('database')}:{PORT}" for s in (shard.master, *shard.replicas))
                          for shard in placement.shards)
        former_spec = ServiceSpec(
            role="redis-cluster-init",
            image=image,
            resources=FORMER_RESOURCES,
            attachments=[Attachment(networks["database"], placement["redis-former"].on("database"))],
            healthcheck=None,
            one_shot=True,
            entrypoint=["/bin/sh", "/usr/local/bin/form-redis-cluster"],
            envs=[f"NODES={node_list}", f"SHARDS={shards}", f"MASTERS={args.masters}", f"REPLICAS_PER_MASTER={args.replicas_per_master}"],
            files=[
                # The node IDs make this job run again whenever a node is re-created.
                ConfigFile("/run/medisys/node-ids", pulumi.Output.all(*[n.id for n in self.nodes]).apply("\n".join)),
                ConfigFile("/usr/local/bin/form-redis-cluster", (TEMPLATE_DIR / "form-redis-cluster.sh").read_text(), executable=True),
                ConfigFile("/run/secrets/redis_password", self.password, secret=True),
                ConfigFile(CA_PATH, ca.cert_pem),
            ],
            user="redis",
        )
        self.former = service_container(
            f"{name}-former", f"{name}-former", name, former_spec,
            hosts.options(placement["redis-former"].host, self, depends_on=self.nodes)
        )
        # The job's exit code decides: a cluster that could not be formed fails `pulumi up`.
        self.formed = self.former.exit_code.apply(_require_success)
        self.register_outputs({"addresses": self.addresses, "formed": self.formed})


def _require_success(exit_code: int | None) -> bool:
    if exit_code not in (0, None):
        raise RuntimeError(f"forming the Redis cluster failed (exit code {exit_code}): see `docker logs` of the former container")
    return True
