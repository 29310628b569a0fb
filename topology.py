"""The wiring of the tiers: which tier feeds which, and in what order they start."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

import config
import placement as placement_plan
from components.app_servers import SERVICE_ALIAS as APP_SERVICE_ALIAS
from components.app_servers import AppConnections, AppServerTier, RolloutGate
from components.backups import BackupAgent, BackupRepositories
from components.hosts import DockerHosts
from components.load_balancer import Backend, LoadBalancerTier
from components.monitoring import MonitoringStack, ScrapeTargets
from components.network import SegmentedNetworks
from components.pki import InternalCA
from components.postgres import PORT as POSTGRES_PORT
from components.postgres import READ_PORT as POSTGRES_READ_PORT
from components.postgres import PostgresCluster
from components.redis_cluster import PORT as REDIS_PORT
from components.redis_cluster import RedisCluster


@dataclass(frozen=True)
class Topology:
    placement: placement_plan.Placement
    hosts: DockerHosts
    networks: SegmentedNetworks
    ca: InternalCA
    backups: BackupRepositories
    postgres: PostgresCluster
    backup_agent: BackupAgent
    redis: RedisCluster
    apps: AppServerTier
    load_balancer: LoadBalancerTier
    monitoring: MonitoringStack


def build_topology(cfg: config.StackConfig, edge_certificate: config.EdgeCertificate | None,
                   host_tls: dict[str, config.HostTLS] | None = None) -> Topology:
    prefix = cfg.name_prefix
    # Where every container runs and its addresses: decided once, asked by every tier.
    placement = placement_plan.plan(cfg)
    hosts = DockerHosts(f"{prefix}-host", placement.hosts, host_tls or {})
    # Overlays are Swarm-scoped: created once, through the first host (a manager).
    networks = SegmentedNetworks(prefix, cfg.networks, hosts=hosts, fabric_host=placement.hosts[0].name, overlay=placement.multi_host,
                                 encrypted=cfg.overlay_encrypted, offsite_remote=cfg.backups.offsite.host is not None)
    ca = InternalCA(f"{prefix}-ca", organization="MediSys")

    # The repositories and what a member needs to push WAL to them come before the cluster; the
    # agent, the repository host that reaches every member, after it.
    backups = BackupRepositories(
        f"{prefix}-backup", cfg.backups, networks=networks, placement=placement, hosts=hosts, sftp_image=cfg.images.ref("offsite-sftp"), protect_data=cfg.protect_data
    )
    postgres = PostgresCluster(
        f"{prefix}-pg",
        cfg.postgres,
        image=cfg.images.ref("postgres"),
        etcd_image=cfg.images.ref("etcd"),
        proxy_image=cfg.images.ref("haproxy"),
        networks=networks, placement=placement, hosts=hosts,
        ca=ca,
        backups=backups,
        protect_data=cfg.protect_data,
    )
    backup_agent = BackupAgent(
        f"{prefix}-backup", cfg.backups, image=cfg.images.ref("postgres"), repositories=backups, members=postgres.backup_servers,
        monitoring_user=postgres.monitoring_user, monitoring_password=postgres.passwords["monitoring"].result, ca=ca,
        networks=networks, placement=placement, hosts=hosts,
        # Every member's TLS server up and the monitoring role made: its first `check` needs them.
        opts=pulumi.ResourceOptions(depends_on=[postgres]),
    )
    redis = RedisCluster(
        f"{prefix}-redis", cfg.redis, image=cfg.images.ref("redis"), networks=networks, placement=placement, hosts=hosts, ca=ca, protect_data=cfg.protect_data
    )

    if edge_certificate is None:
        edge_addresses = sorted({str(h.public_address or cfg.load_balancer.bind_address) for h in placement.hosts})
        issued = ca.issue(f"{prefix}-edge-tls", cfg.load_balancer.certificate.server_names[0],
                          dns_names=cfg.load_balancer.certificate.server_names, ip_addresses=edge_addresses)
        edge_certificate = config.EdgeCertificate(issued.cert_pem, issued.key_pem)
    # The load balancer comes first: app servers are found by DNS, and a rollout waits for each
    # new server to be in HAProxy's rotation before it touches the next one.
    load_balancer = LoadBalancerTier(
        f"{prefix}-lb",
        cfg.load_balancer,
        image=cfg.images.ref("haproxy"),
        networks=networks, placement=placement, hosts=hosts,
        backend=Backend(APP_SERVICE_ALIAS, cfg.app.port, max_servers=config.MAX_APP_SERVERS),
        certificate_pem=edge_certificate.certificate_pem,
        private_key_pem=edge_certificate.private_key_pem,
        ca=ca,
    )

    apps = AppServerTier(
        f"{prefix}-app",
        cfg.app,
        image=cfg.app.image or cfg.images.ref("app"),
        networks=networks, placement=placement, hosts=hosts,
        connections=AppConnections(
            # The leader-following endpoint: its write port reaches whichever member leads, its
            # read port the streaming replicas.
            db_primary_host=postgres.proxy_address,
            db_replica_hosts=[postgres.proxy_address],
            db_port=POSTGRES_PORT,
            db_replica_port=POSTGRES_READ_PORT,
            db_name=cfg.postgres.database,
            db_user=postgres.app_user,
            db_password=postgres.passwords["app"].result,
            redis_nodes=[f"{a}:{REDIS_PORT}" for a in redis.addresses],
            redis_password=redis.password,
            ca_cert_pem=ca.cert_pem,
        ),
        gate=RolloutGate(image=cfg.images.ref("haproxy"), stats_urls=load_balancer.stats_urls, backend=load_balancer.app_backend),
        ca=ca,
        # The apps start once the data tier is ready, the cluster formed and HAProxy runs.
        opts=pulumi.ResourceOptions(depends_on=[postgres, redis, load_balancer]),
    )

    grafana_image = cfg.images.ref("grafana") if cfg.grafana_enabled else None
    if grafana_image is None and cfg.environment == "dev":
        # Said once per preview/up, here and nowhere else.
        pulumi.log.info(
            "Grafana is off in dev: its official image comes from a registry, and none is reachable offline."
            f" Staging and prod run {config.GRAFANA_IMAGE}. To run it here, load that image into the Docker"
            " engine and set medisys:monitoring: {grafana: true}."
        )
    monitoring = MonitoringStack(
        f"{prefix}-mon",
        cfg.monitoring,
        images={s: cfg.images.ref(s) for s in ("prometheus", "alertmanager", "postgres-exporter", "redis-exporter")},
        grafana_image=grafana_image,
        networks=networks, placement=placement, hosts=hosts,
        targets=ScrapeTargets(
            load_balancers=load_balancer.metrics_targets,
            load_balancer_tls_addresses=[f"https://{a}:443/health" for a in load_balancer.management_addresses],
            load_balancer_server_name=cfg.load_balancer.certificate.server_names[0],
            app_servers=apps.metrics_targets,
            # Every member, whatever its role at the moment: the exporter reports each one's role and lag.
            postgres_servers=[f"{a}:{POSTGRES_PORT}" for a in postgres.member_addresses],
            postgres_database=cfg.postgres.database,
            postgres_user=postgres.monitoring_user,
            postgres_password=postgres.passwords["monitoring"].result,
            redis_nodes=[f"{a}:{REDIS_PORT}" for a in redis.addresses],
            redis_password=redis.password,
            backup_agent=backup_agent.metrics_target,
            ca_cert_pem=ca.cert_pem,
        ),
        opts=pulumi.ResourceOptions(depends_on=[load_balancer, apps]),
    )

    return Topology(placement, hosts, networks, ca, backups, postgres, backup_agent, redis, apps, load_balancer, monitoring)
