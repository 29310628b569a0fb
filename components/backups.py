"""Database backups: an encrypted pgBackRest repository, WAL archiving and a scheduled agent."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from components.container import Attachment, ConfigFile, ServiceSpec, service_container
from components.network import SegmentedNetworks
from components.templates import render
from config import Backups

STANZA = "main"
CONFIG_PATH = "/etc/pgbackrest/pgbackrest.conf"
CIPHER_PATH = "/etc/pgbackrest/conf.d/cipher.conf"
REPOSITORY_PATH = "/var/lib/pgbackrest"
HOST_NUMBER = 40
METRICS_PORT = 9854
CIPHER_PASS_LENGTH = 48


def render_pgbackrest_conf(settings: Backups) -> str:
    return render("pgbackrest.conf", retention_days=settings.retention_days, stanza=STANZA)


class DatabaseBackups(pulumi.ComponentResource):
    """The backup repository (a volume, encrypted with a generated key) and its agent.

    The primary archives every WAL segment into the repository (point-in-time recovery); the
    agent takes a full backup every `full_interval_hours` and differentials in between, and
    pgBackRest expires what is older than `retention_days`. The agent starts only once the
    primary is ready (`start_agent` is called with it) and publishes the age of the newest
    backup for Prometheus.
    """

    def __init__(self, name: str, args: Backups, *, protect_data: bool, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("medisys:platform:DatabaseBackups", name, None, opts)
        self._name = name
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        self.repository = docker.Volume(
            f"{name}-repository",
            name=f"{name}-repository",
            labels=[docker.VolumeLabelArgs(label="medisys.role", value="backup-repo")],
            opts=pulumi.ResourceOptions(parent=self, protect=protect_data),
        )
        cipher = random.RandomPassword(f"{name}-cipher-pass", length=CIPHER_PASS_LENGTH, special=False, opts=self._child)
        self.config_text = render_pgbackrest_conf(args)
        # Every container that runs pgbackrest (primary for archive-push, agent) gets both files.
        self.files = [
            ConfigFile(CONFIG_PATH, self.config_text),
            ConfigFile(CIPHER_PATH, cipher.result.apply(lambda p: f"[global]\nrepo1-cipher-pass={p}\n"), secret=True),
        ]
        self.repository_mount = docker.ContainerVolumeArgs(volume_name=self.repository.name, container_path=REPOSITORY_PATH)
        self.agent: docker.Container | None = None
        self.metrics_target: str | None = None

    def start_agent(
        self,
        *,
        image: str,
        networks: SegmentedNetworks,
        data_volume: docker.Volume,
        socket_volume: docker.Volume,
        primary: docker.Container,
    ) -> docker.Container:
        """The scheduled agent: it reads the primary's data directory and socket (shared volumes)."""
        plan = networks.plan
        metrics_address = plan.host("management", HOST_NUMBER)
        spec = ServiceSpec(
            role="postgres-backup",
            image=image,
            resources=self._args.resources,
            attachments=[
                Attachment(networks["database"], plan.host("database", HOST_NUMBER)),
                Attachment(networks["management"], metrics_address, ["backup-agent"]),
            ],
            healthcheck=["test", "-f", "/var/lib/medisys-backup/healthy"],
            envs=[
                "PG_ROLE=backup",
                f"STANZA={STANZA}",
                f"BACKUP_FULL_INTERVAL_HOURS={self._args.full_interval_hours}",
                f"BACKUP_DIFF_INTERVAL_HOURS={self._args.diff_interval_hours}",
                f"METRICS_LISTEN={metrics_address}:{METRICS_PORT}",
            ],
            files=self.files,
            volumes=[
                docker.ContainerVolumeArgs(volume_name=data_volume.name, container_path="/var/lib/postgresql/data", read_only=True),
                docker.ContainerVolumeArgs(volume_name=socket_volume.name, container_path="/var/run/postgresql"),
                self.repository_mount,
            ],
            user="postgres",
            wait_timeout_seconds=300,
        )
        self.agent = service_container(
            f"{self._name}-agent",
            f"{self._name}-agent",
            self._name,
            spec,
            pulumi.ResourceOptions(parent=self, depends_on=[primary]),
        )
        self.metrics_target = f"{metrics_address}:{METRICS_PORT}"
        self.register_outputs({"repository": self.repository.name, "agent": self.agent.name})
        return self.agent
