"""The platform's topology: reads the stack config once, builds the tiers in order, exports endpoints."""

import pulumi

import config
from topology import build_topology

try:
    cfg = config.read_stack_config()
    edge_certificate = config.read_edge_certificate(cfg)
    host_tls = config.read_host_tls(cfg)
except config.ConfigError as error:
    # One readable message, no traceback, and nothing registered.
    raise SystemExit(f"error: {error}") from None

platform = build_topology(cfg, edge_certificate, host_tls)

pulumi.export("https_url", platform.load_balancer.https_url)
# Every edge (one per host it runs on): publish all of them in DNS, or behind an L4 balancer.
pulumi.export("https_urls", platform.load_balancer.https_urls)
pulumi.export("placement", {slot: place.host for slot, place in sorted(platform.placement.places.items())})
pulumi.export("http_url", f"http://{cfg.load_balancer.bind_address}:{cfg.load_balancer.http_port}")
pulumi.export("ca_certificate", platform.ca.cert_pem)
pulumi.export("prometheus_url", platform.monitoring.prometheus_url)
# On the management segment only (no published port): reach it through a tunnel to that network.
pulumi.export("grafana_url", platform.monitoring.grafana_url)
# Which member leads is runtime state (`scripts/pg-switchover --list`); the endpoint follows it.
pulumi.export("postgres_endpoint", platform.postgres.proxy_address)
pulumi.export("postgres_members", platform.postgres.member_addresses)
pulumi.export("redis_nodes", platform.redis.addresses)
# The offsite repository's login key (public): install it in the offsite account's authorized_keys.
pulumi.export("offsite_client_public_key", platform.backups.client_public_key)
pulumi.export("containers", {
    "load_balancer": platform.load_balancer.container.name,
    "load_balancers": [c.name for c in platform.load_balancer.containers],
    "apps": [c.name for c in platform.apps.containers],
    "postgres_members": [c.name for c in platform.postgres.members],
    "postgres_etcd": [c.name for c in platform.postgres.etcd],
    "postgres_proxy": platform.postgres.proxy.name,
    "backup_agent": platform.backup_agent.container.name,
    "offsite_sftp": platform.backups.offsite_sftp.name if platform.backups.offsite_sftp else None,
    "redis": [c.name for c in platform.redis.nodes],
    "prometheus": platform.monitoring.prometheus.name,
    "alertmanager": platform.monitoring.alertmanager.name,
    "grafana": platform.monitoring.grafana.name if platform.monitoring.grafana else None,
})
