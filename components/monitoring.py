"""Observability: Prometheus, Alertmanager, exporters and Grafana (off in offline dev).

Everything here lives on the management segment; exporters also join the database segment to
reach what they measure. Nothing publishes a port. Prometheus and Alertmanager read their config
from a release a config-release job installs and reloads (`/-/reload`), so a new scrape list or
routing change never restarts them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_docker as docker
import pulumi_random as random
import yaml

from components.container import (
    JOB_RESOURCES,
    Attachment,
    ConfigFile,
    ConfigRelease,
    ServiceSpec,
    after_success,
    config_release_job,
    service_container,
)
from components.hosts import DockerHosts
from components.network import SegmentedNetworks
from components.templates import TEMPLATE_DIR
from config import Monitoring, Resources
from placement import Placement

# Slots of the placement plan (placement.py): each one's host and management address.
PROMETHEUS_HOST, ALERTMANAGER_HOST, GRAFANA_HOST, BLACKBOX_HOST = "prometheus", "alertmanager", "grafana", "blackbox"
PROMETHEUS_CONFIG_JOB_HOST, ALERTMANAGER_CONFIG_JOB_HOST = "prometheus-config", "alertmanager-config"
PROMETHEUS_RELEASE_DIR, ALERTMANAGER_RELEASE_DIR = "/etc/prometheus/live", "/etc/alertmanager/live"
POSTGRES_EXPORTER_HOST, REDIS_EXPORTER_HOST = "postgres-exporter", "redis-exporter"
PROMETHEUS_PORT, ALERTMANAGER_PORT, GRAFANA_PORT, BLACKBOX_PORT = 9090, 9093, 3000, 9115
POSTGRES_EXPORTER_PORT, REDIS_EXPORTER_PORT = 9187, 9121
RULES_DIR = TEMPLATE_DIR / "prometheus" / "rules"
GRAFANA_DIR = TEMPLATE_DIR / "grafana"
EXPORTER_RESOURCES = Resources(memory_mb=128, cpus=0.25)
CA_PATH = "/etc/medisys/tls/ca.crt"
# The internal CA in Prometheus' config release, beside prometheus.yml (which names it relative to
# itself), for the app servers' HTTPS: a new CA reloads Prometheus like any other config change.
PROMETHEUS_CA = "ca.crt"
GRAFANA_USER = "472"
# The image's own provisioning directory (owned by its user), as a volume the config job fills:
# a fresh volume takes the directory's owner, so the job, running as that user, can write it.
GRAFANA_CONFIG_DIR = "/etc/grafana/provisioning"
GRAFANA_STAGE_DIR = "/tmp/medisys-grafana"  # where the job's uploads land
GRAFANA_DASHBOARDS = "medisys-dashboards"  # the dashboard provider's folder in the volume
GRAFANA_PASSWORD_PATH = "secrets/admin_password"
GRAFANA_CONFIG_JOB_HOST = "grafana-config"
# Replaces what an earlier release installed; files readable by Grafana's user only.
GRAFANA_INSTALL_SCRIPT = (
    f"set -eu; umask 077; cd {GRAFANA_CONFIG_DIR}; "
    f"rm -rf datasources/* dashboards/* {GRAFANA_DASHBOARDS} secrets; "
    f"cp -R {GRAFANA_STAGE_DIR}/. .; "
    'echo "grafana config installed: $(find . -type f | wc -l) files"'
)


@dataclass(frozen=True)
class ScrapeTargets:
    """What Prometheus watches, as the other tiers expose it."""

    load_balancers: Sequence[str]  # host:port of each edge's metrics on the management segment
    load_balancer_tls_addresses: Sequence[str]  # where the blackbox exporter checks each edge's certificate
    load_balancer_server_name: str
    app_servers: Sequence[tuple[str, str]]  # (server name, host:port on the management segment)
    postgres_servers: Sequence[str]  # host:port
    postgres_database: str
    postgres_user: str
    postgres_password: pulumi.Output[str]
    redis_nodes: Sequence[str]  # host:port
    redis_password: pulumi.Output[str]
    backup_agent: str | None
    ca_cert_pem: pulumi.Input[str]


def _relabel_to_exporter(exporter: str) -> list[dict[str, Any]]:
    # Multi-target exporters: the scraped address becomes a URL parameter, the exporter is called.
    return [
        {"source_labels": ["__address__"], "target_label": "__param_target"},
        {"source_labels": ["__param_target"], "target_label": "instance"},
        {"target_label": "__address__", "replacement": exporter},
    ]


def render_prometheus_yml(settings: Monitoring, targets: ScrapeTargets, address: Any) -> str:
    """`address` is Placement.address: (slot, segment) -> address."""
    exporter = {
        "postgres": f"{address(POSTGRES_EXPORTER_HOST, 'management')}:{POSTGRES_EXPORTER_PORT}",
        "redis": f"{address(REDIS_EXPORTER_HOST, 'management')}:{REDIS_EXPORTER_PORT}",
        "blackbox": f"{address(BLACKBOX_HOST, 'management')}:{BLACKBOX_PORT}",
    }
    scrape_configs: list[dict[str, Any]] = [
        {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{PROMETHEUS_PORT}"]}]},
        {"job_name": "alertmanager", "static_configs": [{"targets": [f"{address(ALERTMANAGER_HOST, 'management')}:{ALERTMANAGER_PORT}"]}]},
        {"job_name": "haproxy", "static_configs": [{"targets": list(targets.load_balancers)}]},
        # The expected servers are listed, so a stopped one is a target down (and an alert), not a
        # target that silently disappears. Scaling re-renders this file and reloads Prometheus.
        # HTTPS only: each server's certificate chains to the internal CA and names the management
        # address scraped here, so every target is verified as itself.
        {
            "job_name": "app",
            "scheme": "https",
            "tls_config": {"ca_file": PROMETHEUS_CA, "insecure_skip_verify": False, "min_version": "TLS12"},
            "static_configs": [{"targets": [address], "labels": {"server": server}} for server, address in targets.app_servers],
        },
        {
            "job_name": "postgres",
            "metrics_path": "/probe",
            "params": {"auth_module": ["monitoring"]},
            "static_configs": [{"targets": [f"{s}/{targets.postgres_database}" for s in targets.postgres_servers]}],
            "relabel_configs": _relabel_to_exporter(exporter["postgres"]),
        },
        {
            "job_name": "redis",
            "metrics_path": "/scrape",
            "static_configs": [{"targets": [f"rediss://{n}" for n in targets.redis_nodes]}],
            "relabel_configs": _relabel_to_exporter(exporter["redis"]),
        },
        {
            "job_name": "blackbox-tls",
            "metrics_path": "/probe",
            "params": {"module": ["edge_tls"]},
            "static_configs": [{"targets": list(targets.load_balancer_tls_addresses)}],
            "relabel_configs": _relabel_to_exporter(exporter["blackbox"]),
        },
    ]
    if targets.backup_agent:
        scrape_configs.append({"job_name": "backup", "static_configs": [{"targets": [targets.backup_agent]}]})
    document = {
        "global": {"scrape_interval": f"{settings.scrape_interval_seconds}s", "evaluation_interval": f"{settings.scrape_interval_seconds}s"},
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"{address(ALERTMANAGER_HOST, 'management')}:{ALERTMANAGER_PORT}"]}]}]
        },
        # Relative to this file: the rules come with the same release (config-release.sh).
        "rule_files": ["rules/*.yml"],
        "scrape_configs": scrape_configs,
    }
    return "# Rendered by components/monitoring.py. Checked by `promtool check config` in tests/config.\n" + yaml.safe_dump(
        document, sort_keys=False
    )


def render_alertmanager_yml(settings: Monitoring) -> str:
    """A route per severity. Without configured receivers alerts are kept in Alertmanager only."""
    receivers: list[dict[str, Any]] = [{"name": "default"}]
    routes = []
    severities: tuple[tuple[Literal["critical", "warning"], str, str], ...] = (("critical", "10s", "1h"), ("warning", "1m", "4h"))
    for severity, group_wait, repeat in severities:
        receiver = settings.receivers.get(severity)
        name = receiver.name if receiver else "default"
        if receiver:
            receivers.append({"name": receiver.name, "webhook_configs": [{"url": receiver.webhook_url, "send_resolved": True}]})
        routes.append({"matchers": [f'severity="{severity}"'], "receiver": name, "group_wait": group_wait, "repeat_interval": repeat})
    document = {
        "route": {"receiver": "default", "group_by": ["alertname", "instance"], "group_interval": "1m", "routes": routes},
        # A critical alert silences the warning about the same thing.
        "inhibit_rules": [
            {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'], "equal": ["alertname", "instance"]}
        ],
        "receivers": receivers,
    }
    return "# Rendered by components/monitoring.py. Checked by `amtool check-config` in tests/config.\n" + yaml.safe_dump(
        document, sort_keys=False
    )


def render_blackbox_yml(server_name: str) -> str:
    module = {"prober": "http", "timeout": "5s", "http": {"method": "GET", "fail_if_not_ssl": True, "tls_config": {"ca_file": CA_PATH, "server_name": server_name}}}
    return yaml.safe_dump({"modules": {"edge_tls": module}}, sort_keys=False)


def postgres_exporter_yml(user: str, password: str) -> str:
    auth = {"type": "userpass", "userpass": {"username": user, "password": password}, "options": {"sslmode": "verify-full", "sslrootcert": CA_PATH}}
    return yaml.safe_dump({"auth_modules": {"monitoring": auth}})


def redis_password_map(nodes: Sequence[str], password: str) -> str:
    return json.dumps({f"rediss://{n}": password for n in nodes})


def http_reload(url: str) -> str:
    """config-release.sh's RELOAD_COMMAND for a server with a POST /-/reload endpoint: 3 when
    nothing answers (not started yet), 1 when it refuses the new config."""
    return (f"code=$(curl -s -o /dev/null -w '%{{http_code}}' -X POST {url}) || exit 3; "
            '[ "$code" = 200 ] || { echo "reload answered HTTP $code" >&2; exit 1; }')


def rule_files() -> list[ConfigFile]:
    return [ConfigFile(f"/etc/prometheus/rules/{p.name}", p.read_text()) for p in sorted(RULES_DIR.glob("*.yml"))]


class MonitoringStack(pulumi.ComponentResource):
    """Prometheus scraping every tier with the platform's alert rules, Alertmanager routing them,
    exporters for PostgreSQL, Redis and the edge certificate, and Grafana when an image is given
    (its admin password generated here and kept a secret Output, delivered as a file)."""

    def __init__(
        self,
        name: str,
        args: Monitoring,
        *,
        images: dict[str, str],
        grafana_image: str | None,
        networks: SegmentedNetworks,
        placement: Placement,
        hosts: DockerHosts,
        targets: ScrapeTargets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("medisys:platform:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._placement, self._hosts = placement, hosts
        mgmt = networks["management"]
        ca_file = ConfigFile(CA_PATH, targets.ca_cert_pem)

        def on_management(slot: str, *aliases: str) -> Attachment:
            return Attachment(mgmt, placement[slot].on("management"), aliases)

        def on_host(slot: str, **more: Any) -> pulumi.ResourceOptions:
            return hosts.options(placement[slot].host, self, **more)

        def exporter(role: str, host: str, spec_fields: dict[str, Any]) -> docker.Container:
            spec = ServiceSpec(
                role=role,
                resources=EXPORTER_RESOURCES,
                attachments=[Attachment(networks["database"], placement[host].on("database")), on_management(host)],
                user="prometheus",
                **spec_fields,
            )
            return service_container(f"{name}-{role}", f"{name}-{role}", name, spec, on_host(host))

        pg_listen = f"{placement[POSTGRES_EXPORTER_HOST].on('management')}:{POSTGRES_EXPORTER_PORT}"
        self.postgres_exporter = exporter(
            "postgres-exporter",
            POSTGRES_EXPORTER_HOST,
            {
                "image": images["postgres-exporter"],
                "command": ["prometheus-postgres-exporter", "--config.file=/etc/postgres_exporter/postgres_exporter.yml", f"--web.listen-address={pg_listen}"],
                "healthcheck": ["curl", "-fsS", "-o", "/dev/null", f"http://{pg_listen}/metrics"],
                "files": [
                    ConfigFile(
                        "/etc/postgres_exporter/postgres_exporter.yml",
                        targets.postgres_password.apply(lambda p: postgres_exporter_yml(targets.postgres_user, p)),
                        secret=True,
                    ),
                    ca_file,
                ],
            },
        )
        redis_listen = f"{placement[REDIS_EXPORTER_HOST].on('management')}:{REDIS_EXPORTER_PORT}"
        self.redis_exporter = exporter(
            "redis-exporter",
            REDIS_EXPORTER_HOST,
            {
                "image": images["redis-exporter"],
                "command": [
                    "prometheus-redis-exporter",
                    f"--web.listen-address={redis_listen}",
                    "--redis.password-file=/etc/redis_exporter/passwords.json",
                    f"--tls-ca-cert-file={CA_PATH}",
                    "--is-cluster",
                ],
                "healthcheck": ["curl", "-fsS", "-o", "/dev/null", f"http://{redis_listen}/metrics"],
                "files": [
                    ConfigFile(
                        "/etc/redis_exporter/passwords.json",
                        targets.redis_password.apply(lambda p: redis_password_map(targets.redis_nodes, p)),
                        secret=True,
                    ),
                    ca_file,
                ],
            },
        )
        blackbox_listen = f"{placement[BLACKBOX_HOST].on('management')}:{BLACKBOX_PORT}"
        self.blackbox = service_container(
            f"{name}-blackbox",
            f"{name}-blackbox",
            name,
            ServiceSpec(
                role="blackbox-exporter",
                image=images["prometheus"],
                resources=EXPORTER_RESOURCES,
                attachments=[on_management(BLACKBOX_HOST)],
                command=["prometheus-blackbox-exporter", "--config.file=/etc/blackbox/blackbox.yml", f"--web.listen-address={blackbox_listen}"],
                healthcheck=["curl", "-fsS", "-o", "/dev/null", f"http://{blackbox_listen}/metrics"],
                files=[ConfigFile("/etc/blackbox/blackbox.yml", render_blackbox_yml(targets.load_balancer_server_name)), ca_file],
                user="prometheus",
            ),
            on_host(BLACKBOX_HOST),
        )

        self.prometheus_config = render_prometheus_yml(args, targets, placement.address)
        self.prometheus_address = placement[PROMETHEUS_HOST].on("management")
        prometheus_release = ConfigRelease(
            image=images["prometheus"],
            volume=self._volume(name, "prometheus-config", PROMETHEUS_HOST),
            release_dir=PROMETHEUS_RELEASE_DIR,
            files=[(ConfigFile("/etc/prometheus/prometheus.yml", self.prometheus_config), "prometheus.yml"),
                   (ConfigFile(f"/etc/prometheus/{PROMETHEUS_CA}", targets.ca_cert_pem), PROMETHEUS_CA),
                   *((f, f"rules/{f.path.rsplit('/', 1)[-1]}") for f in rule_files())],
            check_command=f"promtool check config {PROMETHEUS_RELEASE_DIR}/current/prometheus.yml",
            reload_command=http_reload(f"http://{self.prometheus_address}:{PROMETHEUS_PORT}/-/reload"),
            attachment=on_management(PROMETHEUS_CONFIG_JOB_HOST),
            user="prometheus",
        )
        self.prometheus_config_job = config_release_job(f"{name}-prometheus-config", "prometheus-config", name, prometheus_release,
                                                        on_host(PROMETHEUS_CONFIG_JOB_HOST))
        self.prometheus = service_container(
            f"{name}-prometheus",
            f"{name}-prometheus",
            name,
            ServiceSpec(
                role="prometheus",
                image=images["prometheus"],
                resources=args.resources,
                attachments=[on_management(PROMETHEUS_HOST, "prometheus")],
                command=[
                    "prometheus",
                    f"--config.file={prometheus_release.current('prometheus.yml')}",
                    "--storage.tsdb.path=/prometheus",
                    f"--storage.tsdb.retention.time={args.retention}",
                    f"--web.listen-address=0.0.0.0:{PROMETHEUS_PORT}",
                    # POST /-/reload for the config-release job (management segment only).
                    "--web.enable-lifecycle",
                ],
                healthcheck=["curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready"],
                volumes=[
                    docker.ContainerVolumeArgs(volume_name=self._volume(name, "prometheus-data", PROMETHEUS_HOST).name, container_path="/prometheus"),
                    prometheus_release.mount,
                ],
                user="prometheus",
            ),
            on_host(PROMETHEUS_HOST, depends_on=[after_success(self.prometheus_config_job, f"the Prometheus config release ({name}-prometheus-config)")]),
        )
        self.alertmanager_config = render_alertmanager_yml(args)
        alertmanager_address = placement[ALERTMANAGER_HOST].on("management")
        alertmanager_release = ConfigRelease(
            image=images["alertmanager"],
            volume=self._volume(name, "alertmanager-config", ALERTMANAGER_HOST),
            release_dir=ALERTMANAGER_RELEASE_DIR,
            files=[(ConfigFile("/etc/alertmanager/alertmanager.yml", self.alertmanager_config), "alertmanager.yml")],
            check_command=f"amtool check-config {ALERTMANAGER_RELEASE_DIR}/current/alertmanager.yml",
            reload_command=http_reload(f"http://{alertmanager_address}:{ALERTMANAGER_PORT}/-/reload"),
            attachment=on_management(ALERTMANAGER_CONFIG_JOB_HOST),
            user="prometheus",
        )
        self.alertmanager_config_job = config_release_job(
            f"{name}-alertmanager-config", "alertmanager-config", name, alertmanager_release, on_host(ALERTMANAGER_CONFIG_JOB_HOST)
        )
        self.alertmanager = service_container(
            f"{name}-alertmanager",
            f"{name}-alertmanager",
            name,
            ServiceSpec(
                role="alertmanager",
                image=images["alertmanager"],
                resources=EXPORTER_RESOURCES,
                attachments=[on_management(ALERTMANAGER_HOST, "alertmanager")],
                command=[
                    "prometheus-alertmanager",
                    f"--config.file={alertmanager_release.current('alertmanager.yml')}",
                    "--storage.path=/alertmanager",
                    f"--web.listen-address=0.0.0.0:{ALERTMANAGER_PORT}",
                    "--cluster.listen-address=",
                ],
                healthcheck=["curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{ALERTMANAGER_PORT}/-/ready"],
                volumes=[
                    docker.ContainerVolumeArgs(volume_name=self._volume(name, "alertmanager-data", ALERTMANAGER_HOST).name, container_path="/alertmanager"),
                    alertmanager_release.mount,
                ],
                user="prometheus",
            ),
            on_host(ALERTMANAGER_HOST, depends_on=[
                after_success(self.alertmanager_config_job, f"the Alertmanager config release ({name}-alertmanager-config)")]),
        )
        # Later releases only replace the jobs; their results fail `up` through the outputs.
        self.config_released = pulumi.Output.all(
            after_success(self.prometheus_config_job, f"the Prometheus config release ({name}-prometheus-config)"),
            after_success(self.alertmanager_config_job, f"the Alertmanager config release ({name}-alertmanager-config)"),
        ).apply(lambda _: True)
        self.grafana: docker.Container | None = None
        self.grafana_config_job: docker.Container | None = None
        self.grafana_admin_password: pulumi.Output[str] | None = None
        self.grafana_url: str | None = None
        if grafana_image:
            password = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False, opts=child)
            # RandomPassword.result is secret already; say so here too, so no refactoring loses it.
            self.grafana_admin_password = pulumi.Output.secret(password.result)
            self.grafana = self._grafana(
                name, grafana_image, args, self.grafana_admin_password,
                on_management(GRAFANA_HOST, "grafana"), on_management(GRAFANA_CONFIG_JOB_HOST),
            )
            self.grafana_url = f"http://{placement[GRAFANA_HOST].on('management')}:{GRAFANA_PORT}"
        self.prometheus_url = f"http://{self.prometheus_address}:{PROMETHEUS_PORT}"
        self.register_outputs({"prometheus_url": self.prometheus_url, "config_released": self.config_released, "grafana_url": self.grafana_url})

    def _volume(self, name: str, role: str, slot: str) -> docker.Volume:
        """A volume on the host of the container (slot) that mounts it."""
        return self._hosts.volume(f"{name}-{role}", role, self._placement[slot].host, self)

    def _grafana(
        self,
        name: str,
        image: str,
        args: Monitoring,
        admin_password: pulumi.Output[str],
        attachment: Attachment,
        job_attachment: Attachment,
    ) -> docker.Container:
        """Grafana on a read-only root filesystem. Docker refuses uploads into one, so a one-shot
        job from the same image (and user) installs the provisioning, the dashboards and the
        password file into a config volume, which Grafana mounts read-only."""
        files = grafana_files()
        config_volume = self._volume(name, "grafana-config", GRAFANA_HOST)
        mount = docker.ContainerVolumeArgs(volume_name=config_volume.name, container_path=GRAFANA_CONFIG_DIR)
        self.grafana_config_job = service_container(
            f"{name}-grafana-config",
            f"{name}-grafana-config",
            name,
            ServiceSpec(
                role="grafana-config",
                image=image,
                resources=JOB_RESOURCES,
                attachments=[job_attachment],
                healthcheck=None,
                one_shot=True,
                entrypoint=["/bin/sh", "-c", GRAFANA_INSTALL_SCRIPT],
                files=[
                    *(ConfigFile(f"{GRAFANA_STAGE_DIR}/{path}", content) for path, content in files.items()),
                    ConfigFile(f"{GRAFANA_STAGE_DIR}/{GRAFANA_PASSWORD_PATH}", admin_password, secret=True),
                ],
                volumes=[mount],
                user=GRAFANA_USER,
            ),
            self._hosts.options(self._placement[GRAFANA_CONFIG_JOB_HOST].host, self),
        )
        installed = after_success(self.grafana_config_job, f"the Grafana config install ({name}-grafana-config)")
        return service_container(
            f"{name}-grafana",
            f"{name}-grafana",
            name,
            ServiceSpec(
                role="grafana",
                image=image,
                resources=args.grafana_resources,
                attachments=[attachment],
                envs=[
                    "GF_SECURITY_ADMIN_USER=admin",
                    # The image's run.sh reads the file; the password never enters the container's config.
                    f"GF_SECURITY_ADMIN_PASSWORD__FILE={GRAFANA_CONFIG_DIR}/{GRAFANA_PASSWORD_PATH}",
                    "GF_AUTH_ANONYMOUS_ENABLED=false",
                    "GF_USERS_ALLOW_SIGN_UP=false",
                    "GF_ANALYTICS_REPORTING_ENABLED=false",
                    "GF_ANALYTICS_CHECK_FOR_UPDATES=false",
                    f"GF_PATHS_PROVISIONING={GRAFANA_CONFIG_DIR}",
                    # Docker's log driver keeps the log (rotated); no log file on the read-only root.
                    "GF_LOG_MODE=console",
                ],
                healthcheck=["curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{GRAFANA_PORT}/api/health"],
                volumes=[
                    docker.ContainerVolumeArgs(volume_name=self._volume(name, "grafana-data", GRAFANA_HOST).name, container_path="/var/lib/grafana"),
                    docker.ContainerVolumeArgs(volume_name=config_volume.name, container_path=GRAFANA_CONFIG_DIR, read_only=True),
                ],
                read_only=True,
                tmpfs={"/tmp": "rw,noexec,nosuid,size=64m"},
                # A new provisioning or dashboard replaces Grafana, after the job installed it.
                labels={"medisys.config-sha256": content_digest(files)},
                # The official image's own account (USER 472, group 0, owner of its directories).
                user=GRAFANA_USER,
            ),
            self._hosts.options(self._placement[GRAFANA_HOST].host, self, depends_on=[installed]),
        )


def grafana_files() -> dict[str, str]:
    """The provisioning and dashboards, by path inside the config volume (none of them secret)."""
    provisioning = GRAFANA_DIR / "provisioning"
    files = {str(p.relative_to(provisioning)): p.read_text() for p in sorted(provisioning.rglob("*.yml"))}
    files |= {f"{GRAFANA_DASHBOARDS}/{p.name}": p.read_text() for p in sorted((GRAFANA_DIR / "dashboards").glob("*.json"))}
    return files


def content_digest(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for path, content in sorted(files.items()):
        digest.update(f"{path}\0{content}\0".encode())
    return digest.hexdigest()
