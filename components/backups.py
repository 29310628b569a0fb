"""Database backups: an encrypted pgBackRest repository, WAL archiving and a scheduled agent."""

from __future__ import annotations

from collections.abc import Sequence

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


# Member N keeps its data in MEMBERS_MOUNT/N (its volume) and the agent mounts every member's
# volume at the same path: pgBackRest requires pgN-path to equal the data_directory the server
# reports. The agent sees member N's socket directory at SOCKETS_MOUNT/N.
MEMBERS_MOUNT = "/var/lib/postgresql/members"
SOCKETS_MOUNT = "/var/run/postgresql/members"


def member_volume_path(index: int) -> str:
    return f"{MEMBERS_MOUNT}/{index}"


def member_data_dir(index: int) -> str:
    return f"{member_volume_path(index)}/pgdata"


def render_pgbackrest_conf(settings: Backups, pg_hosts: list[tuple[str, str]]) -> str:
    """pgBackRest's configuration: `pg_hosts` lists (data directory, socket directory) per server."""
    servers = "\n".join(
        f"pg{i}-path={path}\npg{i}-socket-path={socket}\npg{i}-user=postgres" for i, (path, socket) in enumerate(pg_hosts, start=1)
    )
    return render("pgbackrest.conf", retention_days=settings.retention_days, stanza=STANZA, pg_servers=servers)


def member_pg_host(index: int) -> list[tuple[str, str]]:
    """A member archives its own WAL: its own data directory and socket."""
    return [(member_data_dir(index), "/var/run/postgresql")]


def agent_pg_hosts(members: int) -> list[tuple[str, str]]:
    """The agent lists every member; pgBackRest asks each which is the primary and backs that one up."""
    return [(member_data_dir(i), f"{SOCKETS_MOUNT}/{i}") for i in range(1, members + 1)]


class DatabaseBackups(pulumi.ComponentResource):
    """The backup repository (a volume, encrypted with a generated key) and its agent.

    Every PostgreSQL member mounts the repository and has the same archive_command; only the one
    that currently leads archives (standbys do not run archive_command), so WAL archiving goes on
    from whichever member Patroni promotes. The agent mounts every member's data directory
    (read-only) and socket and lists them all to pgBackRest, which finds the primary among them:
    scheduled backups follow a failover too. It takes a full backup every `full_interval_hours`
    and differentials in between, to every repository pgBackRest is configured with; pgBackRest
    expires what is older than `retention_days`. The agent publishes per repository its status,
    the newest backups, the last run's result and the WAL archive lag for Prometheus
    (images/postgres/medisys_backup_metrics.py).
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
        self.cipher_file = ConfigFile(CIPHER_PATH, cipher.result.apply(lambda p: f"[global]\nrepo1-cipher-pass={p}\n"), secret=True)
        self.repository_mount = docker.ContainerVolumeArgs(volume_name=self.repository.name, container_path=REPOSITORY_PATH)
        self.agent: docker.Container | None = None
        self.metrics_target: str | None = None

    def member_files(self, index: int) -> list[ConfigFile]:
        """What PostgreSQL member `index` archives with: its pgbackrest.conf and the cipher pass."""
        return [ConfigFile(CONFIG_PATH, render_pgbackrest_conf(self._args, member_pg_host(index))), self.cipher_file]

    def start_agent(
        self,
        *,
        image: str,
        networks: SegmentedNetworks,
        data_volumes: Sequence[docker.Volume],
        socket_volumes: Sequence[docker.Volume],
        members: Sequence[docker.Container],
    ) -> docker.Container:
        """The scheduled agent: it reads every member's data directory and socket (shared volumes)."""
        plan = networks.plan
        metrics_address = plan.host("management", HOST_NUMBER)
        self.agent_config_text = render_pgbackrest_conf(self._args, agent_pg_hosts(len(data_volumes)))
        mounts = [
            docker.ContainerVolumeArgs(volume_name=v.name, container_path=member_volume_path(i), read_only=True)
            for i, v in enumerate(data_volumes, start=1)
        ] + [docker.ContainerVolumeArgs(volume_name=v.name, container_path=f"{SOCKETS_MOUNT}/{i}") for i, v in enumerate(socket_volumes, start=1)]
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
            files=[ConfigFile(CONFIG_PATH, self.agent_config_text), self.cipher_file],
            volumes=[*mounts, self.repository_mount],
            user="postgres",
            wait_timeout_seconds=300,
        )
        self.agent = service_container(
            f"{self._name}-agent",
            f"{self._name}-agent",
            self._name,
            spec,
            pulumi.ResourceOptions(parent=self, depends_on=list(members)),
        )
        self.metrics_target = f"{metrics_address}:{METRICS_PORT}"
        self.register_outputs({"repository": self.repository.name, "agent": self.agent.name})
        return self.agent
